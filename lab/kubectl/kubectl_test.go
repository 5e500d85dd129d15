package kubectl

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"

	goldenfile "github.com/nplab/nplab/internal/golden"
)

// golden compares got with testdata/<name>.golden (rewriting it with -update).
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	goldenfile.Check(t, filepath.Join("testdata", name+".golden"), got)
}

var now = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func ts(ago time.Duration) metav1.Time { return metav1.NewTime(now.Add(-ago)) }

func ptr[T any](v T) *T { return &v }

func services() []*corev1.Service {
	return []*corev1.Service{
		{
			ObjectMeta: metav1.ObjectMeta{Name: "frontend-service", Namespace: "default", CreationTimestamp: ts(90 * time.Second)},
			Spec: corev1.ServiceSpec{
				Type:       corev1.ServiceTypeNodePort,
				ClusterIP:  "10.96.12.7",
				ClusterIPs: []string{"10.96.12.7"},
				Selector:   map[string]string{"app": "frontend"},
				Ports:      []corev1.ServicePort{{Port: 80, Protocol: "TCP", TargetPort: intstr.FromInt32(8080), NodePort: 30080}},
			},
		},
		{
			ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default", CreationTimestamp: ts(49 * time.Hour)},
			Spec: corev1.ServiceSpec{
				Type:       corev1.ServiceTypeClusterIP,
				ClusterIP:  "10.96.0.1",
				ClusterIPs: []string{"10.96.0.1"},
				Ports:      []corev1.ServicePort{{Name: "https", Port: 443, Protocol: "TCP", TargetPort: intstr.FromInt32(6443)}},
			},
		},
		{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", CreationTimestamp: ts(7 * time.Minute)},
			Spec: corev1.ServiceSpec{
				Type:        corev1.ServiceTypeNodePort,
				ClusterIP:   "10.96.200.14",
				ClusterIPs:  []string{"10.96.200.14"},
				ExternalIPs: []string{"172.18.0.2"},
				Selector:    map[string]string{"app": "web", "tier": "front"},
				Ports: []corev1.ServicePort{
					{Name: "http", Port: 80, Protocol: "TCP", TargetPort: intstr.FromString("http"), NodePort: 30080},
					{Name: "udp", Port: 80, Protocol: "UDP", TargetPort: intstr.FromInt32(8081), NodePort: 30080},
				},
				SessionAffinity:       corev1.ServiceAffinityNone,
				ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyCluster,
				InternalTrafficPolicy: ptr(corev1.ServiceInternalTrafficPolicyCluster),
				IPFamilyPolicy:        ptr(corev1.IPFamilyPolicySingleStack),
				IPFamilies:            []corev1.IPFamily{corev1.IPv4Protocol},
			},
		},
	}
}

func pods() []*corev1.Pod {
	running := func(name, ip, node string, ready bool, age time.Duration) *corev1.Pod {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", CreationTimestamp: ts(age)},
			Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c"}}},
			Status: corev1.PodStatus{
				Phase:  corev1.PodRunning,
				PodIP:  ip,
				PodIPs: []corev1.PodIP{{IP: ip}},
				ContainerStatuses: []corev1.ContainerStatus{{
					Name: "c", Ready: ready,
					State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}},
				}},
			},
		}
		return p
	}
	terminating := running("web-7d4b9c8f6d-x2k9p", "10.244.3.2", "node-3", true, 3*time.Hour)
	terminating.DeletionTimestamp = ptr(ts(time.Second))
	restarted := running("web-7d4b9c8f6d-bq7zt", "10.244.2.2", "node-2", true, 26*time.Hour)
	restarted.Status.ContainerStatuses[0].RestartCount = 2
	restarted.Status.ContainerStatuses[0].LastTerminationState.Terminated = &corev1.ContainerStateTerminated{FinishedAt: ts(5 * time.Minute)}
	pending := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "backend", Namespace: "default", CreationTimestamp: ts(4 * time.Second)},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}, ReadinessGates: []corev1.PodReadinessGate{{ConditionType: "example.com/gate"}}},
		Status:     corev1.PodStatus{Phase: corev1.PodPending},
	}
	return []*corev1.Pod{
		pending,
		running("web-7d4b9c8f6d-4hxmf", "10.244.1.2", "node-1", false, 45*time.Second),
		restarted,
		terminating,
	}
}

func TestGetTables(t *testing.T) {
	tests := []struct {
		name  string
		print func(*bytes.Buffer) error
	}{
		{"get-services", func(b *bytes.Buffer) error { return GetServices(b, services(), now, false) }},
		{"get-services-wide", func(b *bytes.Buffer) error { return GetServices(b, services(), now, true) }},
		{"get-pods", func(b *bytes.Buffer) error { return GetPods(b, pods(), now, false) }},
		{"get-pods-wide", func(b *bytes.Buffer) error { return GetPods(b, pods(), now, true) }},
		{"get-svc-pods-wide", func(b *bytes.Buffer) error {
			_, err := GetServicesAndPods(b, services(), pods(), now, true)
			return err
		}},
		{"get-endpoints", func(b *bytes.Buffer) error { return GetEndpoints(b, endpoints(), now) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tt.print(&b); err != nil {
				t.Fatal(err)
			}
			golden(t, tt.name, b.Bytes())
		})
	}
}

func TestGetServicesAndPodsEmpty(t *testing.T) {
	var b bytes.Buffer
	printed, err := GetServicesAndPods(&b, nil, nil, now, false)
	if err != nil || printed || b.Len() != 0 {
		t.Errorf("empty get printed %v %q, err %v", printed, b.String(), err)
	}
}

func endpoints() []*corev1.Endpoints {
	addr := func(ip string) corev1.EndpointAddress { return corev1.EndpointAddress{IP: ip} }
	return []*corev1.Endpoints{
		{ObjectMeta: metav1.ObjectMeta{Name: "empty", CreationTimestamp: ts(time.Minute)}},
		{
			ObjectMeta: metav1.ObjectMeta{Name: "not-ready", CreationTimestamp: ts(time.Minute)},
			Subsets: []corev1.EndpointSubset{{
				NotReadyAddresses: []corev1.EndpointAddress{addr("10.244.1.2")},
				Ports:             []corev1.EndpointPort{{Port: 8080, Protocol: "TCP"}},
			}},
		},
		{
			ObjectMeta: metav1.ObjectMeta{Name: "web", CreationTimestamp: ts(10 * time.Minute)},
			Subsets: []corev1.EndpointSubset{{
				Addresses: []corev1.EndpointAddress{addr("10.244.1.2"), addr("10.244.2.2"), addr("10.244.3.2")},
				Ports: []corev1.EndpointPort{
					{Name: "http", Port: 8080, Protocol: "TCP"},
					{Name: "udp", Port: 8081, Protocol: "UDP"},
				},
			}},
		},
	}
}

func slices(ready ...bool) []discoveryv1.EndpointSlice {
	var eps []discoveryv1.Endpoint
	ips := []string{"10.244.1.2", "10.244.2.2", "10.244.3.2", "10.244.1.3", "10.244.2.3"}
	for i, r := range ready {
		eps = append(eps, discoveryv1.Endpoint{Addresses: []string{ips[i]}, Conditions: discoveryv1.EndpointConditions{Ready: ptr(r)}})
	}
	return []discoveryv1.EndpointSlice{{
		Endpoints: eps,
		Ports: []discoveryv1.EndpointPort{
			{Name: ptr("http"), Port: ptr[int32](8080), Protocol: ptr(corev1.ProtocolTCP)},
			{Name: ptr("udp"), Port: ptr[int32](8081), Protocol: ptr(corev1.ProtocolUDP)},
		},
	}}
}

func TestDescribeService(t *testing.T) {
	web := services()[2]
	web.Labels = map[string]string{"app": "web", "tier": "front"}
	web.Annotations = map[string]string{"nplab.io/scenario": "default", corev1.LastAppliedConfigAnnotation: "{}"}
	front := services()[0]
	front.Spec.SessionAffinity = corev1.ServiceAffinityNone
	tests := []struct {
		name   string
		svc    *corev1.Service
		slices []discoveryv1.EndpointSlice
	}{
		{"describe-web", web, slices(true, false, true)},
		{"describe-web-more", web, slices(true, true, true, false, true)},
		{"describe-web-no-ready", web, slices(false)},
		{"describe-frontend-no-slices", front, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := DescribeService(&b, tt.svc, tt.slices); err != nil {
				t.Fatal(err)
			}
			golden(t, tt.name, b.Bytes())
		})
	}
}

// The errors the emulated API server returns, built as kube-apiserver builds them.
var (
	portTaken = apierrors.NewInvalid(schema.GroupKind{Kind: "Service"}, "backend-service", field.ErrorList{
		field.Invalid(field.NewPath("spec", "ports").Index(0).Child("nodePort"), 30080, "provided port is already allocated"),
	})
	badName = apierrors.NewInvalid(schema.GroupKind{Kind: "Service"}, "NodePort-Service", field.ErrorList{
		field.Invalid(field.NewPath("metadata", "name"), "NodePort-Service", "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"),
	})
	twoCauses = apierrors.NewInvalid(schema.GroupKind{Kind: "Service"}, "x", field.ErrorList{
		field.Required(field.NewPath("spec", "ports").Index(1).Child("name"), ""),
		field.NotSupported(field.NewPath("spec", "ports").Index(1).Child("protocol"), corev1.Protocol("HTTP"), []string{"SCTP", "TCP", "UDP"}),
		field.Required(field.NewPath("spec", "ports").Index(1).Child("name"), ""),
	})
	exists    = apierrors.NewAlreadyExists(schema.GroupResource{Resource: "pods"}, "backend")
	rangeFull = apierrors.NewInternalError(errors.New("failed to allocate a nodePort: range is full"))
)

func TestFormatError(t *testing.T) {
	tests := []struct {
		name string
		err  error
		verb string
		file string
		want string
	}{
		{"one cause", portTaken, "creating", "backend-service.yaml",
			`The Service "backend-service" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated`},
		{"DNS-1035 name", badName, "creating", "nodeport-service.yaml",
			`The Service "NodePort-Service" is invalid: metadata.name: Invalid value: "NodePort-Service": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')`},
		{"several causes, duplicates dropped", twoCauses, "creating", "x.yaml",
			"The Service \"x\" is invalid: \n* spec.ports[1].name: Required value\n* spec.ports[1].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\""},
		{"already exists", exists, "creating", "backend-pods.yaml",
			`Error from server (AlreadyExists): error when creating "backend-pods.yaml": pods "backend" already exists`},
		{"range full", rangeFull, "creating", "s.yaml",
			`Error from server (InternalError): error when creating "s.yaml": Internal error occurred: failed to allocate a nodePort: range is full`},
		{"no file", exists, "creating", "",
			`Error from server (AlreadyExists): pods "backend" already exists`},
		{"not an API error", errors.New(`error parsing a.yaml: error converting YAML to JSON: yaml: line 12: did not find expected '-' indicator`), "creating", "a.yaml",
			`error: error parsing a.yaml: error converting YAML to JSON: yaml: line 12: did not find expected '-' indicator`},
		{"nil", nil, "creating", "a.yaml", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FormatError(tt.err, tt.verb, tt.file); got != tt.want {
				t.Errorf("FormatError =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestFormatErrors(t *testing.T) {
	got := FormatErrors([]Sourced{
		{portTaken, "creating", "backend-service.yaml"},
		{exists, "creating", "backend-pods.yaml"},
		{errors.New(`error validating "x.yaml": error validating data: kind not set`), "", ""},
		{rangeFull, "patching", "web.yaml"},
	})
	want := `Error from server (Invalid): error when creating "backend-service.yaml": Service "backend-service" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated
Error from server (AlreadyExists): error when creating "backend-pods.yaml": pods "backend" already exists
error validating "x.yaml": error validating data: kind not set
Error from server (InternalError): error when patching "web.yaml": Internal error occurred: failed to allocate a nodePort: range is full`
	if got != want {
		t.Errorf("FormatErrors =\n%s\nwant\n%s", got, want)
	}
	if one := FormatErrors([]Sourced{{portTaken, "creating", "b.yaml"}}); one != FormatError(portTaken, "creating", "b.yaml") {
		t.Errorf("one error is not printed as FormatError prints it: %q", one)
	}
}

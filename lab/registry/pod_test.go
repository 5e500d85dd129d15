package registry

import (
	"fmt"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestPodDefaults(t *testing.T) {
	r := newRegistry(t, Config{})
	in := pod("backend")
	in.Spec.Containers = append(in.Spec.Containers,
		corev1.Container{Name: "latest", Image: "nginx", ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt32(80)}}}},
		corev1.Container{Name: "explicit-latest", Image: "nginx:latest"},
		corev1.Container{Name: "registry-port", Image: "localhost:5000/app"},
		corev1.Container{Name: "digest", Image: "nginx@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
	)
	got, err := r.CreatePod(in)
	if err != nil {
		t.Fatal(err)
	}
	s := got.Spec
	probe := s.Containers[1].ReadinessProbe
	checks := []struct {
		what      string
		got, want any
	}{
		{"namespace", got.Namespace, "default"},
		{"restartPolicy", s.RestartPolicy, corev1.RestartPolicyAlways},
		{"dnsPolicy", s.DNSPolicy, corev1.DNSClusterFirst},
		{"terminationGracePeriodSeconds", *s.TerminationGracePeriodSeconds, int64(30)},
		{"schedulerName", s.SchedulerName, "default-scheduler"},
		{"enableServiceLinks", *s.EnableServiceLinks, true},
		{"port protocol", s.Containers[0].Ports[0].Protocol, corev1.ProtocolTCP},
		{"pull policy tag 2.53", s.Containers[0].ImagePullPolicy, corev1.PullIfNotPresent},
		{"pull policy no tag", s.Containers[1].ImagePullPolicy, corev1.PullAlways},
		{"pull policy :latest", s.Containers[2].ImagePullPolicy, corev1.PullAlways},
		{"pull policy registry port", s.Containers[3].ImagePullPolicy, corev1.PullAlways},
		{"pull policy digest", s.Containers[4].ImagePullPolicy, corev1.PullIfNotPresent},
		{"terminationMessagePath", s.Containers[0].TerminationMessagePath, "/dev/termination-log"},
		{"probe timeout", probe.TimeoutSeconds, int32(1)},
		{"probe period", probe.PeriodSeconds, int32(10)},
		{"probe success", probe.SuccessThreshold, int32(1)},
		{"probe failure", probe.FailureThreshold, int32(3)},
		{"probe path", probe.HTTPGet.Path, "/"},
		{"probe scheme", probe.HTTPGet.Scheme, corev1.URISchemeHTTP},
		{"phase", got.Status.Phase, corev1.PodPending},
		{"qos", got.Status.QOSClass, corev1.PodQOSBestEffort},
		{"generation", got.Generation, int64(1)},
		{"creationTimestamp", got.CreationTimestamp.Time.Equal(testNow), true},
	}
	for _, c := range checks {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
}

func TestPodValidationErrors(t *testing.T) {
	long := strings.Repeat("a", 254)
	tests := []struct {
		name   string
		mutate func(p *corev1.Pod)
		want   string
	}{
		{"name subdomain", func(p *corev1.Pod) { p.Name = "Backend_1" },
			`metadata.name: Invalid value: "Backend_1": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`},
		{"name too long", func(p *corev1.Pod) { p.Name = long },
			`metadata.name: Invalid value: "` + long + `": must be no more than 253 characters`},
		{"label value", func(p *corev1.Pod) { p.Labels = map[string]string{"app": "-x"} },
			`metadata.labels: Invalid value: "-x": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')`},
		{"no containers", func(p *corev1.Pod) { p.Spec.Containers = nil },
			`spec.containers: Required value`},
		{"container name", func(p *corev1.Pod) { p.Spec.Containers[0].Name = "App" },
			`spec.containers[0].name: Invalid value: "App": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`},
		{"container name missing", func(p *corev1.Pod) { p.Spec.Containers[0].Name = "" },
			`spec.containers[0].name: Required value`},
		{"container names unique", func(p *corev1.Pod) { p.Spec.Containers = append(p.Spec.Containers, p.Spec.Containers[0]) },
			`spec.containers[1].name: Duplicate value: "app"`},
		{"image", func(p *corev1.Pod) { p.Spec.Containers[0].Image = "" },
			`spec.containers[0].image: Required value`},
		{"containerPort", func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].ContainerPort = 70000 },
			`spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive`},
		{"containerPort missing", func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].ContainerPort = 0 },
			`spec.containers[0].ports[0].containerPort: Required value`},
		{"port protocol", func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].Protocol = "tcp" },
			`spec.containers[0].ports[0].protocol: Unsupported value: "tcp": supported values: "SCTP", "TCP", "UDP"`},
		{"port name", func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].Name = "HTTP" },
			`[spec.containers[0].ports[0].name: Invalid value: "HTTP": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-), spec.containers[0].ports[0].name: Invalid value: "HTTP": must contain at least one letter (a-z)]`},
		{"probe handler", func(p *corev1.Pod) { p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{} },
			`spec.containers[0].readinessProbe: Required value: must specify a handler type`},
		{"probe two handlers", func(p *corev1.Pod) {
			p.Spec.Containers[0].LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
				HTTPGet:   &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(80)},
				TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(80)},
			}}
		}, `spec.containers[0].livenessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type`},
		{"liveness successThreshold", func(p *corev1.Pod) {
			p.Spec.Containers[0].LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(80)}}, SuccessThreshold: 2}
		}, `spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1`},
		{"probe port name", func(p *corev1.Pod) {
			p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromString("Web")}}}
		}, `spec.containers[0].readinessProbe.httpGet.port: Invalid value: "Web": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)`},
		{"restartPolicy", func(p *corev1.Pod) { p.Spec.RestartPolicy = "Sometimes" },
			`spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "Never", "OnFailure"`},
		{"imagePullPolicy", func(p *corev1.Pod) { p.Spec.Containers[0].ImagePullPolicy = "Sometimes" },
			`spec.containers[0].imagePullPolicy: Unsupported value: "Sometimes": supported values: "Always", "IfNotPresent", "Never"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRegistry(t, Config{})
			p := pod("backend")
			tt.mutate(p)
			_, err := r.CreatePod(p)
			want := fmt.Sprintf("Pod %q is invalid: %s", p.Name, tt.want)
			if errText(err) != want {
				t.Errorf("\n got %s\nwant %s", errText(err), want)
			}
			if len(r.ListPods()) != 0 {
				t.Error("invalid pod stored")
			}
		})
	}
}

func TestPodUpdate(t *testing.T) {
	r := newRegistry(t, Config{})
	created, err := r.CreatePod(pod("backend"))
	if err != nil {
		t.Fatal(err)
	}
	// The scheduler binds it and the kubelet reports it running.
	running, err := r.UpdatePodStatus("default", "backend", func(p *corev1.Pod) {
		p.Spec.NodeName = "node-1"
		p.Status.Phase = corev1.PodRunning
		p.Status.PodIP = "10.244.1.5"
		p.Status.PodIPs = []corev1.PodIP{{IP: "10.244.1.5"}}
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
		p.Spec.Containers[0].Image = "ignored" // not a status field
	})
	if err != nil {
		t.Fatal(err)
	}
	if running.Spec.NodeName != "node-1" || running.Status.PodIP != "10.244.1.5" || running.Spec.Containers[0].Image == "ignored" ||
		running.ResourceVersion == created.ResourceVersion {
		t.Errorf("status update: %+v", running)
	}

	// Image change (from a manifest without nodeName): allowed, status kept.
	newImage := pod("backend")
	newImage.Spec.Containers[0].Image = "registry.k8s.io/e2e-test-images/agnhost:2.54"
	newImage.Labels["tier"] = "b"
	up, err := r.UpdatePod(newImage)
	if err != nil {
		t.Fatal(err)
	}
	if up.Spec.Containers[0].Image != newImage.Spec.Containers[0].Image || up.Spec.NodeName != "node-1" ||
		up.Status.PodIP != "10.244.1.5" || up.Generation != 2 || up.Labels["tier"] != "b" {
		t.Errorf("image update: %+v", up)
	}

	// Port change: Forbidden.
	bad := pod("backend")
	bad.Spec.Containers[0].Ports[0].ContainerPort = 9090
	_, err = r.UpdatePod(bad)
	want := "Pod \"backend\" is invalid: spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"
	if errText(err) != want {
		t.Errorf("port change:\n got %s\nwant %s", errText(err), want)
	}
	if _, err := r.UpdatePod(pod("nope")); errText(err) != `pods "nope" not found` {
		t.Errorf("update missing pod: %v", err)
	}

	// Graceful delete: deletionTimestamp through the status path, then a
	// create of the same name says it is being deleted.
	ts := metav1.NewTime(testNow)
	if _, err := r.UpdatePodStatus("default", "backend", func(p *corev1.Pod) { p.DeletionTimestamp = &ts }); err != nil {
		t.Fatal(err)
	}
	_, err = r.CreatePod(pod("backend"))
	if errText(err) != `object is being deleted: pods "backend" already exists` || !apierrors.IsAlreadyExists(err) {
		t.Errorf("create while terminating: %v", err)
	}
	if err := r.DeletePod("", "backend"); err != nil {
		t.Fatal(err)
	}
	if err := r.DeletePod("", "backend"); errText(err) != `pods "backend" not found` {
		t.Errorf("second delete: %v", err)
	}
	if _, err := r.UpdatePodStatus("default", "backend", nil); !apierrors.IsNotFound(err) {
		t.Errorf("status of a deleted pod: %v", err)
	}
}

func TestGenerateName(t *testing.T) {
	r := newRegistry(t, Config{})
	p := pod("")
	p.GenerateName = "web-5d4f8c-"
	got, err := r.CreatePod(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got.Name, "web-5d4f8c-") || len(got.Name) != len("web-5d4f8c-")+5 {
		t.Errorf("generated name %q", got.Name)
	}
}

func TestDeploymentDefaults(t *testing.T) {
	r := newRegistry(t, Config{})
	d := deployment("web", 3)
	d.Spec.Replicas = nil
	got, err := r.CreateDeployment(d)
	if err != nil {
		t.Fatal(err)
	}
	s := got.Spec
	checks := []struct {
		what      string
		got, want any
	}{
		{"replicas", *s.Replicas, int32(1)},
		{"strategy", s.Strategy.Type, appsv1.RollingUpdateDeploymentStrategyType},
		{"maxUnavailable", s.Strategy.RollingUpdate.MaxUnavailable.String(), "25%"},
		{"maxSurge", s.Strategy.RollingUpdate.MaxSurge.String(), "25%"},
		{"revisionHistoryLimit", *s.RevisionHistoryLimit, int32(10)},
		{"progressDeadlineSeconds", *s.ProgressDeadlineSeconds, int32(600)},
		{"template restartPolicy", s.Template.Spec.RestartPolicy, corev1.RestartPolicyAlways},
		{"template dnsPolicy", s.Template.Spec.DNSPolicy, corev1.DNSClusterFirst},
		{"template port protocol", s.Template.Spec.Containers[0].Ports[0].Protocol, corev1.ProtocolTCP},
		{"generation", got.Generation, int64(1)},
		{"namespace", got.Namespace, "default"},
	}
	for _, c := range checks {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
}

func TestDeploymentValidationErrors(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(d *appsv1.Deployment)
		want   string
	}{
		{"name", func(d *appsv1.Deployment) { d.Name = "Web" },
			`metadata.name: Invalid value: "Web": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`},
		// As on a real cluster (a nil selector matches nothing), both errors.
		{"selector missing", func(d *appsv1.Deployment) { d.Spec.Selector = nil },
			"[spec.selector: Required value, spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`]"},
		{"selector mismatch", func(d *appsv1.Deployment) { d.Spec.Template.Labels = map[string]string{"app": "x"} },
			"spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"x\"}: `selector` does not match template `labels`"},
		{"replicas", func(d *appsv1.Deployment) { n := int32(-1); d.Spec.Replicas = &n },
			`spec.replicas: Invalid value: -1: must be greater than or equal to 0`},
		{"template container image", func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "" },
			`spec.template.spec.containers[0].image: Required value`},
		{"template no containers", func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers = nil },
			`spec.template.spec.containers: Required value`},
		{"template restartPolicy", func(d *appsv1.Deployment) { d.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyNever },
			`spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRegistry(t, Config{})
			d := deployment("web", 2)
			tt.mutate(d)
			_, err := r.CreateDeployment(d)
			want := fmt.Sprintf("Deployment.apps %q is invalid: %s", d.Name, tt.want)
			if errText(err) != want {
				t.Errorf("\n got %s\nwant %s", errText(err), want)
			}
		})
	}
	r := newRegistry(t, Config{ErrorValues: JSONValues})
	d := deployment("web", 1)
	d.Spec.Template.Labels = map[string]string{"app": "x"}
	_, err := r.CreateDeployment(d)
	if want := "Deployment.apps \"web\" is invalid: spec.template.metadata.labels: Invalid value: {\"app\":\"x\"}: `selector` does not match template `labels`"; errText(err) != want {
		t.Errorf("JSON style:\n got %s\nwant %s", errText(err), want)
	}
}

func TestDeploymentUpdate(t *testing.T) {
	r := newRegistry(t, Config{})
	created, err := r.CreateDeployment(deployment("web", 2))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.CreateDeployment(deployment("web", 2)); errText(err) != `deployments.apps "web" already exists` {
		t.Errorf("duplicate: %v", err)
	}
	st, err := r.UpdateDeploymentStatus("default", "web", func(d *appsv1.Deployment) {
		d.Status.Replicas, d.Status.ReadyReplicas, d.Status.ObservedGeneration = 2, 2, 1
		*d.Spec.Replicas = 9 // not a status field
	})
	if err != nil || st.Status.ReadyReplicas != 2 || *st.Spec.Replicas != 2 {
		t.Fatalf("status update: %+v %v", st, err)
	}
	scaled, err := r.UpdateDeployment(deployment("web", 5))
	if err != nil {
		t.Fatal(err)
	}
	if *scaled.Spec.Replicas != 5 || scaled.Generation != 2 || scaled.Status.ReadyReplicas != 2 || scaled.UID != created.UID {
		t.Errorf("scale: replicas %d gen %d status %+v", *scaled.Spec.Replicas, scaled.Generation, scaled.Status)
	}
	same, err := r.UpdateDeployment(deployment("web", 5))
	if err != nil || same.Generation != 2 || same.ResourceVersion != scaled.ResourceVersion {
		t.Errorf("no-op update: gen %d rv %s/%s %v", same.Generation, same.ResourceVersion, scaled.ResourceVersion, err)
	}
	moved := deployment("web", 5)
	moved.Spec.Selector.MatchLabels = map[string]string{"app": "web", "v": "2"}
	moved.Spec.Template.Labels = map[string]string{"app": "web", "v": "2"}
	_, err = r.UpdateDeployment(moved)
	if want := `Deployment.apps "web" is invalid: spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"web", "v":"2"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable`; errText(err) != want {
		t.Errorf("selector change:\n got %s\nwant %s", errText(err), want)
	}
	if err := r.DeleteDeployment("default", "web"); err != nil {
		t.Fatal(err)
	}
	if err := r.DeleteDeployment("default", "web"); errText(err) != `deployments.apps "web" not found` {
		t.Errorf("second delete: %v", err)
	}
	if len(r.ListDeployments()) != 0 {
		t.Error("list after delete")
	}
}

package registry

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/nplab/nplab/lab/portalloc"
)

// TestServiceDefaults pins §3: what a minimal NodePort Service looks like
// after create.
func TestServiceDefaults(t *testing.T) {
	r := newRegistry(t, Config{})
	in := svc("web", corev1.ServiceTypeNodePort, corev1.ServicePort{Port: 80})
	in.Spec.Type = ""
	in.Spec.Type = corev1.ServiceTypeNodePort
	got, err := r.CreateService(in)
	if err != nil {
		t.Fatal(err)
	}
	s := got.Spec
	p := s.Ports[0]
	checks := []struct {
		what      string
		got, want any
	}{
		{"namespace", got.Namespace, "default"},
		{"protocol", p.Protocol, corev1.ProtocolTCP},
		{"targetPort", p.TargetPort, intstr.FromInt32(80)},
		{"sessionAffinity", s.SessionAffinity, corev1.ServiceAffinityNone},
		{"sessionAffinityConfig", s.SessionAffinityConfig == nil, true},
		{"externalTrafficPolicy", s.ExternalTrafficPolicy, corev1.ServiceExternalTrafficPolicyCluster},
		{"internalTrafficPolicy", *s.InternalTrafficPolicy, corev1.ServiceInternalTrafficPolicyCluster},
		{"ipFamilyPolicy", *s.IPFamilyPolicy, corev1.IPFamilyPolicySingleStack},
		{"ipFamilies", fmt.Sprint(s.IPFamilies), "[IPv4]"},
		{"clusterIPs", len(s.ClusterIPs) == 1 && s.ClusterIPs[0] == s.ClusterIP, true},
		{"nodePort in dynamic band", p.NodePort >= 30086 && p.NodePort <= 32767, true},
		{"healthCheckNodePort", s.HealthCheckNodePort, int32(0)},
		{"creationTimestamp", got.CreationTimestamp.Time.Equal(testNow), true},
		{"resourceVersion", got.ResourceVersion, "2"}, // 1 is default/kubernetes
		{"uid set", len(got.UID) == 36, true},
		{"generation", got.Generation, int64(0)},
	}
	for _, c := range checks {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
	ip := netip.MustParseAddr(s.ClusterIP)
	if !netip.MustParsePrefix("10.96.0.0/12").Contains(ip) || ip == netip.MustParseAddr("10.96.0.1") {
		t.Errorf("clusterIP %v: want in 10.96.0.0/12 and not 10.96.0.1", ip)
	}

	// ClusterIP type: no externalTrafficPolicy, no nodePort.
	c, err := r.CreateService(svc("internal", "", corev1.ServicePort{Port: 80, Name: "http"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Spec.Type != corev1.ServiceTypeClusterIP || c.Spec.ExternalTrafficPolicy != "" || c.Spec.Ports[0].NodePort != 0 {
		t.Errorf("ClusterIP defaults: type %q etp %q nodePort %d", c.Spec.Type, c.Spec.ExternalTrafficPolicy, c.Spec.Ports[0].NodePort)
	}

	// ClientIP affinity gets the 10800 s timeout; None clears the config.
	aff := svc("sticky", corev1.ServiceTypeNodePort, port(80, 0))
	aff.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
	got, err = r.CreateService(aff)
	if err != nil {
		t.Fatal(err)
	}
	if ts := got.Spec.SessionAffinityConfig.ClientIP.TimeoutSeconds; ts == nil || *ts != 10800 {
		t.Errorf("ClientIP timeout = %v, want 10800", ts)
	}
	none := svc("none", corev1.ServiceTypeNodePort, port(80, 0))
	ten := int32(10)
	none.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: &ten}}
	got, err = r.CreateService(none)
	if err != nil || got.Spec.SessionAffinityConfig != nil {
		t.Errorf("None affinity: config %v, err %v", got.Spec.SessionAffinityConfig, err)
	}

	// Named targetPort is kept; "" or 0 becomes the port.
	named := svc("named", corev1.ServiceTypeClusterIP, corev1.ServicePort{Port: 80, TargetPort: intstr.FromString("http")})
	got, err = r.CreateService(named)
	if err != nil || got.Spec.Ports[0].TargetPort != intstr.FromString("http") {
		t.Errorf("named targetPort: %v %v", got.Spec.Ports[0].TargetPort, err)
	}
	if r.NodePortRange() != portalloc.DefaultRange || r.ServiceCIDR() != netip.MustParsePrefix("10.96.0.0/12") {
		t.Errorf("config: %v %v", r.NodePortRange(), r.ServiceCIDR())
	}
}

// TestDocsCases are the NodePort notes' manifests at registry level.
func TestDocsCases(t *testing.T) {
	r := newRegistry(t, Config{})
	front, err := r.CreateService(svc("frontend-service", corev1.ServiceTypeNodePort, port(80, 30080)))
	if err != nil {
		t.Fatalf("frontend-service: %v", err)
	}
	if front.Spec.Ports[0].NodePort != 30080 || !r.NodePortAllocated(30080) {
		t.Fatalf("frontend-service nodePort %d", front.Spec.Ports[0].NodePort)
	}

	_, err = r.CreateService(svc("backend-service", corev1.ServiceTypeNodePort, port(80, 30080)))
	want := `Service "backend-service" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated`
	if errText(err) != want {
		t.Errorf("backend-service:\n got %s\nwant %s", errText(err), want)
	}
	var se *apierrors.StatusError
	if !errors.As(err, &se) || se.ErrStatus.Code != 422 || se.ErrStatus.Reason != metav1.StatusReasonInvalid ||
		se.ErrStatus.Details.Kind != "Service" || se.ErrStatus.Details.Name != "backend-service" ||
		len(se.ErrStatus.Details.Causes) != 1 || se.ErrStatus.Details.Causes[0].Field != "spec.ports[0].nodePort" ||
		se.ErrStatus.Details.Causes[0].Message != "Invalid value: 30080: provided port is already allocated" {
		t.Errorf("backend-service status: %#v", se)
	}

	_, err = r.CreateService(svc("range-service", corev1.ServiceTypeNodePort, port(80, 300081)))
	want = `Service "range-service" is invalid: spec.ports[0].nodePort: Invalid value: 300081: provided port is not in the valid range. The range of valid ports is 30000-32767`
	if errText(err) != want {
		t.Errorf("nodePort 300081:\n got %s\nwant %s", errText(err), want)
	}

	_, err = r.CreateService(svc("NodePort-Service", corev1.ServiceTypeNodePort, port(80, 30081)))
	want = `Service "NodePort-Service" is invalid: metadata.name: Invalid value: "NodePort-Service": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')`
	if errText(err) != want {
		t.Errorf("NodePort-Service:\n got %s\nwant %s", errText(err), want)
	}
	if r.NodePortAllocated(30081) {
		t.Error("rejected NodePort-Service left 30081 allocated")
	}

	if _, err := r.CreatePod(pod("backend")); err != nil {
		t.Fatal(err)
	}
	_, err = r.CreatePod(pod("backend"))
	if errText(err) != `pods "backend" already exists` || !apierrors.IsAlreadyExists(err) {
		t.Errorf("second backend pod: %v", err)
	}

	// A duplicate Service with the same explicit nodePort: allocation runs
	// before the existence check, so the user sees the port error.
	_, err = r.CreateService(svc("frontend-service", corev1.ServiceTypeNodePort, port(80, 30080)))
	if errText(err) != `Service "frontend-service" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated` {
		t.Errorf("frontend-service again: %v", err)
	}
	// Without a nodePort it is AlreadyExists, and the auto port is released.
	used := r.NodePortsUsed()
	_, err = r.CreateService(svc("frontend-service", corev1.ServiceTypeNodePort, port(80, 0)))
	if errText(err) != `services "frontend-service" already exists` || !apierrors.IsAlreadyExists(err) {
		t.Errorf("frontend-service without nodePort: %v", err)
	}
	if r.NodePortsUsed() != used {
		t.Errorf("AlreadyExists leaked a nodePort: used %d -> %d", used, r.NodePortsUsed())
	}
}

// TestAllocationBeforeValidation pins §2.0.
func TestAllocationBeforeValidation(t *testing.T) {
	r := newRegistry(t, Config{})
	if _, err := r.CreateService(svc("a", corev1.ServiceTypeNodePort, port(80, 30080))); err != nil {
		t.Fatal(err)
	}
	// Bad name + taken port: only the port error.
	_, err := r.CreateService(svc("Bad_Name", corev1.ServiceTypeNodePort, port(80, 30080)))
	if errText(err) != `Service "Bad_Name" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated` {
		t.Errorf("bad name + taken port: %v", err)
	}
	// Bad name + free port: the name error, the port stays free, the
	// clusterIP too.
	ipsBefore := r.ips.Used()
	_, err = r.CreateService(svc("Bad_Name", corev1.ServiceTypeNodePort, port(80, 30090)))
	if !strings.HasPrefix(errText(err), `Service "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a DNS-1035 label`) {
		t.Errorf("bad name + free port: %v", err)
	}
	if r.NodePortAllocated(30090) || r.ips.Used() != ipsBefore {
		t.Errorf("rollback failed: 30090 allocated %v, ips %d -> %d", r.NodePortAllocated(30090), ipsBefore, r.ips.Used())
	}
	if _, err := r.CreateService(svc("c", corev1.ServiceTypeNodePort, port(80, 30090))); err != nil {
		t.Errorf("30090 after rollback: %v", err)
	}
}

// TestSharedNodePort: entries with the same port number share a nodePort
// (auto and explicit); different ports with the same explicit nodePort do
// not.
func TestSharedNodePort(t *testing.T) {
	r := newRegistry(t, Config{})
	dns := func(name string, np int32) *corev1.Service {
		return svc(name, corev1.ServiceTypeNodePort,
			corev1.ServicePort{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP, NodePort: np},
			corev1.ServicePort{Name: "dns-udp", Port: 53, Protocol: corev1.ProtocolUDP})
	}
	got, err := r.CreateService(dns("dns", 0))
	if err != nil {
		t.Fatal(err)
	}
	if a, b := got.Spec.Ports[0].NodePort, got.Spec.Ports[1].NodePort; a == 0 || a != b {
		t.Errorf("auto: TCP 53 -> %d, UDP 53 -> %d; want one shared port", a, b)
	}
	if r.NodePortsUsed() != 1 {
		t.Errorf("used %d nodePorts, want 1", r.NodePortsUsed())
	}
	got, err = r.CreateService(dns("dns2", 30053))
	if err != nil {
		t.Fatal(err)
	}
	if a, b := got.Spec.Ports[0].NodePort, got.Spec.Ports[1].NodePort; a != 30053 || b != 30053 {
		t.Errorf("explicit: %d/%d, want 30053/30053", a, b)
	}
	// Delete releases the shared port once, and it is free again.
	if err := r.DeleteService("default", "dns2"); err != nil {
		t.Fatal(err)
	}
	if r.NodePortAllocated(30053) {
		t.Error("30053 still allocated after delete")
	}
	_, err = r.CreateService(svc("two", corev1.ServiceTypeNodePort,
		corev1.ServicePort{Name: "a", Port: 80, NodePort: 30070},
		corev1.ServicePort{Name: "b", Port: 81, Protocol: corev1.ProtocolUDP, NodePort: 30070}))
	if errText(err) != `Service "two" is invalid: spec.ports[1].nodePort: Invalid value: 30070: provided port is already allocated` {
		t.Errorf("different ports, same nodePort: %v", err)
	}
	if r.NodePortAllocated(30070) {
		t.Error("30070 leaked")
	}
	// Same port, same protocol, same nodePort: validation's duplicates.
	_, err = r.CreateService(svc("dup", corev1.ServiceTypeNodePort,
		corev1.ServicePort{Name: "a", Port: 80, NodePort: 30071},
		corev1.ServicePort{Name: "b", Port: 80, NodePort: 30071}))
	want := `Service "dup" is invalid: [spec.ports[1].nodePort: Duplicate value: 30071, spec.ports[1]: Duplicate value: core.ServicePort{Name:"", Protocol:"TCP", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:""}, NodePort:0}]`
	if errText(err) != want {
		t.Errorf("duplicates:\n got %s\nwant %s", errText(err), want)
	}
}

// TestServiceValidationErrors pins the verbatim strings of §2.3-§2.12.
func TestServiceValidationErrors(t *testing.T) {
	long := strings.Repeat("a", 64)
	tests := []struct {
		name   string
		mutate func(s *corev1.Service)
		want   string
	}{
		{"name DNS-1035", func(s *corev1.Service) { s.Name = "MyService" },
			`metadata.name: Invalid value: "MyService": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')`},
		{"name starts with digit", func(s *corev1.Service) { s.Name = "1web" },
			`metadata.name: Invalid value: "1web": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')`},
		{"name too long", func(s *corev1.Service) { s.Name = long },
			`metadata.name: Invalid value: "` + long + `": must be no more than 63 characters`},
		{"name missing", func(s *corev1.Service) { s.Name = "" },
			`metadata.name: Required value: name or generateName is required`},
		{"type", func(s *corev1.Service) { s.Spec.Type = "Foo"; s.Spec.ExternalTrafficPolicy = "" },
			`spec.type: Unsupported value: "Foo": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"`},
		{"headless NodePort", func(s *corev1.Service) { s.Spec.ClusterIP = "None" },
			`spec.clusterIPs[0]: Invalid value: "None": may not be set to 'None' for NodePort services`},
		{"no ports", func(s *corev1.Service) { s.Spec.Ports = nil },
			`spec.ports: Required value`},
		{"names required", func(s *corev1.Service) {
			s.Spec.Ports = []corev1.ServicePort{{Name: "http", Port: 80}, {Port: 443}}
		}, `spec.ports[1].name: Required value`},
		{"name label", func(s *corev1.Service) { s.Spec.Ports[0].Name = "HTTP" },
			`spec.ports[0].name: Invalid value: "HTTP": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`},
		{"name dots", func(s *corev1.Service) { s.Spec.Ports[0].Name = "a.b" },
			`spec.ports[0].name: Invalid value: "a.b": must not contain dots`},
		{"name unique", func(s *corev1.Service) {
			s.Spec.Ports = []corev1.ServicePort{{Name: "http", Port: 80}, {Name: "http", Port: 81}}
		}, `spec.ports[1].name: Duplicate value: "http"`},
		{"port 0", func(s *corev1.Service) { s.Spec.Ports[0].Port = 0; s.Spec.Ports[0].TargetPort = intstr.FromInt32(8080) },
			`spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive`},
		{"protocol", func(s *corev1.Service) { s.Spec.Ports[0].Protocol = "HTTP" },
			`spec.ports[0].protocol: Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"`},
		{"targetPort number", func(s *corev1.Service) { s.Spec.Ports[0].TargetPort = intstr.FromInt32(70000) },
			`spec.ports[0].targetPort: Invalid value: 70000: must be between 1 and 65535, inclusive`},
		{"targetPort name too long", func(s *corev1.Service) { s.Spec.Ports[0].TargetPort = intstr.FromString("abcdefghijklmnop") },
			`spec.ports[0].targetPort: Invalid value: "abcdefghijklmnop": must be no more than 15 characters`},
		{"targetPort name rules", func(s *corev1.Service) { s.Spec.Ports[0].TargetPort = intstr.FromString("-1--2_") },
			`[spec.ports[0].targetPort: Invalid value: "-1--2_": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-), spec.ports[0].targetPort: Invalid value: "-1--2_": must contain at least one letter (a-z), spec.ports[0].targetPort: Invalid value: "-1--2_": must not contain consecutive hyphens, spec.ports[0].targetPort: Invalid value: "-1--2_": must not begin or end with a hyphen]`},
		{"duplicate port", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeClusterIP
			s.Spec.ExternalTrafficPolicy = ""
			s.Spec.Ports = []corev1.ServicePort{{Name: "a", Port: 443}, {Name: "b", Port: 443}}
		}, `spec.ports[1]: Duplicate value: core.ServicePort{Name:"", Protocol:"TCP", AppProtocol:(*string)(nil), Port:443, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:""}, NodePort:0}`},
		{"nodePort on ClusterIP", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeClusterIP
			s.Spec.ExternalTrafficPolicy = ""
			s.Spec.Ports[0].NodePort = 30080
		},
			"spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"},
		{"selector", func(s *corev1.Service) { s.Spec.Selector = map[string]string{"app": "bad value"} },
			`spec.selector: Invalid value: "bad value": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')`},
		{"sessionAffinity", func(s *corev1.Service) { s.Spec.SessionAffinity = "Sticky" },
			`spec.sessionAffinity: Unsupported value: "Sticky": supported values: "ClientIP", "None"`},
		{"timeout 0", func(s *corev1.Service) {
			z := int32(0)
			s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
			s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: &z}}
		}, `spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 0: must be greater than 0 and less than 86400`},
		{"timeout 86401", func(s *corev1.Service) {
			z := int32(86401)
			s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
			s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: &z}}
		}, `spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 86401: must be greater than 0 and less than 86400`},
		{"etp on ClusterIP", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeClusterIP
			s.Spec.Ports[0].NodePort = 0
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
		}, `spec.externalTrafficPolicy: Invalid value: "Local": may only be set for externally-accessible services`},
		{"etp value", func(s *corev1.Service) { s.Spec.ExternalTrafficPolicy = "Foo" },
			`spec.externalTrafficPolicy: Unsupported value: "Foo": supported values: "Cluster", "Local"`},
		{"healthCheckNodePort on NodePort", func(s *corev1.Service) {
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			s.Spec.HealthCheckNodePort = 30100
		}, "spec.healthCheckNodePort: Invalid value: 30100: may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"},
		{"allocateLoadBalancerNodePorts", func(s *corev1.Service) { f := false; s.Spec.AllocateLoadBalancerNodePorts = &f },
			"spec.allocateLoadBalancerNodePorts: Forbidden: may only be used when `type` is 'LoadBalancer'"},
		{"internalTrafficPolicy", func(s *corev1.Service) {
			p := corev1.ServiceInternalTrafficPolicy("Foo")
			s.Spec.InternalTrafficPolicy = &p
		},
			`spec.internalTrafficPolicy: Unsupported value: "Foo": supported values: "Cluster", "Local"`},
		{"clusterIP out of range", func(s *corev1.Service) { s.Spec.ClusterIP = "1.2.3.4" },
			`spec.clusterIPs: Invalid value: []string{"1.2.3.4"}: failed to allocate IP 1.2.3.4: the provided IP (1.2.3.4) is not in the valid range. The range of valid IPs is 10.96.0.0/12`},
		{"clusterIP of the kubernetes service", func(s *corev1.Service) { s.Spec.ClusterIP = "10.96.0.1" },
			`spec.clusterIPs: Invalid value: []string{"10.96.0.1"}: failed to allocate IP 10.96.0.1: provided IP is already allocated`},
		{"clusterIP not an IP", func(s *corev1.Service) { s.Spec.ClusterIP = "10.96.0.300" },
			`spec.clusterIPs[0]: Invalid value: "10.96.0.300": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRegistry(t, Config{})
			s := svc("web", corev1.ServiceTypeNodePort, corev1.ServicePort{Name: "http", Port: 80})
			SetServiceDefaults(s)
			tt.mutate(s)
			used := r.NodePortsUsed()
			_, err := r.CreateService(s)
			name := s.Name
			want := fmt.Sprintf("Service %q is invalid: %s", name, tt.want)
			if errText(err) != want {
				t.Errorf("\n got %s\nwant %s", errText(err), want)
			}
			if !apierrors.IsInvalid(err) {
				t.Errorf("not a 422 Invalid: %#v", err)
			}
			if r.NodePortsUsed() != used || r.ips.Used() != 1 {
				t.Errorf("rejected create left allocations: nodePorts %d->%d, IPs %d", used, r.NodePortsUsed(), r.ips.Used())
			}
		})
	}
}

// TestJSONValueStyle: the apimachinery v1.28+ rendering of complex values.
func TestJSONValueStyle(t *testing.T) {
	r := newRegistry(t, Config{ErrorValues: JSONValues})
	_, err := r.CreateService(svc("dup", corev1.ServiceTypeClusterIP,
		corev1.ServicePort{Name: "a", Port: 443}, corev1.ServicePort{Name: "b", Port: 443}))
	want := `Service "dup" is invalid: spec.ports[1]: Duplicate value: {"Name":"","Protocol":"TCP","AppProtocol":null,"Port":443,"TargetPort":0,"NodePort":0}`
	if errText(err) != want {
		t.Errorf("\n got %s\nwant %s", errText(err), want)
	}
	s := svc("ip", corev1.ServiceTypeClusterIP, port(80, 0))
	s.Spec.ClusterIP = "1.2.3.4"
	_, err = r.CreateService(s)
	want = `Service "ip" is invalid: spec.clusterIPs: Invalid value: ["1.2.3.4"]: failed to allocate IP 1.2.3.4: the provided IP (1.2.3.4) is not in the valid range. The range of valid IPs is 10.96.0.0/12`
	if errText(err) != want {
		t.Errorf("\n got %s\nwant %s", errText(err), want)
	}
}

// TestRequestedClusterIP: a free requested clusterIP is honoured and
// released on delete.
func TestRequestedClusterIP(t *testing.T) {
	r := newRegistry(t, Config{})
	s := svc("web", corev1.ServiceTypeClusterIP, port(80, 0))
	s.Spec.ClusterIP = "10.96.100.100"
	got, err := r.CreateService(s)
	if err != nil || got.Spec.ClusterIP != "10.96.100.100" || got.Spec.ClusterIPs[0] != "10.96.100.100" {
		t.Fatalf("requested clusterIP: %v %v", got, err)
	}
	if err := r.DeleteService("", "web"); err != nil {
		t.Fatal(err)
	}
	if r.ClusterIPAllocated(netip.MustParseAddr("10.96.100.100")) {
		t.Error("clusterIP not released on delete")
	}
	h := svc("headless", corev1.ServiceTypeClusterIP, port(80, 0))
	h.Spec.ClusterIP = "None"
	got, err = r.CreateService(h)
	if err != nil || got.Spec.ClusterIP != "None" {
		t.Errorf("headless: %v %v", got.Spec.ClusterIP, err)
	}
}

// TestRangeFullThroughRegistry: a range of 1000 takes 1000 Services, the
// 1001st gets the 500 InternalError.
func TestRangeFullThroughRegistry(t *testing.T) {
	r := newRegistry(t, Config{NodePortRange: portalloc.Range{Base: 31000, Size: 1000}})
	seen := map[int32]bool{}
	for i := 0; i < 1000; i++ {
		got, err := r.CreateService(svc(fmt.Sprintf("s%d", i), corev1.ServiceTypeNodePort, port(80, 0)))
		if err != nil {
			t.Fatalf("service %d: %v", i, err)
		}
		np := got.Spec.Ports[0].NodePort
		if seen[np] || np < 31000 || np > 31999 {
			t.Fatalf("service %d got nodePort %d", i, np)
		}
		seen[np] = true
	}
	_, err := r.CreateService(svc("one-too-many", corev1.ServiceTypeNodePort, port(80, 0)))
	if errText(err) != "Internal error occurred: failed to allocate a nodePort: range is full" {
		t.Errorf("1001st: %v", err)
	}
	var se *apierrors.StatusError
	if !errors.As(err, &se) || se.ErrStatus.Code != 500 || se.ErrStatus.Reason != metav1.StatusReasonInternalError {
		t.Errorf("1001st status: %#v", err)
	}
	// The failed create must not leak its clusterIP.
	if r.ips.Used() != 1001 {
		t.Errorf("IPs used %d, want 1001 (1000 services + kubernetes)", r.ips.Used())
	}
	// A ClusterIP Service still works: no nodePort needed.
	if _, err := r.CreateService(svc("internal", corev1.ServiceTypeClusterIP, port(80, 0))); err != nil {
		t.Errorf("ClusterIP service in a full nodePort range: %v", err)
	}
}

// TestServiceUpdate pins §4.
func TestServiceUpdate(t *testing.T) {
	r := newRegistry(t, Config{})
	web := svc("web", corev1.ServiceTypeNodePort,
		corev1.ServicePort{Name: "http", Port: 80},
		corev1.ServicePort{Name: "https", Port: 443, NodePort: 30443})
	created, err := r.CreateService(web)
	if err != nil {
		t.Fatal(err)
	}
	httpNP := created.Spec.Ports[0].NodePort

	// Re-apply without nodePorts: both kept (matched by name), clusterIP kept.
	again := svc("web", corev1.ServiceTypeNodePort,
		corev1.ServicePort{Name: "https", Port: 443},
		corev1.ServicePort{Name: "http", Port: 8080})
	up, err := r.UpdateService(again)
	if err != nil {
		t.Fatal(err)
	}
	if up.Spec.Ports[0].NodePort != 30443 || up.Spec.Ports[1].NodePort != httpNP || up.Spec.ClusterIP != created.Spec.ClusterIP {
		t.Errorf("re-apply: nodePorts %d/%d clusterIP %s; want 30443/%d %s",
			up.Spec.Ports[0].NodePort, up.Spec.Ports[1].NodePort, up.Spec.ClusterIP, httpNP, created.Spec.ClusterIP)
	}
	if up.UID != created.UID || !up.CreationTimestamp.Equal(&created.CreationTimestamp) || up.ResourceVersion == created.ResourceVersion {
		t.Errorf("update metadata: uid %s/%s rv %s/%s", up.UID, created.UID, up.ResourceVersion, created.ResourceVersion)
	}
	// The same object again changes nothing, not even the resourceVersion.
	same, err := r.UpdateService(again)
	if err != nil || same.ResourceVersion != up.ResourceVersion {
		t.Errorf("no-op update: rv %s -> %s, %v", up.ResourceVersion, same.ResourceVersion, err)
	}

	// Change 30443 -> 30444: reserved now, 30443 released on success.
	other, err := r.CreateService(svc("other", corev1.ServiceTypeNodePort, port(80, 30500)))
	if err != nil {
		t.Fatal(err)
	}
	change := svc("web", corev1.ServiceTypeNodePort,
		corev1.ServicePort{Name: "https", Port: 443, NodePort: 30444},
		corev1.ServicePort{Name: "http", Port: 8080})
	if _, err := r.UpdateService(change); err != nil {
		t.Fatal(err)
	}
	if r.NodePortAllocated(30443) || !r.NodePortAllocated(30444) || !r.NodePortAllocated(int(httpNP)) {
		t.Errorf("after change: 30443 %v 30444 %v %d %v", r.NodePortAllocated(30443), r.NodePortAllocated(30444), httpNP, r.NodePortAllocated(int(httpNP)))
	}

	// A failed update changes nothing: taken port.
	before, _ := r.GetService("default", "web")
	bad := svc("web", corev1.ServiceTypeNodePort,
		corev1.ServicePort{Name: "https", Port: 443, NodePort: 30500},
		corev1.ServicePort{Name: "http", Port: 8080})
	_, err = r.UpdateService(bad)
	if errText(err) != `Service "web" is invalid: spec.ports[0].nodePort: Invalid value: 30500: provided port is already allocated` {
		t.Errorf("update to a taken port: %v", err)
	}
	// A failed update changes nothing: a free new port + invalid spec.
	bad = svc("web", corev1.ServiceTypeNodePort,
		corev1.ServicePort{Name: "https", Port: 443, NodePort: 30600},
		corev1.ServicePort{Name: "http", Port: 8080, Protocol: "HTTP"})
	_, err = r.UpdateService(bad)
	if !apierrors.IsInvalid(err) || r.NodePortAllocated(30600) || !r.NodePortAllocated(30444) {
		t.Errorf("failed update: %v; 30600 %v 30444 %v", err, r.NodePortAllocated(30600), r.NodePortAllocated(30444))
	}
	after, _ := r.GetService("default", "web")
	if after.ResourceVersion != before.ResourceVersion || after.Spec.Ports[0].NodePort != 30444 {
		t.Errorf("failed update changed the stored object")
	}

	// NodePort -> ClusterIP: everything released (dropTypeDependentFields).
	toCIP := svc("web", corev1.ServiceTypeClusterIP,
		corev1.ServicePort{Name: "https", Port: 443},
		corev1.ServicePort{Name: "http", Port: 8080})
	cip, err := r.UpdateService(toCIP)
	if err != nil {
		t.Fatal(err)
	}
	if cip.Spec.Ports[0].NodePort != 0 || cip.Spec.Ports[1].NodePort != 0 || cip.Spec.ExternalTrafficPolicy != "" ||
		r.NodePortAllocated(30444) || r.NodePortAllocated(int(httpNP)) || cip.Spec.ClusterIP != created.Spec.ClusterIP {
		t.Errorf("to ClusterIP: %+v", cip.Spec)
	}
	// ClusterIP with the old nodePorts still in the object (a client that
	// sends back what it read): they are dropped too.
	// ClusterIP -> NodePort: allocated as on create.
	back, err := r.UpdateService(svc("web", corev1.ServiceTypeNodePort,
		corev1.ServicePort{Name: "https", Port: 443, NodePort: 30443},
		corev1.ServicePort{Name: "http", Port: 8080}))
	if err != nil {
		t.Fatal(err)
	}
	if back.Spec.Ports[0].NodePort != 30443 || back.Spec.Ports[1].NodePort == 0 || back.Spec.ExternalTrafficPolicy != "Cluster" {
		t.Errorf("back to NodePort: %+v", back.Spec)
	}
	// NodePort -> ClusterIP while adding a new nodePort: Forbidden.
	_, err = r.UpdateService(svc("web", corev1.ServiceTypeClusterIP,
		corev1.ServicePort{Name: "https", Port: 443, NodePort: 30999},
		corev1.ServicePort{Name: "http", Port: 8080}))
	if errText(err) != "Service \"web\" is invalid: spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'" {
		t.Errorf("to ClusterIP with a new nodePort: %v", err)
	}
	// Changing the clusterIP is refused.
	moved := svc("web", corev1.ServiceTypeNodePort, corev1.ServicePort{Name: "https", Port: 443}, corev1.ServicePort{Name: "http", Port: 8080})
	moved.Spec.ClusterIP = "10.96.7.7"
	_, err = r.UpdateService(moved)
	if errText(err) != fmt.Sprintf(`Service "web" is invalid: spec.clusterIPs[0]: Invalid value: []string{"10.96.7.7"}: may not change once set`) {
		t.Errorf("clusterIP change: %v", err)
	}
	if r.ClusterIPAllocated(netip.MustParseAddr("10.96.7.7")) {
		t.Error("refused clusterIP change leaked 10.96.7.7")
	}
	// Stale resourceVersion: Conflict.
	stale := back.DeepCopy()
	stale.ResourceVersion = "1"
	_, err = r.UpdateService(stale)
	if !apierrors.IsConflict(err) || errText(err) != `Operation cannot be fulfilled on services "web": the object has been modified; please apply your changes to the latest version and try again` {
		t.Errorf("stale update: %v", err)
	}
	// Missing object: NotFound.
	if _, err := r.UpdateService(svc("nope", corev1.ServiceTypeNodePort, port(80, 0))); errText(err) != `services "nope" not found` {
		t.Errorf("update missing: %v", err)
	}
	// Delete releases at once; the port is immediately reusable.
	if err := r.DeleteService("default", "web"); err != nil {
		t.Fatal(err)
	}
	if err := r.DeleteService("default", "web"); errText(err) != `services "web" not found` || !apierrors.IsNotFound(err) {
		t.Errorf("second delete: %v", err)
	}
	if _, err := r.CreateService(svc("reuse", corev1.ServiceTypeNodePort, port(80, 30443))); err != nil {
		t.Errorf("reuse 30443 after delete: %v", err)
	}
	_ = other
}

// TestUpdateDuplicateNodePort: the update path's plain error (§2.6).
func TestUpdateDuplicateNodePort(t *testing.T) {
	r := newRegistry(t, Config{})
	if _, err := r.CreateService(svc("web", corev1.ServiceTypeNodePort, corev1.ServicePort{Name: "a", Port: 80})); err != nil {
		t.Fatal(err)
	}
	_, err := r.UpdateService(svc("web", corev1.ServiceTypeNodePort,
		corev1.ServicePort{Name: "a", Port: 80, NodePort: 30080},
		corev1.ServicePort{Name: "b", Port: 81, NodePort: 30080}))
	var se *apierrors.StatusError
	if errText(err) != "duplicate nodePort: {TCP 30080}" || !errors.As(err, &se) || se.ErrStatus.Code != 500 {
		t.Errorf("duplicate nodePort on update: %#v", err)
	}
	if r.NodePortAllocated(30080) {
		t.Error("30080 leaked")
	}
	// Different protocols may share a nodePort on update.
	up, err := r.UpdateService(svc("web", corev1.ServiceTypeNodePort,
		corev1.ServicePort{Name: "a", Port: 80, NodePort: 30080},
		corev1.ServicePort{Name: "b", Port: 81, Protocol: corev1.ProtocolUDP, NodePort: 30080}))
	if err != nil || up.Spec.Ports[1].NodePort != 30080 {
		t.Errorf("TCP+UDP sharing on update: %v", err)
	}
}

// TestListsAndCopies: sorted lists, and nothing returned aliases storage.
func TestListsAndCopies(t *testing.T) {
	r := newRegistry(t, Config{})
	for _, n := range []struct{ ns, name string }{{"b", "x"}, {"a", "y"}, {"a", "b"}} {
		s := svc(n.name, corev1.ServiceTypeClusterIP, port(80, 0))
		s.Namespace = n.ns
		if _, err := r.CreateService(s); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, s := range r.ListServices() {
		got = append(got, s.Namespace+"/"+s.Name)
	}
	if strings.Join(got, ",") != "a/b,a/y,b/x,default/kubernetes" {
		t.Errorf("order: %v", got)
	}
	l := r.ListServices()
	l[0].Spec.Ports[0].Port = 1
	g, _ := r.GetService("a", "b")
	g.Labels = map[string]string{"x": "y"}
	g2, ok := r.GetService("a", "b")
	if !ok || g2.Spec.Ports[0].Port != 80 || g2.Labels != nil {
		t.Error("returned objects alias the store")
	}
	if _, ok := r.GetService("a", "zzz"); ok {
		t.Error("GetService of a missing service")
	}
}

// TestConcurrentCreates: the Registry is safe for concurrent use and hands
// out distinct ports.
func TestConcurrentCreates(t *testing.T) {
	r := newRegistry(t, Config{})
	var wg sync.WaitGroup
	ports := make([]int32, 50)
	for i := range ports {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := r.CreateService(svc(fmt.Sprintf("s%d", i), corev1.ServiceTypeNodePort, port(80, 0)))
			if err != nil {
				t.Error(err)
				return
			}
			ports[i] = s.Spec.Ports[0].NodePort
			r.ListServices()
		}()
	}
	wg.Wait()
	seen := map[int32]bool{}
	for _, p := range ports {
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
}

// TestHealthCheckNodePortAndExternalName: LB+Local gets a
// healthCheckNodePort from the same bitmap, released when no longer needed;
// an ExternalName Service gets no clusterIP.
func TestHealthCheckNodePortAndExternalName(t *testing.T) {
	r := newRegistry(t, Config{})
	lb := svc("lb", corev1.ServiceTypeLoadBalancer, port(80, 0))
	lb.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	got, err := r.CreateService(lb)
	if err != nil {
		t.Fatal(err)
	}
	hc := int(got.Spec.HealthCheckNodePort)
	if hc == 0 || !r.NodePortAllocated(hc) || r.NodePortsUsed() != 2 || got.Spec.AllocateLoadBalancerNodePorts == nil || !*got.Spec.AllocateLoadBalancerNodePorts {
		t.Fatalf("LB+Local: hc %d used %d", hc, r.NodePortsUsed())
	}
	cluster := svc("lb", corev1.ServiceTypeLoadBalancer, port(80, 0))
	cluster.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
	up, err := r.UpdateService(cluster)
	if err != nil {
		t.Fatal(err)
	}
	if up.Spec.HealthCheckNodePort != 0 || r.NodePortAllocated(hc) || r.NodePortsUsed() != 1 {
		t.Errorf("LB Local -> Cluster: hc %d, %d still allocated %v", up.Spec.HealthCheckNodePort, hc, r.NodePortAllocated(hc))
	}
	en := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "ext"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.com"}}
	got, err = r.CreateService(en)
	if err != nil || got.Spec.ClusterIP != "" || got.Spec.IPFamilyPolicy != nil || got.Spec.InternalTrafficPolicy != nil {
		t.Errorf("ExternalName: %+v %v", got.Spec, err)
	}
	en.Spec.ExternalName = ""
	en.Name = "ext2"
	if _, err := r.CreateService(en); errText(err) != `Service "ext2" is invalid: spec.externalName: Required value` {
		t.Errorf("ExternalName without name: %v", err)
	}
}

// TestHealthCheckNodePortImmutable: while LB+Local stays LB+Local the
// healthCheckNodePort may not change (spec §2.10); the rejected update
// neither reserves the new number nor releases the old one.
func TestHealthCheckNodePortImmutable(t *testing.T) {
	r := newRegistry(t, Config{})
	lb := svc("lb", corev1.ServiceTypeLoadBalancer, port(80, 0))
	lb.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	lb.Spec.HealthCheckNodePort = 30100
	if _, err := r.CreateService(lb); err != nil {
		t.Fatal(err)
	}
	used := r.NodePortsUsed()
	lb.Spec.HealthCheckNodePort = 30101
	_, err := r.UpdateService(lb)
	if want := `Service "lb" is invalid: spec.healthCheckNodePort: Forbidden: field is immutable`; errText(err) != want {
		t.Errorf("changing healthCheckNodePort: %v\nwant %s", err, want)
	}
	if !r.NodePortAllocated(30100) || r.NodePortAllocated(30101) || r.NodePortsUsed() != used {
		t.Errorf("after the rejected update: 30100 allocated %v, 30101 allocated %v, used %d (want %d)",
			r.NodePortAllocated(30100), r.NodePortAllocated(30101), r.NodePortsUsed(), used)
	}
	// 30101 is really free: another Service can have it.
	other := svc("other", corev1.ServiceTypeNodePort, port(80, 30101))
	if _, err := r.CreateService(other); err != nil {
		t.Errorf("30101 should be free: %v", err)
	}
	got, _ := r.GetService("default", "lb")
	if got.Spec.HealthCheckNodePort != 30100 {
		t.Errorf("stored healthCheckNodePort %d, want 30100", got.Spec.HealthCheckNodePort)
	}
}

// TestHealthCheckNodePortDroppedLocalToCluster: LB Local → Cluster with the
// old healthCheckNodePort still in the request succeeds (PrepareForUpdate
// drops the unchanged value) and releases the number.
func TestHealthCheckNodePortDroppedLocalToCluster(t *testing.T) {
	r := newRegistry(t, Config{})
	lb := svc("lb", corev1.ServiceTypeLoadBalancer, port(80, 30080))
	lb.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	lb.Spec.HealthCheckNodePort = 30100
	if _, err := r.CreateService(lb); err != nil {
		t.Fatal(err)
	}
	lb.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
	up, err := r.UpdateService(lb)
	if err != nil {
		t.Fatal(err)
	}
	if up.Spec.HealthCheckNodePort != 0 || r.NodePortAllocated(30100) || !r.NodePortAllocated(30080) {
		t.Errorf("after Local -> Cluster: hc %d, 30100 allocated %v, 30080 allocated %v",
			up.Spec.HealthCheckNodePort, r.NodePortAllocated(30100), r.NodePortAllocated(30080))
	}
}

// TestKubernetesService: every cluster has default/kubernetes on the first
// service IP; a user cannot create another one, and the failed create
// leaves nothing allocated.
func TestKubernetesService(t *testing.T) {
	r := newRegistry(t, Config{})
	k, ok := r.GetService("default", "kubernetes")
	if !ok {
		t.Fatal("no default/kubernetes")
	}
	s := k.Spec
	if s.ClusterIP != "10.96.0.1" || len(s.ClusterIPs) != 1 || s.Type != corev1.ServiceTypeClusterIP ||
		len(s.Ports) != 1 || s.Ports[0].Name != "https" || s.Ports[0].Port != 443 || s.Ports[0].Protocol != corev1.ProtocolTCP ||
		s.Ports[0].TargetPort.IntValue() != 6443 || s.Ports[0].NodePort != 0 || len(s.Selector) != 0 ||
		s.SessionAffinity != corev1.ServiceAffinityNone || s.IPFamilyPolicy == nil || *s.IPFamilyPolicy != corev1.IPFamilyPolicySingleStack ||
		k.Labels["component"] != "apiserver" || k.Labels["provider"] != "kubernetes" || len(k.Labels) != 2 {
		t.Errorf("kubernetes service: %+v %+v", k.ObjectMeta, s)
	}
	if errs := r.validateService(k); len(errs) > 0 {
		t.Errorf("kubernetes service does not validate: %v", errs)
	}
	mine := svc("kubernetes", corev1.ServiceTypeNodePort, port(80, 30080))
	if _, err := r.CreateService(mine); errText(err) != `services "kubernetes" already exists` {
		t.Errorf("second kubernetes: %v", err)
	}
	if r.NodePortAllocated(30080) || r.NodePortsUsed() != 0 {
		t.Error("the rejected create left its nodePort allocated")
	}
	if err := r.DeleteService("default", "kubernetes"); err != nil {
		t.Fatal(err)
	}
	if err := r.EnsureKubernetesService(); err != nil {
		t.Fatal(err)
	}
	if k2, _ := r.GetService("default", "kubernetes"); k2.Spec.ClusterIP != "10.96.0.1" || k2.UID == k.UID {
		t.Errorf("recreated kubernetes: %s %s", k2.Spec.ClusterIP, k2.UID)
	}
}

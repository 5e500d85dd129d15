package scenarios

import (
	"time"
)

// Scenario is one lesson: what a scenario file says, decoded and checked.
// Every manifest it names has been read (Manifest.Data), so running it reads
// no file.
type Scenario struct {
	// Name is the short name (`nplab run collision`); Title the heading;
	// Summary one line for `nplab list`; Text the teaching text (markdown).
	Name    string `yaml:"name"`
	Title   string `yaml:"title"`
	Summary string `yaml:"summary"`
	Text    string `yaml:"text"`
	// Cluster is the lab to build.
	Cluster Cluster `yaml:"cluster"`
	// Needs are what the machine must have for every step (most needs are
	// found from the steps themselves: see Step.Needs).
	Needs []Need `yaml:"needs"`
	// Manifests are applied, in order, before the first step.
	Manifests Manifests `yaml:"manifests"`
	// Steps run in order.
	Steps []Step `yaml:"steps"`

	// File is where the scenario was read from ("collision.yaml" for a
	// built-in one); Source is the file as read.
	File   string `yaml:"-"`
	Source []byte `yaml:"-" json:"-"`

	lines map[string]int // key path → line, for errors found after decoding
}

// Cluster is the lab a scenario runs on.
type Cluster struct {
	// Nodes is the number of nodes (node-1 … node-N); 0 means 3.
	Nodes int `yaml:"nodes"`
	// NodePortRange is kube-apiserver's --service-node-port-range; ""
	// means 30000-32767.
	NodePortRange string `yaml:"nodePortRange"`
	// ProxyMode is how every node's proxy picks an endpoint: "random"
	// (kube-proxy's iptables and nftables modes, the default) or
	// "roundrobin" (IPVS rr).
	ProxyMode string `yaml:"proxyMode"`
}

// Need is a capability of the machine a step needs.
type Need string

// The needs a step can have. NeedDataPlane is found from the steps
// (traffic, faults that need a running pod or link); NeedSCTP from SCTP
// traffic; NeedNetem from delay, jitter or loss.
const (
	NeedDataPlane Need = "dataplane" // real namespaces: root, Linux
	NeedSCTP      Need = "sctp"      // the kernel's sctp module
	NeedNetem     Need = "netem"     // the kernel's sch_netem qdisc module
)

// Manifest is one manifest file: a path relative to the scenario file, or
// inline YAML. Name is the file name kubectl's messages use: the path for
// a file; "STDIN" for inline YAML unless given (as `kubectl apply -f -`).
type Manifest struct {
	File   string
	Inline string
	Name   string
	// Data is the manifest's content (read at load time for a File).
	Data []byte `json:"-"`

	line int
}

// Manifests is one manifest or a list of them.
type Manifests []Manifest

// ObjectRef is one object to delete: "service/backend-service",
// "pod/backend", "deployment/web", as `kubectl delete KIND/NAME`.
type ObjectRef struct {
	Kind, Name string
}

func (o ObjectRef) String() string { return o.Kind + "/" + o.Name }

// Deletion is what a delete step deletes: objects by name, or the objects
// of manifests (as `kubectl delete -f`).
type Deletion struct {
	Objects   []ObjectRef
	Manifests Manifests
}

// Step is one step of a scenario: text for the student and at most one of
// Apply, Delete, Fault, Wait and Task, optionally followed by Traffic, and
// then the checks of Expect.
type Step struct {
	// Name is the one line shown with ✓ or ✗; it defaults to the first
	// line of Text.
	Name string `yaml:"name"`
	Text string `yaml:"text"`
	// Needs adds needs to those found from the step.
	Needs []Need `yaml:"needs"`

	Apply   Manifests `yaml:"apply"`
	Delete  *Deletion `yaml:"delete"`
	Fault   *Fault    `yaml:"fault"`
	Wait    *Wait     `yaml:"wait"`
	Task    *Task     `yaml:"task"`
	Traffic *Traffic  `yaml:"traffic"`

	Expect Expect `yaml:"expect"`
}

// Traffic is a burst of requests.
type Traffic struct {
	// From is "client" (the default: the outside laptop), a node
	// ("node-2"), a pod by name, or the first ready pod of a selector
	// written "app=frontend".
	From string `yaml:"from"`
	// To is where the requests go: "node-1:30080"; "node-*:30080" (every
	// node in turn) or "node-1,node-2:30080" (these in turn); a node and a
	// Service's nodePort, "node-*:web";
	// a ClusterIP and port, "10.96.0.10:80"; or a Service, "web" or
	// "web:80" (its ClusterIP).
	To string `yaml:"to"`
	// Protocol is TCP (HTTP GET, the default), UDP or SCTP.
	Protocol string `yaml:"protocol"`
	// Count is how many requests (default 10, at most 10000); Rate how
	// many per second (0: as fast as Concurrency allows); Concurrency how
	// many at once (default 4).
	Count       int     `yaml:"count"`
	Rate        float64 `yaml:"rate"`
	Concurrency int     `yaml:"concurrency"`
	// Message is the HTTP path or the netexec command; default
	// "/hostname" for TCP, "hostname" for UDP and SCTP.
	Message string `yaml:"message"`
	// Timeout bounds each request (default 3s).
	Timeout Duration `yaml:"timeout"`

	tg target // To, parsed
}

// Fault is a fault to inject (lab.Fault).
type Fault struct {
	// Kind is one of lab's fault kinds: delete-pod, pod-unready,
	// pod-ready, stop-app, start-app, link-down, link-up, impair,
	// clear-impair.
	Kind string `yaml:"kind"`
	// Pod names the pod; or Selector picks the first (by name) matching
	// pod, on node OnNode if given; All picks every matching pod.
	Pod      string            `yaml:"pod"`
	Selector map[string]string `yaml:"selector"`
	OnNode   string            `yaml:"onNode"`
	All      bool              `yaml:"all"`
	// Node is the node of a link fault.
	Node string `yaml:"node"`
	// Delay, Jitter, Loss and Rate are an impairment (impair only):
	// "100ms", "10ms", "5%", "1mbit".
	Delay  Duration `yaml:"delay"`
	Jitter Duration `yaml:"jitter"`
	Loss   Percent  `yaml:"loss"`
	Rate   Bitrate  `yaml:"rate"`
}

// Wait waits until every state check holds, or Timeout passes (a failed
// step). With no checks it waits until the lab is idle.
type Wait struct {
	Until   []StateCheck `yaml:"until"`
	Timeout Duration     `yaml:"timeout"`
}

// Task is work for the student. `nplab run` applies Solution; `nplab check`
// applies the student's files instead. The step passes when its checks do.
type Task struct {
	// Supplies names the objects the student writes ("Service/backend-service"):
	// `nplab check` applies a student's file at the task that names one of
	// its objects.
	Supplies []ObjectRef `yaml:"supplies"`
	// Hints are shown one at a time.
	Hints    []string  `yaml:"hints"`
	Solution Manifests `yaml:"solution"`
}

// Expect is the checks of a step. An apply, delete or task step with
// neither Error nor Succeeds must succeed.
type Expect struct {
	// Succeeds: the step's apply, delete or task was accepted with no
	// error. Error: it failed with exactly this text, as kubectl prints it.
	Succeeds *bool  `yaml:"succeeds"`
	Error    string `yaml:"error"`

	// Traffic checks.
	// Results counts the requests by how they ended: ok, refused, reset,
	// dropped, "timed out", error.
	Results map[string]int `yaml:"results"`
	// Reaches: the requests were answered by pods of the selector; with
	// All, by every ready one; with Nodes, only by pods on those nodes.
	Reaches *Reaches `yaml:"reaches"`
	// Refused: every request was refused. TimesOut: every request went
	// unanswered (dropped or timed out).
	Refused  bool `yaml:"refused"`
	TimesOut bool `yaml:"timesOut"`
	// Distribution: the answers are spread evenly over the ready pods of
	// the selector, each within Tolerance of an even share.
	Distribution *Distribution `yaml:"distribution"`
	// SourceSeen is the source address the pods saw: "client" (the
	// outside client's address), "node" (an address of a node: the
	// proxy masqueraded), or an IP.
	SourceSeen string `yaml:"sourceSeen"`
	// Sticky: every answer came from one pod.
	Sticky bool `yaml:"sticky"`

	// State checks objects after the step.
	State []StateCheck `yaml:"state"`

	// Hint is shown with a failed check.
	Hint string `yaml:"hint"`
}

// Reaches is the "which pods answered" check.
type Reaches struct {
	Selector map[string]string `yaml:"selector"`
	All      bool              `yaml:"all"`
	Nodes    []string          `yaml:"nodes"`
}

// Distribution is the "spread evenly" check.
type Distribution struct {
	Selector  map[string]string `yaml:"selector"`
	Tolerance Percent           `yaml:"tolerance"`
}

// StateCheck checks one object, or the pods of a selector, of the lab's
// state. Exactly one of Service, Pod, Pods and Node names what it checks.
type StateCheck struct {
	Service string            `yaml:"service"`
	Pod     string            `yaml:"pod"`
	Pods    map[string]string `yaml:"pods"`
	Node    string            `yaml:"node"`

	// Exists (Service, Pod): the object exists (default true).
	Exists *bool `yaml:"exists"`
	// Service: the first port's nodePort equals NodePort, or lies in
	// NodePortIn ("30000-30085"), or in Band ("static": the lower band
	// that auto-allocation uses last; "dynamic": the upper band);
	// Endpoints is its number of ready endpoints; Type and
	// ExternalTrafficPolicy as kubectl shows them.
	NodePort              int    `yaml:"nodePort"`
	NodePortIn            string `yaml:"nodePortIn"`
	Band                  string `yaml:"band"`
	Endpoints             *int   `yaml:"endpoints"`
	Type                  string `yaml:"type"`
	ExternalTrafficPolicy string `yaml:"externalTrafficPolicy"`
	// Pod: Ready is true or false; OnNode the node it runs on; Phase its
	// phase. Pods: Count pods match (terminating ones included), Ready
	// of them are ready and not terminating.
	Ready  *Ready `yaml:"ready"`
	OnNode string `yaml:"onNode"`
	Phase  string `yaml:"phase"`
	Count  *int   `yaml:"count"`
	// Node: LinkUp; Listens is a nodePort its proxy listens on,
	// "30080/TCP", or a Service's name for every nodePort of it.
	LinkUp  *bool  `yaml:"linkUp"`
	Listens string `yaml:"listens"`
}

// Ready is a pod's readiness (true/false) or, for Pods, how many are ready.
type Ready struct {
	Bool  *bool
	Count *int
}

// Duration is a time.Duration written as Go writes it: "500ms", "10s".
type Duration time.Duration

// Percent is a percentage written "5%" (or a bare number).
type Percent float64

// Bitrate is a rate in bits per second written as tc writes it: "1mbit",
// "500kbit", "8000bit".
type Bitrate uint64

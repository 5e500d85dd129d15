package lab

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// fields is a table of the fields of an object that nplab emulates: a key
// whose value is nil is emulated with everything under it; a key with a
// table is emulated in part, the table saying which of its fields (for a
// list, the fields of each element). A field that is not in the table is
// accepted, stored and shown, but has no effect in the lab: creating or
// changing an object that sets one gets a Warning event naming it. The
// tables are deliberate lists: a field is added here when nplab emulates
// it, and TestUnemulatedFields holds them.
type fields map[string]fields

// probeFields: httpGet and tcpSocket probes run for real; exec and grpc
// are treated as passing, with a notice from the data plane.
var probeFields = fields{
	"httpGet":   {"path": nil, "port": nil, "httpHeaders": nil, "scheme": nil},
	"tcpSocket": {"port": nil},
	"exec":      nil, "grpc": nil,
	"initialDelaySeconds": nil, "periodSeconds": nil, "timeoutSeconds": nil,
	"successThreshold": nil, "failureThreshold": nil,
}

// containerFields: the image catalog reads image, command, args and the
// literal env; containerPort is informational as in Kubernetes; hostPort
// is mapped on the node as the CNI portmap plugin does.
var containerFields = fields{
	"name": nil, "image": nil, "command": nil, "args": nil,
	"ports":          {"name": nil, "containerPort": nil, "protocol": nil, "hostPort": nil},
	"env":            {"name": nil, "value": nil},
	"readinessProbe": probeFields,
}

// initContainerFields: an init container is an emulated run read from its
// command (nodes/apps.InitFromContainer).
var initContainerFields = fields{"name": nil, "image": nil, "command": nil, "args": nil, "env": {"name": nil, "value": nil}}

var podSpecFields = fields{
	"containers":                    containerFields,
	"initContainers":                initContainerFields,
	"restartPolicy":                 nil,
	"terminationGracePeriodSeconds": nil,
	"nodeName":                      nil,
	"hostNetwork":                   nil,
}

// deploymentSpecFields: a rollout follows strategy (RollingUpdate's
// maxSurge and maxUnavailable, or Recreate); minReadySeconds,
// progressDeadlineSeconds and revisionHistoryLimit are not emulated.
var deploymentSpecFields = fields{
	"replicas": nil,
	"selector": nil,
	"strategy": nil,
	"template": {"metadata": nil, "spec": podSpecFields},
}

var serviceSpecFields = fields{
	"type":      nil,
	"selector":  nil,
	"ports":     {"name": nil, "protocol": nil, "appProtocol": nil, "port": nil, "targetPort": nil, "nodePort": nil},
	"clusterIP": nil, "clusterIPs": nil, "ipFamilies": nil, "ipFamilyPolicy": nil,
	"externalTrafficPolicy": nil, "sessionAffinity": nil, "sessionAffinityConfig": nil,
	"publishNotReadyAddresses": nil,
}

// unemulated lists the fields set in v (a spec) that table does not
// emulate, as paths under prefix ("spec.containers[0].livenessProbe"),
// sorted.
func unemulated(prefix string, v any, table fields) []string {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	var out []string
	walkFields(prefix, m, table, &out)
	slices.Sort(out)
	return out
}

func walkFields(path string, m map[string]any, table fields, out *[]string) {
	for k, v := range m {
		if empty(v) {
			continue
		}
		sub, ok := table[k]
		p := path + "." + k
		if !ok {
			*out = append(*out, p)
			continue
		}
		if sub == nil {
			continue
		}
		switch x := v.(type) {
		case map[string]any:
			walkFields(p, x, sub, out)
		case []any:
			for i, e := range x {
				if em, ok := e.(map[string]any); ok {
					walkFields(fmt.Sprintf("%s[%d]", p, i), em, sub, out)
				}
			}
		}
	}
}

// empty: what JSON carries for a field left unset (an empty struct has no
// omitempty).
func empty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case map[string]any:
		for _, e := range x {
			if !empty(e) {
				return false
			}
		}
		return true
	case []any:
		return len(x) == 0
	}
	return false
}

// unemulatedFields is what an object sets that nplab does not emulate.
func unemulatedFields(obj any) []string {
	switch o := obj.(type) {
	case *corev1.Pod:
		return unemulated("spec", &o.Spec, podSpecFields)
	case *appsv1.Deployment:
		return unemulated("spec", &o.Spec, deploymentSpecFields)
	case *corev1.Service:
		return unemulated("spec", &o.Spec, serviceSpecFields)
	}
	return nil
}

// newUnemulated is what obj sets that nplab does not emulate; with old
// set (an update), only what old did not already set, so a default the
// API server filled in is never named.
func newUnemulated(obj, old any) []string {
	got := unemulatedFields(obj)
	if old != nil {
		had := unemulatedFields(old)
		got = slices.DeleteFunc(got, func(f string) bool { return slices.Contains(had, f) })
	}
	return got
}

// warnUnemulated emits one Warning naming fields nplab does not emulate,
// if there are any. l.mu is held.
func (l *Lab) warnUnemulated(ref string, fields []string) {
	if len(fields) == 0 {
		return
	}
	l.emit(EventWarning, ref, "nplab does not emulate %s: accepted and stored, but with no effect in the lab (the README lists what nplab emulates)", strings.Join(fields, ", "))
}

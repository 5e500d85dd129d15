package tui

import (
	"cmp"
	"fmt"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/nplab/nplab/lab"
)

// policyManifest is the Service name as a manifest with its
// externalTrafficPolicy flipped, for lab.Apply: `e` is
// `kubectl apply` of the live spec with the one field changed. The lab's
// API has no patch, so this is an apply. The manifest leaves out the
// clusterIP and the IP families, which the API server keeps when absent,
// and writes the live nodePorts in, so the toggle never moves a nodePort.
//
// Two differences from `kubectl patch` remain, because the lab now holds
// this manifest as the last applied one: re-applying the student's own
// file afterwards resets a policy that file does not set, and a nodePort
// that file leaves to the allocator on a port sharing its number with
// another (the default lab's UDP port 80 next to TCP port 80 on 30080) is
// dropped and allocated anew, as the API server's patchAllocatedValues
// does on a real cluster after such an apply.
func policyManifest(l *lab.Lab, name string) ([]byte, string, error) {
	var live *corev1.Service
	for _, s := range l.Services() {
		if s.Name == name {
			live = s
		}
	}
	if live == nil {
		return nil, "", fmt.Errorf(`services %q not found`, name)
	}
	spec := *live.Spec.DeepCopy()
	spec.ClusterIP, spec.ClusterIPs = "", nil
	spec.IPFamilies, spec.IPFamilyPolicy = nil, nil
	if spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal {
		spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
		spec.HealthCheckNodePort = 0
	} else {
		spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	}
	svc := corev1.Service{
		TypeMeta: live.TypeMeta,
		Spec:     spec,
	}
	svc.APIVersion, svc.Kind = "v1", "Service"
	svc.Name = live.Name
	svc.Labels = live.Labels
	data, err := yaml.Marshal(&svc)
	if err != nil {
		return nil, "", err
	}
	return data, string(spec.ExternalTrafficPolicy), nil
}

func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K { return slices.Sorted(maps.Keys(m)) }

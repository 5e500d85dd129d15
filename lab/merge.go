package lab

import (
	"encoding/json"
	"fmt"
)

// mergeKeys are the patchMergeKeys of the lists nplab's kinds have that
// kubectl apply's strategic merge patch merges element by element (other
// lists are replaced whole): ServicePort by port, Container by name.
var mergeKeys = map[string]string{
	"spec.ports":                        "port",
	"spec.containers":                   "name",
	"spec.initContainers":               "name",
	"spec.template.spec.containers":     "name",
	"spec.template.spec.initContainers": "name",
}

// applyMerge is what `kubectl apply` sends and the server computes, in one
// step: the three-way strategic merge of original (the manifest applied
// last time, "" for none), modified (this manifest) and live (the stored
// object), as JSON. A field set in modified wins; one in original but no
// longer in modified is removed; one in neither keeps its live value (an
// allocated nodePort, the clusterIP, replicas set by `kubectl scale`).
func applyMerge(original, modified, live []byte) ([]byte, error) {
	var o, m, l any
	if len(original) > 0 {
		if err := json.Unmarshal(original, &o); err != nil {
			return nil, fmt.Errorf("last applied configuration: %w", err)
		}
	}
	if err := json.Unmarshal(modified, &m); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(live, &l); err != nil {
		return nil, err
	}
	return json.Marshal(merge3(o, m, l, ""))
}

func merge3(orig, mod, live any, path string) any {
	switch mv := mod.(type) {
	case map[string]any:
		lv, ok := live.(map[string]any)
		if !ok {
			return mod
		}
		ov, _ := orig.(map[string]any)
		out := make(map[string]any, len(lv))
		for k, v := range lv {
			out[k] = v
		}
		for k := range ov {
			if _, kept := mv[k]; !kept {
				delete(out, k)
			}
		}
		for k, v := range mv {
			p := k
			if path != "" {
				p = path + "." + k
			}
			out[k] = merge3(ov[k], v, lv[k], p)
		}
		return out
	case []any:
		key, ok := mergeKeys[path]
		lv, isList := live.([]any)
		if !ok || !isList {
			return mod
		}
		ov, _ := orig.([]any)
		// Entries sharing a port (53/TCP and 53/UDP) are told apart by
		// protocol when possible.
		proto := func(m map[string]any) string {
			if p, ok := m["protocol"].(string); ok && p != "" {
				return p
			}
			return "TCP"
		}
		find := func(list []any, want map[string]any) any {
			var byKey any
			for _, e := range list {
				em, ok := e.(map[string]any)
				if !ok || fmt.Sprint(em[key]) != fmt.Sprint(want[key]) {
					continue
				}
				if key != "port" || proto(em) == proto(want) {
					return e
				}
				if byKey == nil {
					byKey = e
				}
			}
			return byKey
		}
		out := make([]any, 0, len(mv))
		for _, e := range mv {
			em, ok := e.(map[string]any)
			if !ok {
				out = append(out, e)
				continue
			}
			out = append(out, merge3(find(ov, em), e, find(lv, em), path+"[]"))
		}
		return out
	}
	return mod
}

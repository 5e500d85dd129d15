package manifest

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
)

// checkList checks the top level of a `kind: List` document.
func checkList(js []byte) []string {
	var m map[string]any
	if err := json.Unmarshal(js, &m); err != nil {
		return []string{err.Error()}
	}
	var problems []string
	for _, k := range sortedKeys(m) {
		switch k {
		case "apiVersion", "kind", "metadata":
		case "items":
			if _, ok := m[k].([]any); !ok && m[k] != nil {
				problems = append(problems, fmt.Sprintf("ValidationError(List.items): invalid type for io.k8s.api.core.v1.List.items: got %q, expected \"array\"", jsonType(m[k])))
			}
		default:
			problems = append(problems, fmt.Sprintf("ValidationError(List): unknown field %q in io.k8s.api.core.v1.List", k))
		}
	}
	return problems
}

func jsonType(v any) string {
	switch x := v.(type) {
	case string:
		return "string"
	case bool:
		return "boolean"
	case json.Number:
		if _, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return "integer"
		}
		return "number"
	case float64:
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "map"
	}
	return "null"
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

package manifest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
)

// checkFields walks the JSON of one object against its Go type and returns
// kubectl-style schema problems: unknown fields and values of the wrong JSON
// type, in the order they appear (map keys sorted, as JSON objects have no
// order after YAML conversion).
func checkFields(js []byte, obj runtime.Object, kind string) []string {
	d := json.NewDecoder(bytes.NewReader(js))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return []string{err.Error()}
	}
	var problems []string
	walk(v, reflect.TypeOf(obj).Elem(), kind, &problems)
	return problems
}

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

var (
	jsonUnmarshaler = reflect.TypeOf((*json.Unmarshaler)(nil)).Elem()
	byteSlice       = reflect.TypeOf([]byte(nil))
)

// openAPIName turns a Go type into the OpenAPI definition name kubectl
// prints: k8s.io/api/core/v1.ServicePort → io.k8s.api.core.v1.ServicePort.
func openAPIName(t reflect.Type) string {
	pkg := t.PkgPath()
	host, rest, _ := strings.Cut(pkg, "/")
	hs := strings.Split(host, ".")
	for i, j := 0, len(hs)-1; i < j; i, j = i+1, j-1 {
		hs[i], hs[j] = hs[j], hs[i]
	}
	name := strings.Join(hs, ".")
	if rest != "" {
		name += "." + strings.ReplaceAll(rest, "/", ".")
	}
	return name + "." + t.Name()
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

func expectedType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Map, reflect.Struct:
		return "map"
	}
	return ""
}

type field struct {
	t    reflect.Type
	name string // Go field name, for the type-error message
}

// jsonFields lists a struct's JSON fields, following inline embedded structs.
func jsonFields(t reflect.Type, into map[string]field) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && (name == "" || strings.Contains(","+opts+",", ",inline,")) {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				jsonFields(ft, into)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		into[name] = field{t: f.Type, name: name}
	}
}

// walk checks value v against Go type t. path is kubectl's path of v
// ("Service.spec.ports[0]").
func walk(v any, t reflect.Type, path string, problems *[]string) {
	walkField(v, t, path, "", problems)
}

// walkField is walk for a value whose field has the OpenAPI name qualified
// ("io.k8s.api.core.v1.ServicePort.port"; "" at the top), which type errors
// name.
func walkField(v any, t reflect.Type, path, qualified string, problems *[]string) {
	if v == nil {
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	// Types with their own JSON form (IntOrString, Quantity, Time, RawExtension)
	// accept what their UnmarshalJSON accepts; json.Unmarshal reports the rest.
	if reflect.PointerTo(t).Implements(jsonUnmarshaler) || t == byteSlice {
		return
	}
	typeErr := func() {
		if qualified == "" {
			qualified = openAPIName(t)
		}
		*problems = append(*problems, fmt.Sprintf("ValidationError(%s): invalid type for %s: got %q, expected %q",
			path, qualified, jsonType(v), expectedType(t)))
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			typeErr()
			return
		}
		fields := map[string]field{}
		jsonFields(t, fields)
		owner := openAPIName(t)
		for _, k := range sortedKeys(m) {
			f, ok := fields[k]
			if !ok {
				*problems = append(*problems, fmt.Sprintf("ValidationError(%s): unknown field %q in %s", path, k, owner))
				continue
			}
			walkField(m[k], f.t, path+"."+k, owner+"."+f.name, problems)
		}
	case reflect.Slice, reflect.Array:
		a, ok := v.([]any)
		if !ok {
			typeErr()
			return
		}
		for i, e := range a {
			walkField(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i), qualified, problems)
		}
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			typeErr()
			return
		}
		for _, k := range sortedKeys(m) {
			walkField(m[k], t.Elem(), path+"."+k, qualified, problems)
		}
	case reflect.String:
		if _, ok := v.(string); !ok {
			typeErr()
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			typeErr()
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if jsonType(v) != "integer" {
			typeErr()
		}
	case reflect.Float32, reflect.Float64:
		if _, ok := v.(json.Number); !ok {
			typeErr()
		}
	}
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

package apiserver

import (
	"net/http"
	"reflect"
	"strings"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The OpenAPI v3 documents kubectl reads, generated at start from the Go
// types nplab serves (k8s.io/api), by reflection: each struct is a schema
// named as kube-apiserver names it (io.k8s.api.core.v1.ServicePort), its
// fields are the json fields, their descriptions are the types'
// SwaggerDoc() (the same doc comments kube-apiserver's OpenAPI is generated
// from), and patchStrategy/patchMergeKey tags become the
// x-kubernetes-patch-* extensions. So `kubectl explain
// service.spec.ports.nodePort` works. Not reproduced: required fields,
// enums, list-type/map-keys markers and defaults (those come from
// comment markers reflection cannot see).
//
// Each resource's PATCH operation lists the fieldValidation parameter —
// which is how kubectl learns that this server validates fields itself —
// but declares no request body, so kubectl apply computes its strategic
// merge patch from its built-in Go types, not from these schemas.

var (
	openAPIOnce sync.Once
	openAPIDocs map[string][]byte // "api/v1" → document
	openAPIRoot []byte
)

func (s *Server) openAPI(w http.ResponseWriter, r *http.Request, path string) {
	openAPIOnce.Do(func() { s.buildOpenAPI() })
	switch {
	case path == "v3":
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openAPIRoot)
	case strings.HasPrefix(path, "v3/"):
		doc, ok := openAPIDocs[strings.TrimPrefix(path, "v3/")]
		if !ok {
			writeErr(w, notFoundPath(r))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(doc)
	default:
		// No OpenAPI v2: kubectl uses v3.
		writeErr(w, notFoundPath(r))
	}
}

func (s *Server) buildOpenAPI() {
	byGV := map[string][]*resource{}
	var order []string
	for _, r := range s.all {
		gv := r.groupVersion()
		if _, ok := byGV[gv]; !ok {
			order = append(order, gv)
		}
		byGV[gv] = append(byGV[gv], r)
	}
	paths := map[string]any{}
	openAPIDocs = map[string][]byte{}
	for _, gv := range order {
		key := "api/" + gv
		prefix := "/api/" + gv
		if strings.Contains(gv, "/") {
			key, prefix = "apis/"+gv, "/apis/"+gv
		}
		g := newGen()
		docPaths := map[string]any{}
		for _, r := range byGV[gv] {
			gvk := map[string]any{"group": r.group, "version": r.version, "kind": r.kind}
			g.schema(reflect.TypeOf(r.newObj()).Elem(), gvk)
			item := prefix + "/" + r.name + "/{name}"
			if r.namespaced {
				item = prefix + "/namespaces/{namespace}/" + r.name + "/{name}"
			}
			ref := map[string]any{"$ref": "#/components/schemas/" + schemaName(reflect.TypeOf(r.newObj()).Elem())}
			ops := map[string]any{
				"get": map[string]any{"operationId": "read" + r.kind, "x-kubernetes-group-version-kind": gvk,
					"responses": map[string]any{"200": map[string]any{"description": "OK",
						"content": map[string]any{"application/json": map[string]any{"schema": ref}}}}},
			}
			if r.labKind != "" {
				ops["patch"] = map[string]any{"operationId": "patch" + r.kind, "x-kubernetes-group-version-kind": gvk,
					"parameters": []any{
						map[string]any{"name": "dryRun", "in": "query", "schema": map[string]any{"type": "string", "uniqueItems": true}},
						map[string]any{"name": "fieldValidation", "in": "query", "schema": map[string]any{"type": "string", "uniqueItems": true}},
					},
					"responses": map[string]any{"200": map[string]any{"description": "OK"}}}
			}
			docPaths[item] = ops
		}
		doc := map[string]any{
			"openapi":    "3.0.0",
			"info":       map[string]any{"title": "nplab", "version": Version.GitVersion},
			"paths":      docPaths,
			"components": map[string]any{"schemas": g.schemas},
		}
		b, _ := jsonMarshal(doc)
		openAPIDocs[key] = b
		paths[key] = map[string]any{"serverRelativeURL": "/openapi/v3/" + key}
	}
	openAPIRoot, _ = jsonMarshal(map[string]any{"paths": paths})
}

type gen struct{ schemas map[string]any }

func newGen() *gen { return &gen{schemas: map[string]any{}} }

var (
	timeType   = reflect.TypeOf(metav1.Time{})
	microType  = reflect.TypeOf(metav1.MicroTime{})
	intstrType = reflect.TypeOf(intstr.IntOrString{})
	rawType    = reflect.TypeOf(runtime.RawExtension{})
)

// schemaName is kube-apiserver's name for a Go type:
// k8s.io/api/core/v1.ServicePort → io.k8s.api.core.v1.ServicePort.
func schemaName(t reflect.Type) string {
	host, rest, _ := strings.Cut(t.PkgPath(), "/")
	parts := strings.Split(host, ".")
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return strings.Join(parts, ".") + "." + strings.ReplaceAll(rest, "/", ".") + "." + t.Name()
}

// ref is the schema of a field of type t: a $ref for a named struct (its
// schema added to the document), an inline schema otherwise.
func (g *gen) ref(t reflect.Type) map[string]any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t {
	case timeType, microType:
		return map[string]any{"type": "string", "format": "date-time"}
	case intstrType:
		return map[string]any{"type": "string", "format": "int-or-string", "x-kubernetes-int-or-string": true}
	case rawType:
		return map[string]any{"type": "object"}
	}
	if t.PkgPath() == "k8s.io/apimachinery/pkg/api/resource" && t.Name() == "Quantity" {
		return map[string]any{"type": "string"}
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int32, reflect.Uint32, reflect.Int16, reflect.Uint16, reflect.Int8, reflect.Uint8:
		return map[string]any{"type": "integer", "format": "int32"}
	case reflect.Int, reflect.Int64, reflect.Uint, reflect.Uint64:
		return map[string]any{"type": "integer", "format": "int64"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number", "format": "double"}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string", "format": "byte"}
		}
		return map[string]any{"type": "array", "items": g.ref(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.ref(t.Elem())}
	case reflect.Struct:
		name := schemaName(t)
		g.schema(t, nil)
		return map[string]any{"allOf": []any{map[string]any{"$ref": "#/components/schemas/" + name}}}
	}
	return map[string]any{}
}

type swaggerDoc interface{ SwaggerDoc() map[string]string }

// schema adds the schema of struct type t (once).
func (g *gen) schema(t reflect.Type, gvk map[string]any) {
	name := schemaName(t)
	if _, ok := g.schemas[name]; ok {
		return
	}
	s := map[string]any{"type": "object"}
	g.schemas[name] = s // before the fields: recursive types end here
	var doc map[string]string
	if d, ok := reflect.New(t).Elem().Interface().(swaggerDoc); ok {
		doc = d.SwaggerDoc()
	}
	if doc[""] != "" {
		s["description"] = doc[""]
	}
	if gvk != nil {
		s["x-kubernetes-group-version-kind"] = []any{gvk}
	}
	props := map[string]any{}
	g.fields(t, props)
	if len(props) > 0 {
		s["properties"] = props
	}
}

func (g *gen) fields(t reflect.Type, props map[string]any) {
	var doc map[string]string
	if d, ok := reflect.New(t).Elem().Interface().(swaggerDoc); ok {
		doc = d.SwaggerDoc()
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if f.Anonymous && (name == "" || strings.Contains(opts, "inline")) {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				g.fields(ft, props)
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		p := g.ref(f.Type)
		if d := doc[name]; d != "" {
			p["description"] = d
		}
		if ps := f.Tag.Get("patchStrategy"); ps != "" {
			p["x-kubernetes-patch-strategy"] = ps
		}
		if pk := f.Tag.Get("patchMergeKey"); pk != "" {
			p["x-kubernetes-patch-merge-key"] = pk
		}
		props[name] = p
	}
}

package manifest

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

func readDoc(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDecodeDocsManifests decodes the manifests of the NodePort notes: what
// each yields before it ever reaches the API server.
func TestDecodeDocsManifests(t *testing.T) {
	tests := []struct {
		file    string
		objects []string // Ref@line
		errs    []string
	}{
		{file: "docs/frontend-service.yaml", objects: []string{"service/frontend-service@2"}},
		{file: "docs/backend-service.yaml", objects: []string{"service/backend-service@3"}},
		{file: "docs/backend-service-300081.yaml", objects: []string{"service/backend-service@3"}},
		{file: "docs/nodeport-service.yaml", objects: []string{"service/NodePort-Service@1"}},
		{file: "docs/backend-pods.yaml", objects: []string{"pod/backend@2", "pod/backend@23"}},
		{file: "default.yaml", objects: []string{"deployment.apps/web@3", "service/web@35"}},
		{
			file: "docs/backend-service-misindented.yaml",
			errs: []string{`error parsing docs/backend-service-misindented.yaml: error converting YAML to JSON: yaml: line 12: did not find expected '-' indicator`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			objs, errs := Decode(tt.file, readDoc(t, tt.file))
			var got []string
			for _, o := range objs {
				got = append(got, o.Ref()+"@"+strconv.Itoa(o.Line))
			}
			if strings.Join(got, " ") != strings.Join(tt.objects, " ") {
				t.Errorf("objects = %v, want %v", got, tt.objects)
			}
			var gotErrs []string
			for _, e := range errs {
				gotErrs = append(gotErrs, e.Error())
			}
			if strings.Join(gotErrs, "\n") != strings.Join(tt.errs, "\n") {
				t.Errorf("errors =\n%s\nwant\n%s", strings.Join(gotErrs, "\n"), strings.Join(tt.errs, "\n"))
			}
		})
	}
}

func TestDecodeTypedContent(t *testing.T) {
	objs, errs := Decode("default.yaml", readDoc(t, "default.yaml"))
	if len(errs) != 0 || len(objs) != 2 {
		t.Fatalf("Decode: %d objects, errors %v", len(objs), errs)
	}
	d, ok := objs[0].Object.(*appsv1.Deployment)
	if !ok {
		t.Fatalf("first object is %T, want *appsv1.Deployment", objs[0].Object)
	}
	if *d.Spec.Replicas != 3 || d.Spec.Template.Spec.Containers[0].Args[1] != "--http-port=8080" {
		t.Errorf("deployment decoded wrong: replicas %d args %v", *d.Spec.Replicas, d.Spec.Template.Spec.Containers[0].Args)
	}
	if p := d.Spec.Template.Spec.Containers[0].ReadinessProbe.HTTPGet; p.Path != "/readyz" || p.Port.IntValue() != 8080 {
		t.Errorf("readiness probe = %+v", p)
	}
	s := objs[1].Object.(*corev1.Service)
	if len(s.Spec.Ports) != 2 || s.Spec.Ports[0].NodePort != 30080 || s.Spec.Ports[1].Protocol != corev1.ProtocolUDP {
		t.Errorf("service ports = %+v", s.Spec.Ports)
	}
	if s.Spec.Ports[1].TargetPort.IntValue() != 8081 {
		t.Errorf("udp targetPort = %v", s.Spec.Ports[1].TargetPort)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		refs []string
		errs []string
		line []int // Line of each error
	}{
		{
			name: "unknown field in a port",
			yaml: "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\nspec:\n  ports:\n  - port: 80\n    nodeport: 30080\n",
			errs: []string{`Service in version "v1" cannot be handled as a Service: strict decoding error: unknown field "spec.ports[0].nodeport"`},
			line: []int{1},
		},
		{
			name: "a wrong type wins over an unknown field, as in the API server's decoder",
			yaml: "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  lables: {a: b}\nspec:\n  containers:\n  - name: c\n    image: nginx\n    ports:\n    - containerPort: \"80\"\n",
			errs: []string{`Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal string into Go struct field ContainerPort.spec.containers.ports.containerPort of type int32`},
			line: []int{1},
		},
		{
			name: "apiVersion and kind missing",
			yaml: "metadata:\n  name: x\n",
			errs: []string{`error validating "f.yaml": error validating data: [apiVersion not set, kind not set]`},
			line: []int{1},
		},
		{
			name: "kind missing",
			yaml: "apiVersion: v1\nmetadata:\n  name: x\n",
			errs: []string{`error validating "f.yaml": error validating data: kind not set`},
			line: []int{1},
		},
		{
			name: "unsupported kind names what is supported",
			yaml: "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n",
			errs: []string{`resource mapping not found for name: "cfg" namespace: "" from "f.yaml": no matches for kind "ConfigMap" in version "v1"; nplab knows only Pod (v1), Service (v1), Deployment (apps/v1) and List (v1)`},
			line: []int{1},
		},
		{
			name: "wrong group for a kind",
			yaml: "apiVersion: v1\nkind: Deployment\nmetadata:\n  name: web\n",
			errs: []string{`resource mapping not found for name: "web" namespace: "" from "f.yaml": no matches for kind "Deployment" in version "v1"; nplab knows only Pod (v1), Service (v1), Deployment (apps/v1) and List (v1)`},
			line: []int{1},
		},
		{
			name: "a bad object does not stop the next one",
			yaml: "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\nspec:\n  nodename: x\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: b\n",
			refs: []string{"pod/b@8"},
			errs: []string{`Pod in version "v1" cannot be handled as a Pod: strict decoding error: unknown field "spec.nodename"`},
			line: []int{1},
		},
		{
			name: "syntax error in the second document is counted in the document (FileLine in the file) and stops it",
			yaml: "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n---\n# comment\napiVersion: v1\nkind: Pod\nmetadata:\n  name: b\n   labels: x\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: c\n",
			refs: []string{"pod/a@1"},
			errs: []string{`error parsing f.yaml: error converting YAML to JSON: yaml: line 6: mapping values are not allowed in this context`},
			line: []int{11},
		},
		{
			name: "empty and comment-only documents are skipped",
			yaml: "---\n# nothing\n---\n\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n---\n",
			refs: []string{"pod/a@6"},
		},
		{
			name: "a List's items, each with its own line",
			yaml: "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata:\n    name: a\n- apiVersion: v1\n  kind: Service\n  metadata:\n    name: s\n  spec:\n    ports:\n    - port: 80\n- apiVersion: v1\n  kind: Pod\n  metadata:\n    name: b\n  spec:\n    bogus: 1\n",
			refs: []string{"pod/a@4", "service/s@8"},
			errs: []string{`Pod in version "v1" cannot be handled as a Pod: strict decoding error: unknown field "spec.bogus"`},
			line: []int{15},
		},
		{
			name: "two unknown fields in one strict decoding error; Deployment's version without its group",
			yaml: "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n  lables: {a: b}\nspec:\n  replica: 2\n",
			errs: []string{`Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: unknown field "metadata.lables", unknown field "spec.replica"`},
			line: []int{1},
		},
		{
			name: "a List inside a List is flattened",
			yaml: "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: List\n  items:\n  - apiVersion: v1\n    kind: Pod\n    metadata:\n      name: inner\n- apiVersion: v1\n  kind: Pod\n  metadata:\n    name: outer\n",
			refs: []string{"pod/inner@4", "pod/outer@11"},
		},
		{
			name: "a bare scalar is no object",
			yaml: "hello\n",
			errs: []string{`error validating "f.yaml": error validating data: [apiVersion not set, kind not set]`},
			line: []int{1},
		},
		{
			name: "values of the wrong type in maps and IntOrString",
			yaml: "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n  labels:\n    app: 1\nspec:\n  ports:\n  - port: 80\n    targetPort: http\n",
			errs: []string{`Service in version "v1" cannot be handled as a Service: json: cannot unmarshal number into Go struct field ObjectMeta.metadata.labels of type string`},
			line: []int{1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, errs := Decode("f.yaml", []byte(tt.yaml))
			var refs []string
			for _, o := range objs {
				refs = append(refs, o.Ref()+"@"+strconv.Itoa(o.Line))
			}
			if strings.Join(refs, " ") != strings.Join(tt.refs, " ") {
				t.Errorf("objects = %v, want %v", refs, tt.refs)
			}
			if len(errs) != len(tt.errs) {
				t.Fatalf("got %d errors %v, want %d", len(errs), errs, len(tt.errs))
			}
			for i, err := range errs {
				if err.Error() != tt.errs[i] {
					t.Errorf("error %d =\n%s\nwant\n%s", i, err, tt.errs[i])
				}
				e, ok := err.(*Error)
				if !ok {
					t.Fatalf("error %d is %T, want *Error", i, err)
				}
				if e.Kind == ErrDecode && !apierrors.IsBadRequest(e) {
					t.Errorf("error %d: decode error without the API server's BadRequest", i)
				}
				if e.Kind == ErrSyntax && e.FileLine != e.Line {
					t.Errorf("error %d: FileLine %d, Line %d", i, e.FileLine, e.Line)
				}
				if e.Line != tt.line[i] || e.File != "f.yaml" {
					t.Errorf("error %d at %s line %d, want f.yaml line %d", i, e.File, e.Line, tt.line[i])
				}
			}
		})
	}
}

package apiserver

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/version"

	"github.com/nplab/nplab/lab"
)

// Version is what /version reports: the Kubernetes API version nplab's
// types come from.
var Version = version.Info{Major: "1", Minor: "37", GitVersion: "v1.37.0-nplab", Platform: "linux/amd64"}

var (
	scheme = runtime.NewScheme()
	codecs serializer.CodecFactory
	strict serializer.CodecFactory
)

func init() {
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme,
		discoveryv1.AddToScheme, autoscalingv1.AddToScheme} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
	metav1.AddToGroupVersion(scheme, schema.GroupVersion{Version: "v1"})
	codecs = serializer.NewCodecFactory(scheme)
	strict = serializer.NewCodecFactory(scheme, serializer.EnableStrict)
}

// Server is the Kubernetes API endpoint of one lab: an http.Handler.
type Server struct {
	lab     *lab.Lab
	token   string
	started metav1.Time
	res     map[string]*resource // "v1/services", "apps/v1/deployments"
	all     []*resource
}

// New serves l. A request must carry "Authorization: Bearer token"
// unless token is "".
func New(l *lab.Lab, token string) *Server {
	s := &Server{lab: l, token: token, started: metav1.NewTime(l.Now().Truncate(time.Second)), res: map[string]*resource{}}
	s.all = resources()
	for _, r := range s.all {
		s.res[r.groupVersion()+"/"+r.name] = r
	}
	return s
}

// ServeHTTP serves one request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.token != "" {
		got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if subtle.ConstantTimeCompare([]byte(got), []byte(s.token)) != 1 {
			writeErr(w, apierrors.NewUnauthorized("Unauthorized"))
			return
		}
	}
	p := strings.Trim(r.URL.Path, "/")
	switch {
	case p == "version":
		writeJSON(w, http.StatusOK, Version)
		return
	case p == "healthz" || p == "readyz" || p == "livez":
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "ok")
		return
	case p == "api":
		writeJSON(w, http.StatusOK, &metav1.APIVersions{TypeMeta: metav1.TypeMeta{Kind: "APIVersions"}, Versions: []string{"v1"},
			ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{{ClientCIDR: "0.0.0.0/0", ServerAddress: r.Host}}})
		return
	case p == "apis":
		writeJSON(w, http.StatusOK, s.groups())
		return
	case strings.HasPrefix(p, "openapi/"):
		s.openAPI(w, r, strings.TrimPrefix(p, "openapi/"))
		return
	}
	var gv string
	var rest []string
	parts := strings.Split(p, "/")
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		gv, rest = parts[1], parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		gv, rest = parts[1]+"/"+parts[2], parts[3:]
	default:
		writeErr(w, notFoundPath(r))
		return
	}
	if len(rest) == 0 {
		if l := s.resourceList(gv); l != nil && r.Method == http.MethodGet {
			writeJSON(w, http.StatusOK, l)
			return
		}
		writeErr(w, notFoundPath(r))
		return
	}
	// /namespaces/{ns}/{resource}/... or /{resource}/...
	ns := ""
	if rest[0] == "namespaces" && len(rest) >= 3 {
		ns, rest = rest[1], rest[2:]
	}
	res := s.res[gv+"/"+rest[0]]
	if res == nil {
		writeErr(w, notFoundPath(r))
		return
	}
	name, sub := "", ""
	if len(rest) > 1 {
		name = rest[1]
	}
	if len(rest) > 2 {
		sub = strings.Join(rest[2:], "/")
	}
	if ns != "" && ns != lab.Namespace {
		writeErr(w, apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, ns))
		return
	}
	if !res.namespaced && ns != "" {
		writeErr(w, notFoundPath(r))
		return
	}
	s.serveResource(w, r, res, name, sub)
}

func notFoundPath(r *http.Request) error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: http.StatusNotFound,
		Reason: metav1.StatusReasonNotFound, Message: "the server could not find the requested resource",
		Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: metav1.CauseTypeUnexpectedServerResponse, Message: "404 page not found"}}}}}
}

func (s *Server) groups() *metav1.APIGroupList {
	out := &metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"}}
	seen := map[string]bool{}
	for _, r := range s.all {
		if r.group == "" || seen[r.group] {
			continue
		}
		seen[r.group] = true
		gv := metav1.GroupVersionForDiscovery{GroupVersion: r.groupVersion(), Version: r.version}
		out.Groups = append(out.Groups, metav1.APIGroup{Name: r.group, Versions: []metav1.GroupVersionForDiscovery{gv}, PreferredVersion: gv})
	}
	return out
}

func (s *Server) resourceList(gv string) *metav1.APIResourceList {
	out := &metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: gv}
	for _, r := range s.all {
		if r.groupVersion() != gv {
			continue
		}
		out.APIResources = append(out.APIResources, metav1.APIResource{Name: r.name, SingularName: r.singular,
			Namespaced: r.namespaced, Kind: r.kind, Verbs: r.verbs(), ShortNames: r.short, Categories: r.categories})
		if r.name == "pods" {
			out.APIResources = append(out.APIResources, metav1.APIResource{Name: "pods/log", Namespaced: true,
				Kind: "Pod", Verbs: metav1.Verbs{"get"}})
		}
		if r.scale {
			out.APIResources = append(out.APIResources, metav1.APIResource{Name: r.name + "/scale", Namespaced: true,
				Group: "autoscaling", Version: "v1", Kind: "Scale", Verbs: metav1.Verbs{"get", "patch", "update"}})
		}
	}
	if len(out.APIResources) == 0 {
		return nil
	}
	return out
}

// writeOptions reads ?dryRun; only "All" is a valid value, as on a real
// server.
func writeOptions(r *http.Request) (lab.WriteOptions, error) {
	var o lab.WriteOptions
	for _, v := range r.URL.Query()["dryRun"] {
		if v != "All" {
			return o, apierrors.NewBadRequest(fmt.Sprintf("Invalid dry run value: %s; supported values: [All]", v))
		}
		o.DryRun = true
	}
	return o, nil
}

// deleteOptions reads a DELETE's options, which client-go sends as a
// DeleteOptions body (kubectl delete --grace-period, --force, --now,
// --dry-run=server) and others as query parameters: dryRun and
// gracePeriodSeconds. propagationPolicy and preconditions are not
// emulated.
func deleteOptions(r *http.Request, o *lab.WriteOptions) error {
	var d metav1.DeleteOptions
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return apierrors.NewBadRequest(err.Error())
	}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &d); err != nil {
			return apierrors.NewBadRequest(fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml: %v", err))
		}
	}
	for _, v := range d.DryRun {
		if v != "All" {
			return apierrors.NewBadRequest(fmt.Sprintf("Invalid dry run value: %s; supported values: [All]", v))
		}
		o.DryRun = true
	}
	if v := r.URL.Query().Get("gracePeriodSeconds"); v != "" {
		g, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return apierrors.NewBadRequest(fmt.Sprintf("gracePeriodSeconds: %q is not a number", v))
		}
		d.GracePeriodSeconds = &g
	}
	o.GracePeriodSeconds = d.GracePeriodSeconds
	return nil
}

func (s *Server) serveResource(w http.ResponseWriter, r *http.Request, res *resource, name, sub string) {
	q := r.URL.Query()
	if sub == "log" && res.name == "pods" && r.Method == http.MethodGet {
		s.logs(w, r, name)
		return
	}
	if res.name == "pods" && (sub == "exec" || sub == "attach" || sub == "portforward") {
		// kubectl exec, attach, port-forward: nplab's pods are network
		// namespaces with an emulated app, not containers to enter.
		msg := fmt.Sprintf("nplab's pods run no container processes to %s: for a shell or a command in pod %s's network namespace, use nplab exec %s -- COMMAND",
			map[string]string{"exec": "exec into", "attach": "attach to"}[sub], name, name)
		if sub == "portforward" {
			msg = fmt.Sprintf("nplab does not forward ports from a pod to this host: reach pod %s from inside the lab, e.g. nplab exec client -- curl http://NODE_IP:NODE_PORT/ through a NodePort Service, or nplab exec %s -- COMMAND", name, name)
		}
		writeErr(w, apierrors.NewBadRequest(msg))
		return
	}
	if sub != "" && !(sub == "scale" && res.scale) {
		writeErr(w, apierrors.NewMethodNotSupported(schema.GroupResource{Group: res.group, Resource: res.name + "/" + sub}, strings.ToLower(r.Method)))
		return
	}
	opts, err := writeOptions(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	switch {
	case r.Method == http.MethodGet && name == "":
		lsel, err := labels.Parse(q.Get("labelSelector"))
		if err != nil {
			writeErr(w, apierrors.NewBadRequest(err.Error()))
			return
		}
		fsel := map[string]string{}
		if f := q.Get("fieldSelector"); f != "" {
			sel, err := fields.ParseSelector(f)
			if err != nil {
				writeErr(w, apierrors.NewBadRequest(err.Error()))
				return
			}
			for _, req := range sel.Requirements() {
				fsel[req.Field] = req.Value
			}
		}
		if v := q.Get("watch"); v == "true" || v == "1" {
			s.watch(w, r, res, lsel, fsel)
			return
		}
		s.writeList(w, r, res, selected(res.list(s), lsel, fsel))
	case r.Method == http.MethodGet && sub == "scale":
		sc, err := s.getScale(name)
		if err != nil {
			writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, sc)
	case r.Method == http.MethodGet:
		obj, err := s.get(res, name)
		if err != nil {
			writeErr(w, err)
			return
		}
		s.writeObject(w, r, res, http.StatusOK, obj)
	case res.labKind == "":
		writeErr(w, apierrors.NewMethodNotSupported(schema.GroupResource{Group: res.group, Resource: res.name}, strings.ToLower(r.Method)))
	case r.Method == http.MethodPost && name == "":
		obj, err := s.decodeBody(w, r, res)
		if err != nil {
			writeErr(w, err)
			return
		}
		out, err := s.lab.Create(obj, opts)
		if err != nil {
			writeErr(w, err)
			return
		}
		s.writeObject(w, r, res, http.StatusCreated, out)
	case (r.Method == http.MethodPut || r.Method == http.MethodPatch) && sub == "scale":
		s.updateScale(w, r, name, opts)
	case r.Method == http.MethodPut && name != "":
		obj, err := s.decodeBody(w, r, res)
		if err != nil {
			writeErr(w, err)
			return
		}
		if m := metaOf(obj); m.GetName() != name {
			writeErr(w, apierrors.NewBadRequest("the name of the object ("+m.GetName()+") does not match the name on the URL ("+name+")"))
			return
		}
		out, err := s.lab.Update(obj, opts)
		if err != nil {
			writeErr(w, err)
			return
		}
		s.writeObject(w, r, res, http.StatusOK, out)
	case r.Method == http.MethodPatch && name != "":
		s.patch(w, r, res, name, opts)
	case r.Method == http.MethodDelete && name != "":
		if err := deleteOptions(r, &opts); err != nil {
			writeErr(w, err)
			return
		}
		obj, err := s.get(res, name)
		if err == nil {
			err = s.lab.DeleteObject(res.labKind, "", name, opts)
		}
		if err != nil {
			writeErr(w, err)
			return
		}
		if after, err := s.get(res, name); err == nil && !opts.DryRun {
			obj = after // a pod terminating gracefully
		}
		s.writeObject(w, r, res, http.StatusOK, obj)
	default:
		writeErr(w, apierrors.NewMethodNotSupported(schema.GroupResource{Group: res.group, Resource: res.name}, strings.ToLower(r.Method)))
	}
}

func metaOf(o runtime.Object) metav1.Object {
	m, err := meta.Accessor(o)
	if err != nil {
		return &metav1.ObjectMeta{}
	}
	return m
}

func (s *Server) get(res *resource, name string) (runtime.Object, error) {
	if res.labKind != "" {
		return s.lab.Get(res.labKind, name)
	}
	for _, o := range res.list(s) {
		if metaOf(o).GetName() == name {
			return o, nil
		}
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Group: res.group, Resource: res.name}, name)
}

// decodeBody decodes a create or update body (JSON, YAML or protobuf)
// into the resource's type, as kube-apiserver does with
// ?fieldValidation=Strict (unknown or duplicate fields are a 400),
// Warn (the default: a Warning header) or Ignore.
func (s *Server) decodeBody(w http.ResponseWriter, r *http.Request, res *resource) (runtime.Object, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 3<<20))
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	return s.decode(w, r, res, body)
}

func (s *Server) decode(w http.ResponseWriter, r *http.Request, res *resource, body []byte) (runtime.Object, error) {
	validation := r.URL.Query().Get("fieldValidation")
	switch validation {
	case "", "Strict", "Warn", "Ignore":
	default:
		return nil, apierrors.NewBadRequest(fmt.Sprintf("fieldValidation parameter unsupported: %s", validation))
	}
	obj := res.newObj()
	gvk := schema.GroupVersionKind{Group: res.group, Version: res.version, Kind: res.kind}
	dec := strict.UniversalDeserializer()
	out, gotGVK, err := dec.Decode(body, &gvk, obj)
	if err != nil && runtime.IsStrictDecodingError(err) {
		switch validation {
		case "Strict":
		case "Ignore":
			err = nil
		default:
			for _, e := range err.(interface{ Errors() []error }).Errors() {
				w.Header().Add("Warning", fmt.Sprintf("299 - %q", e.Error()))
			}
			err = nil
		}
	}
	if err != nil {
		// The API server's transformDecodeError.
		kind := res.kind
		if gotGVK != nil && gotGVK.Kind != "" {
			kind = gotGVK.Kind
		}
		return nil, apierrors.NewBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: %v", kind, res.version, kind, err))
	}
	if gotGVK != nil && (gotGVK.Kind != res.kind || gotGVK.Group != res.group) {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the API version in the data (%s) does not match the expected API version (%s)", gotGVK.GroupVersion(), gvk.GroupVersion()))
	}
	return out, nil
}

// patch is PATCH: the patch applied to the live object's JSON, the result
// decoded and sent through Update with the live resourceVersion (retried
// when a controller changed the object in between).
func (s *Server) patch(w http.ResponseWriter, r *http.Request, res *resource, name string, opts lab.WriteOptions) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 3<<20))
	if err != nil {
		writeErr(w, apierrors.NewBadRequest(err.Error()))
		return
	}
	ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
	// The patch type first, as kube-apiserver checks it before it reads
	// the object: server-side apply of an object that does not exist yet
	// is the same 415 as of one that does, not a NotFound.
	if err := checkPatchType(ct); err != nil {
		writeErr(w, err)
		return
	}
	for attempt := 0; ; attempt++ {
		live, err := s.get(res, name)
		if err != nil {
			writeErr(w, err)
			return
		}
		liveJS, err := json.Marshal(live)
		if err != nil {
			writeErr(w, apierrors.NewInternalError(err))
			return
		}
		patched, err := applyPatch(ct, liveJS, body, res.newObj())
		if err != nil {
			writeErr(w, err)
			return
		}
		obj, err := s.decode(w, r, res, patched)
		if err != nil {
			writeErr(w, err)
			return
		}
		m := metaOf(obj)
		if m.GetResourceVersion() == "" {
			m.SetResourceVersion(metaOf(live).GetResourceVersion())
		}
		out, err := s.lab.Update(obj, opts)
		if apierrors.IsConflict(err) && attempt < 5 && !strings.Contains(string(body), `"resourceVersion"`) {
			continue
		}
		if err != nil {
			writeErr(w, err)
			return
		}
		s.writeObject(w, r, res, http.StatusOK, out)
		return
	}
}

// checkPatchType refuses a patch type the endpoint does not apply with
// 415 Unsupported Media Type, which kubectl reports ("Server-side apply
// not available on the server") instead of a patch it cannot make.
func checkPatchType(contentType string) error {
	switch types.PatchType(contentType) {
	case types.StrategicMergePatchType, types.MergePatchType, types.JSONPatchType:
		return nil
	}
	return &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure,
		Code: http.StatusUnsupportedMediaType, Reason: metav1.StatusReasonUnsupportedMediaType,
		Message: fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: %s, %s, %s (nplab does not do server-side apply)",
			types.JSONPatchType, types.MergePatchType, types.StrategicMergePatchType)}}
}

func applyPatch(contentType string, live, patch []byte, dataStruct runtime.Object) ([]byte, error) {
	if err := checkPatchType(contentType); err != nil {
		return nil, err
	}
	var out []byte
	var err error
	switch types.PatchType(contentType) {
	case types.StrategicMergePatchType:
		out, err = strategicpatch.StrategicMergePatch(live, patch, dataStruct)
	case types.MergePatchType:
		out, err = jsonpatch.MergePatch(live, patch)
	case types.JSONPatchType:
		var p jsonpatch.Patch
		if p, err = jsonpatch.DecodePatch(patch); err == nil {
			out, err = p.Apply(live)
		}
	}
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	return out, nil
}

func (s *Server) getScale(name string) (*autoscalingv1.Scale, error) {
	obj, err := s.lab.Get("Deployment", name)
	if err != nil {
		return nil, err
	}
	d := obj.(*appsv1.Deployment)
	sel := ""
	if d.Spec.Selector != nil {
		if ls, err := metav1.LabelSelectorAsSelector(d.Spec.Selector); err == nil {
			sel = ls.String()
		}
	}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	return &autoscalingv1.Scale{
		TypeMeta: metav1.TypeMeta{Kind: "Scale", APIVersion: "autoscaling/v1"},
		ObjectMeta: metav1.ObjectMeta{Name: d.Name, Namespace: d.Namespace, UID: d.UID,
			ResourceVersion: d.ResourceVersion, CreationTimestamp: d.CreationTimestamp},
		Spec:   autoscalingv1.ScaleSpec{Replicas: want},
		Status: autoscalingv1.ScaleStatus{Replicas: d.Status.Replicas, Selector: sel},
	}, nil
}

// updateScale is PUT or PATCH of deployments/{name}/scale (`kubectl
// scale`): lab.Scale with the new spec.replicas.
func (s *Server) updateScale(w http.ResponseWriter, r *http.Request, name string, opts lab.WriteOptions) {
	sc, err := s.getScale(name)
	if err != nil {
		writeErr(w, err)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeErr(w, apierrors.NewBadRequest(err.Error()))
		return
	}
	if r.Method == http.MethodPatch {
		js, _ := json.Marshal(sc)
		ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
		if body, err = applyPatch(ct, js, body, &autoscalingv1.Scale{}); err != nil {
			writeErr(w, err)
			return
		}
	}
	next := &autoscalingv1.Scale{}
	if _, _, err := codecs.UniversalDeserializer().Decode(body, nil, next); err != nil {
		if err := json.Unmarshal(body, next); err != nil {
			writeErr(w, apierrors.NewBadRequest(err.Error()))
			return
		}
	}
	if rv := next.ResourceVersion; rv != "" && rv != sc.ResourceVersion {
		writeErr(w, apierrors.NewConflict(schema.GroupResource{Group: "apps", Resource: "deployments"}, name,
			errors.New("the object has been modified; please apply your changes to the latest version and try again")))
		return
	}
	if next.Spec.Replicas < 0 {
		writeErr(w, apierrors.NewInvalid(schema.GroupKind{Group: "autoscaling", Kind: "Scale"}, name, nil))
		return
	}
	if !opts.DryRun {
		if err := s.lab.Scale(name, int(next.Spec.Replicas)); err != nil {
			writeErr(w, err)
			return
		}
		if sc, err = s.getScale(name); err != nil {
			writeErr(w, err)
			return
		}
	} else {
		sc.Spec.Replicas = next.Spec.Replicas
	}
	writeJSON(w, http.StatusOK, sc)
}

// wantsTable reports whether the client asked for a server-side table
// (kubectl get does).
func wantsTable(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "as=Table")
}

func (s *Server) setTypeMeta(res *resource, o runtime.Object) {
	o.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{Group: res.group, Version: res.version, Kind: res.kind})
}

func (s *Server) table(res *resource, objs []runtime.Object, rv string) *metav1.Table {
	t := &metav1.Table{TypeMeta: metav1.TypeMeta{Kind: "Table", APIVersion: "meta.k8s.io/v1"},
		ListMeta: metav1.ListMeta{ResourceVersion: rv}, ColumnDefinitions: res.columns, Rows: []metav1.TableRow{}}
	if t.ColumnDefinitions == nil {
		t.ColumnDefinitions = cols("NAME", "AGE")
	}
	now := s.lab.Now()
	for _, o := range objs {
		s.setTypeMeta(res, o)
		raw, _ := json.Marshal(o)
		var cells []any
		if res.row != nil {
			cells = res.row(o, now)
		} else {
			m := metaOf(o)
			cells = []any{m.GetName(), age(m.GetCreationTimestamp(), now)}
		}
		t.Rows = append(t.Rows, metav1.TableRow{Cells: cells, Object: runtime.RawExtension{Raw: raw}})
	}
	return t
}

func (s *Server) listRV() string { return strconv.FormatUint(s.lab.State().Seq, 10) }

func (s *Server) writeList(w http.ResponseWriter, r *http.Request, res *resource, objs []runtime.Object) {
	rv := s.listRV()
	if wantsTable(r) {
		writeJSON(w, http.StatusOK, s.table(res, objs, rv))
		return
	}
	for _, o := range objs {
		s.setTypeMeta(res, o)
	}
	if objs == nil {
		objs = []runtime.Object{}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"kind": res.kind + "List", "apiVersion": res.groupVersion(),
		"metadata": metav1.ListMeta{ResourceVersion: rv}, "items": objs,
	})
}

func (s *Server) writeObject(w http.ResponseWriter, r *http.Request, res *resource, code int, o runtime.Object) {
	if wantsTable(r) {
		writeJSON(w, code, s.table(res, []runtime.Object{o}, ""))
		return
	}
	s.setTypeMeta(res, o)
	writeJSON(w, code, o)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		b, _ = json.Marshal(apierrors.NewInternalError(err).ErrStatus)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

// writeErr writes err as a metav1.Status: an API status error as it is
// (the registry's Invalid, AlreadyExists, NotFound, Conflict), any other
// error as a 400 BadRequest with its text.
func writeErr(w http.ResponseWriter, err error) {
	var st apierrors.APIStatus
	var status metav1.Status
	if errors.As(err, &st) {
		status = st.Status()
	} else {
		status = apierrors.NewBadRequest(err.Error()).ErrStatus
	}
	status.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
	status.Status = metav1.StatusFailure
	if status.Code == 0 {
		status.Code = http.StatusInternalServerError
	}
	writeJSON(w, int(status.Code), status)
}

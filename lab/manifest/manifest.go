package manifest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	yaml3 "gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Object is one decoded object and where it came from.
type Object struct {
	// Object is a *corev1.Pod, *appsv1.Deployment or *corev1.Service.
	Object runtime.Object
	// Kind is "Pod", "Deployment" or "Service"; Name and Namespace are the
	// metadata as written ("" when not set).
	Kind, Name, Namespace string

	// File is the name the manifest was read from.
	File string
	// Document is the 0-based index of the YAML document in the file.
	Document int
	// Item is the index inside a `kind: List` document, -1 otherwise.
	Item int
	// Line is the 1-based line in the file where the object starts.
	Line int
}

// Resource is kubectl's resource name of the object's kind: "pod",
// "service" or "deployment.apps".
func (o Object) Resource() string { return ResourceOf(o.Kind) }

// Ref is how kubectl names the object in its output: "service/web".
func (o Object) Ref() string { return o.Resource() + "/" + o.Name }

// ResourceOf maps a kind to kubectl's resource name ("Deployment" →
// "deployment.apps").
func ResourceOf(kind string) string {
	switch kind {
	case "Deployment":
		return "deployment.apps"
	default:
		return strings.ToLower(kind)
	}
}

// Where says where the object is, for messages: `"web.yaml" document 2
// (line 14)`.
func (o Object) Where() string {
	s := fmt.Sprintf("%q document %d", o.File, o.Document+1)
	if o.Item >= 0 {
		s += fmt.Sprintf(" item %d", o.Item)
	}
	return s + fmt.Sprintf(" (line %d)", o.Line)
}

// ErrorKind classifies a decoding Error.
type ErrorKind string

const (
	// ErrSyntax: the YAML could not be parsed; the rest of the file is skipped.
	ErrSyntax ErrorKind = "syntax"
	// ErrSchema: apiVersion or kind missing (kubectl finds this itself).
	ErrSchema ErrorKind = "schema"
	// ErrDecode: an unknown field or a value of the wrong type. Current
	// kubectl leaves this to the API server (strict field validation), so
	// it is a BadRequest for the one object, reported when the object is
	// sent: Err holds it.
	ErrDecode ErrorKind = "decode"
	// ErrUnsupportedKind: a kind nplab does not emulate.
	ErrUnsupportedKind ErrorKind = "unsupported kind"
)

// Error is a decoding error. Error() is the text kubectl prints after its
// "error: " prefix.
type Error struct {
	Kind     ErrorKind
	File     string
	Document int // 0-based
	Item     int // -1 unless inside a List
	// Line is the 1-based line in the file: where the object starts, or,
	// for a syntax error, FileLine.
	Line int
	// FileLine, for a syntax error, is go-yaml's line counted in the file
	// (the message counts it in the document, as kubectl prints it).
	FileLine int
	// ObjectKind and Name are those of the object, when known.
	ObjectKind, Name string
	Msg              string
	// Err, for ErrDecode, is the API server's BadRequest carrying Msg.
	Err error
}

func (e *Error) Error() string { return e.Msg }

// Unwrap gives the API server's error of an ErrDecode error, so kubectl's
// formatting sees a status error.
func (e *Error) Unwrap() error { return e.Err }

// Supported lists the kinds nplab knows, as apiVersion and kind.
var Supported = []struct{ APIVersion, Kind string }{
	{"v1", "Pod"},
	{"v1", "Service"},
	{"apps/v1", "Deployment"},
	{"v1", "List"},
}

func supportedText() string {
	var parts []string
	for _, s := range Supported {
		parts = append(parts, s.Kind+" ("+s.APIVersion+")")
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}

// document is one YAML document of a file.
type document struct {
	data []byte
	// offset is the number of file lines before the document's first line.
	offset int
	// start is the 1-based line of the first line with content.
	start int
}

// splitDocuments cuts a file at `---` lines as kubectl's YAMLReader does: a
// line starting with "---" followed only by blanks or a comment.
func splitDocuments(data []byte) []document {
	var docs []document
	cur := document{}
	var buf bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), len(data)+1)
	line := 0
	flush := func() {
		cur.data = append([]byte(nil), buf.Bytes()...)
		docs = append(docs, cur)
		buf.Reset()
	}
	for sc.Scan() {
		line++
		text := sc.Text()
		if rest, ok := strings.CutPrefix(text, "---"); ok {
			rest = strings.TrimSpace(rest)
			if rest == "" || strings.HasPrefix(rest, "#") {
				flush()
				cur = document{offset: line}
				continue
			}
		}
		if cur.start == 0 {
			t := strings.TrimSpace(text)
			if t != "" && !strings.HasPrefix(t, "#") {
				cur.start = line
			}
		}
		buf.WriteString(text)
		buf.WriteByte('\n')
	}
	flush()
	return docs
}

var yamlLine = regexp.MustCompile(`(yaml: |\n  )line (\d+):`)

// shiftLines rewrites go-yaml's "line N" (counted in the document) to count
// in the file, and returns the first such line.
func shiftLines(msg string, offset int) (string, int) {
	first := 0
	out := yamlLine.ReplaceAllStringFunc(msg, func(m string) string {
		sub := yamlLine.FindStringSubmatch(m)
		n, _ := strconv.Atoi(sub[2])
		n += offset
		if first == 0 {
			first = n
		}
		return sub[1] + "line " + strconv.Itoa(n) + ":"
	})
	return out, first
}

// Decode reads every object of a manifest file. It returns the objects it
// could decode, in file order, and the errors (each an *Error) of those it
// could not. A syntax error stops the file, as it stops kubectl.
func Decode(file string, data []byte) ([]Object, []error) {
	var objs []Object
	var errs []error
	for i, doc := range splitDocuments(data) {
		js, err := yaml.YAMLToJSON(doc.data)
		if err != nil {
			// kubectl decodes each document on its own: the message counts
			// lines from the document's start; FileLine counts in the file.
			_, line := shiftLines(err.Error(), doc.offset)
			if line == 0 {
				line = doc.start
			}
			errs = append(errs, &Error{
				Kind: ErrSyntax, File: file, Document: i, Item: -1, Line: line, FileLine: line,
				Msg: fmt.Sprintf("error parsing %s: error converting YAML to JSON: %s", file, err),
			})
			break
		}
		js = bytes.TrimSpace(js)
		if len(js) == 0 || string(js) == "null" {
			continue
		}
		o, e := decodeDocument(file, i, -1, doc.start, js, doc.data)
		objs = append(objs, o...)
		errs = append(errs, e...)
	}
	return objs, errs
}

type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
}

func decodeDocument(file string, docIdx, item, line int, js, src []byte) ([]Object, []error) {
	schemaErr := func(kind, name, msg string) []error {
		return []error{&Error{
			Kind: ErrSchema, File: file, Document: docIdx, Item: item, Line: line,
			ObjectKind: kind, Name: name,
			Msg: fmt.Sprintf("error validating %q: error validating data: %s", file, msg),
		}}
	}
	var tm typeMeta
	if err := json.Unmarshal(js, &tm); err != nil {
		// Not an object at all (a bare string or list), or metadata of the
		// wrong shape: kubectl cannot find a version or kind either.
		var raw any
		if json.Unmarshal(js, &raw) == nil {
			if _, isMap := raw.(map[string]any); !isMap {
				return nil, schemaErr("", "", "[apiVersion not set, kind not set]")
			}
		}
		tm = typeMeta{}
		var loose map[string]any
		_ = json.Unmarshal(js, &loose)
		tm.APIVersion, _ = loose["apiVersion"].(string)
		tm.Kind, _ = loose["kind"].(string)
	}
	var missing []string
	if tm.APIVersion == "" {
		missing = append(missing, "apiVersion not set")
	}
	if tm.Kind == "" {
		missing = append(missing, "kind not set")
	}
	switch len(missing) {
	case 1:
		return nil, schemaErr(tm.Kind, tm.Metadata.Name, missing[0])
	case 2:
		return nil, schemaErr(tm.Kind, tm.Metadata.Name, "["+strings.Join(missing, ", ")+"]")
	}

	var obj runtime.Object
	switch {
	case tm.APIVersion == "v1" && tm.Kind == "Pod":
		obj = &corev1.Pod{}
	case tm.APIVersion == "v1" && tm.Kind == "Service":
		obj = &corev1.Service{}
	case tm.APIVersion == "apps/v1" && tm.Kind == "Deployment":
		obj = &appsv1.Deployment{}
	case tm.APIVersion == "v1" && tm.Kind == "List":
		// kubectl's FlattenListVisitor flattens Lists inside Lists too.
		if item >= 0 {
			return decodeList(file, docIdx, item, line, js, nil)
		}
		return decodeList(file, docIdx, item, line, js, src)
	default:
		return nil, []error{&Error{
			Kind: ErrUnsupportedKind, File: file, Document: docIdx, Item: item, Line: line,
			ObjectKind: tm.Kind, Name: tm.Metadata.Name,
			Msg: fmt.Sprintf("resource mapping not found for name: %q namespace: %q from %q: no matches for kind %q in version %q; nplab knows only %s",
				tm.Metadata.Name, tm.Metadata.Namespace, file, tm.Kind, tm.APIVersion, supportedText()),
		}}
	}

	if err := strictDecode(js, obj); err != nil {
		// The apiserver's transformDecodeError.
		_, version, _ := strings.Cut(tm.APIVersion, "/")
		if version == "" {
			version = tm.APIVersion
		}
		msg := fmt.Sprintf("%s in version %q cannot be handled as a %s: %v", tm.Kind, version, tm.Kind, err)
		return nil, []error{&Error{
			Kind: ErrDecode, File: file, Document: docIdx, Item: item, Line: line,
			ObjectKind: tm.Kind, Name: tm.Metadata.Name, Msg: msg, Err: apierrors.NewBadRequest(msg),
		}}
	}
	return []Object{{
		Object: obj, Kind: tm.Kind, Name: tm.Metadata.Name, Namespace: tm.Metadata.Namespace,
		File: file, Document: docIdx, Item: item, Line: line,
	}}, nil
}

// strictDecode is the API server's decoding of a request body with
// fieldValidation=Strict (apimachinery's json serializer): a value of the
// wrong type is the decoder's error; unknown or duplicate fields are
// collected as a strict decoding error.
func strictDecode(js []byte, obj runtime.Object) error {
	strict, err := kjson.UnmarshalStrict(js, obj)
	if err != nil {
		return err
	}
	if len(strict) > 0 {
		return runtime.NewStrictDecodingError(strict)
	}
	return nil
}

func decodeList(file string, docIdx, outerItem, line int, js, src []byte) ([]Object, []error) {
	if problems := checkList(js); len(problems) > 0 {
		msg := problems[0]
		if len(problems) > 1 {
			msg = "[" + strings.Join(problems, ", ") + "]"
		}
		return nil, []error{&Error{
			Kind: ErrSchema, File: file, Document: docIdx, Item: -1, Line: line, ObjectKind: "List",
			Msg: fmt.Sprintf("error validating %q: error validating data: %s", file, msg),
		}}
	}
	var list struct {
		Items []json.RawMessage `json:"items"`
	}
	_ = json.Unmarshal(js, &list) // checkList made sure it has this shape
	lines := itemLines(src, line)
	var objs []Object
	var errs []error
	for i, raw := range list.Items {
		l := line
		if i < len(lines) {
			l = lines[i]
		}
		idx := i
		if outerItem >= 0 {
			idx = outerItem // an item of a nested List: where its List is
		}
		o, e := decodeDocument(file, docIdx, idx, l, raw, nil)
		objs = append(objs, o...)
		errs = append(errs, e...)
	}
	return objs, errs
}

// itemLines finds the file line of each element of a List's items, using
// yaml.v3's node positions. docLine is the document's first content line.
func itemLines(src []byte, docLine int) []int {
	var root yaml3.Node
	if yaml3.Unmarshal(src, &root) != nil || len(root.Content) == 0 {
		return nil
	}
	m := root.Content[0]
	if m.Kind != yaml3.MappingNode {
		return nil
	}
	// Node lines count from the document's first line (which may be blank
	// or a comment); re-base them on the first content line.
	shift := docLine - m.Line
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "items" && m.Content[i+1].Kind == yaml3.SequenceNode {
			var out []int
			for _, it := range m.Content[i+1].Content {
				out = append(out, it.Line+shift)
			}
			return out
		}
	}
	return nil
}

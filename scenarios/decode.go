package scenarios

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Error is one thing wrong with a scenario file: the file, the 1-based line,
// the key (its path from the top: "steps[2].traffic.count") and what is
// wrong. `nplab run` prints it and exits 2.
type Error struct {
	File string `json:"file"`
	Line int    `json:"line"`
	Key  string `json:"key,omitempty"`
	Msg  string `json:"message"`
}

func (e *Error) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Key, e.Msg)
}

// Errors is every Error found in one file, in line order. errors.As finds
// the first.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap gives each Error to errors.Is and errors.As.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// maxErrors bounds how many errors one file reports.
const maxErrors = 20

// decoder walks a yaml.Node tree into Go values, strictly: an unknown key,
// a duplicate key, an alias or a value of the wrong kind is an Error with
// the line and the key path. It decodes by the `yaml:"name"` tags of the
// structs, and types with a decodeYAML method decode themselves.
type decoder struct {
	file  string
	errs  Errors
	lines map[string]int
}

type selfDecoder interface {
	decodeYAML(d *decoder, n *yaml.Node, path string)
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	line := 1
	if n != nil && n.Line > 0 {
		line = n.Line
	}
	d.errAt(line, path, fmt.Sprintf(format, args...))
}

func (d *decoder) errAt(line int, path, msg string) {
	if len(d.errs) >= maxErrors {
		return
	}
	if line < 1 {
		line = 1
	}
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Key: path, Msg: msg})
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	if n.Tag == "!!null" {
		return "nothing"
	}
	return fmt.Sprintf("%q", n.Value)
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var selfDecoderType = reflect.TypeFor[selfDecoder]()

// decode decodes n into v (settable).
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode {
		d.errorf(n, path, "aliases (*%s) are not supported: write the value out", n.Value)
		return
	}
	d.lines[path] = n.Line
	if v.CanAddr() && v.Addr().Type().Implements(selfDecoderType) {
		v.Addr().Interface().(selfDecoder).decodeYAML(d, n, path)
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if isNull(n) {
			d.errorf(n, path, "want a value, got nothing")
			return
		}
		p := reflect.New(v.Type().Elem())
		d.decode(n, p.Elem(), path)
		v.Set(p)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		if isNull(n) {
			return
		}
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, path, "want a list, got %s", kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(c, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		if isNull(n) {
			return
		}
		if n.Kind != yaml.MappingNode {
			d.errorf(n, path, "want a mapping, got %s", kindName(n))
			return
		}
		m := reflect.MakeMap(v.Type())
		d.eachKey(n, path, func(key string, kn, vn *yaml.Node) {
			e := reflect.New(v.Type().Elem()).Elem()
			d.decode(vn, e, join(path, key))
			m.SetMapIndex(reflect.ValueOf(key), e)
		})
		v.Set(m)
	case reflect.String:
		if s, ok := d.scalar(n, path); ok {
			v.SetString(s)
		}
	case reflect.Bool:
		s, ok := d.scalar(n, path)
		if !ok {
			return
		}
		if n.Tag != "!!bool" {
			d.errorf(n, path, "want true or false, got %q", s)
			return
		}
		b, _ := strconv.ParseBool(strings.ToLower(s))
		v.SetBool(b)
	case reflect.Int, reflect.Int64:
		s, ok := d.scalar(n, path)
		if !ok {
			return
		}
		i, err := strconv.ParseInt(s, 0, 64)
		if n.Tag != "!!int" || err != nil {
			d.errorf(n, path, "want a whole number, got %q", s)
			return
		}
		v.SetInt(i)
	case reflect.Uint64:
		s, ok := d.scalar(n, path)
		if !ok {
			return
		}
		i, err := strconv.ParseUint(s, 0, 64)
		if n.Tag != "!!int" || err != nil {
			d.errorf(n, path, "want a whole number, got %q", s)
			return
		}
		v.SetUint(i)
	case reflect.Float64:
		s, ok := d.scalar(n, path)
		if !ok {
			return
		}
		f, err := strconv.ParseFloat(s, 64)
		if (n.Tag != "!!int" && n.Tag != "!!float") || err != nil {
			d.errorf(n, path, "want a number, got %q", s)
			return
		}
		v.SetFloat(f)
	default:
		panic("scenarios: cannot decode into " + v.Type().String())
	}
}

// scalar returns n's text; null is "".
func (d *decoder) scalar(n *yaml.Node, path string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, path, "want a single value, got %s", kindName(n))
		return "", false
	}
	if n.Tag == "!!null" {
		return "", true
	}
	return n.Value, true
}

// eachKey calls f for every key of mapping n, reporting duplicate and
// non-scalar keys.
func (d *decoder) eachKey(n *yaml.Node, path string, f func(key string, kn, vn *yaml.Node)) {
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		if kn.Kind != yaml.ScalarNode {
			d.errorf(kn, path, "a key must be a single value, got %s", kindName(kn))
			continue
		}
		if seen[kn.Value] {
			d.errorf(kn, join(path, kn.Value), "key given twice")
			continue
		}
		seen[kn.Value] = true
		d.lines[join(path, kn.Value)] = kn.Line
		f(kn.Value, kn, vn)
	}
}

type fieldInfo struct {
	index int
	name  string
}

func structFields(t reflect.Type) []fieldInfo {
	var out []fieldInfo
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		if !f.IsExported() || tag == "" || tag == "-" {
			continue
		}
		out = append(out, fieldInfo{i, tag})
	}
	return out
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "want a mapping, got %s", kindName(n))
		return
	}
	fields := structFields(v.Type())
	d.eachKey(n, path, func(key string, kn, vn *yaml.Node) {
		i := slices.IndexFunc(fields, func(f fieldInfo) bool { return f.name == key })
		if i < 0 {
			d.errorf(kn, join(path, key), "unknown key (known keys: %s)", knownKeys(fields))
			return
		}
		d.decode(vn, v.Field(fields[i].index), join(path, key))
	})
}

func knownKeys(fields []fieldInfo) string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.name
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// decodeYAML: a manifest is a path, or a mapping with file or inline (and
// name).
func (m *Manifest) decodeYAML(d *decoder, n *yaml.Node, path string) {
	m.line = n.Line
	if n.Kind == yaml.ScalarNode {
		s, _ := d.scalar(n, path)
		if s == "" {
			d.errorf(n, path, "want a manifest path or {file: PATH} or {inline: YAML}, got nothing")
		}
		m.File = s
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "want a manifest path or {file: PATH} or {inline: YAML}, got %s", kindName(n))
		return
	}
	var raw struct {
		File   string `yaml:"file"`
		Inline string `yaml:"inline"`
		Name   string `yaml:"name"`
	}
	d.decodeStruct(n, reflect.ValueOf(&raw).Elem(), path)
	m.File, m.Inline, m.Name = raw.File, raw.Inline, raw.Name
	if (m.File == "") == (m.Inline == "") {
		d.errorf(n, path, "a manifest has exactly one of file and inline")
	}
	if m.File != "" && m.Name != "" {
		d.errorf(n, join(path, "name"), "name is for inline manifests (a file is named by its path)")
	}
}

// decodeYAML: one manifest or a list.
func (ms *Manifests) decodeYAML(d *decoder, n *yaml.Node, path string) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		var m Manifest
		m.decodeYAML(d, n, path)
		*ms = Manifests{m}
		return
	}
	out := make(Manifests, len(n.Content))
	for i, c := range n.Content {
		p := fmt.Sprintf("%s[%d]", path, i)
		if c.Kind == yaml.AliasNode {
			d.errorf(c, p, "aliases (*%s) are not supported: write the value out", c.Value)
			continue
		}
		d.lines[p] = c.Line
		out[i].decodeYAML(d, c, p)
	}
	*ms = out
}

var refRE = regexp.MustCompile(`^([A-Za-z.]+)/([a-zA-Z0-9][-a-zA-Z0-9.]*)$`)

// decodeYAML: "kind/name".
func (o *ObjectRef) decodeYAML(d *decoder, n *yaml.Node, path string) {
	s, ok := d.scalar(n, path)
	if !ok {
		return
	}
	m := refRE.FindStringSubmatch(s)
	if m == nil {
		d.errorf(n, path, "want KIND/NAME (service/web, pod/backend, deployment/web), got %q", s)
		return
	}
	o.Kind, o.Name = m[1], m[2]
}

// decodeYAML: a delete is "kind/name", a list of them, or manifests
// ({file: ...} / {inline: ...}) whose objects are deleted.
func (del *Deletion) decodeYAML(d *decoder, n *yaml.Node, path string) {
	items := []*yaml.Node{n}
	if n.Kind == yaml.SequenceNode {
		items = n.Content
	}
	for i, c := range items {
		p := path
		if n.Kind == yaml.SequenceNode {
			p = fmt.Sprintf("%s[%d]", path, i)
			d.lines[p] = c.Line
		}
		switch c.Kind {
		case yaml.ScalarNode:
			var o ObjectRef
			o.decodeYAML(d, c, p)
			del.Objects = append(del.Objects, o)
		case yaml.MappingNode:
			var m Manifest
			m.decodeYAML(d, c, p)
			del.Manifests = append(del.Manifests, m)
		default:
			d.errorf(c, p, "want KIND/NAME or {file: PATH} or {inline: YAML}, got %s", kindName(c))
		}
	}
}

func (du *Duration) decodeYAML(d *decoder, n *yaml.Node, path string) {
	s, ok := d.scalar(n, path)
	if !ok || s == "" {
		return
	}
	t, err := time.ParseDuration(s)
	if err != nil || t < 0 {
		d.errorf(n, path, "want a duration such as 500ms or 10s, got %q", s)
		return
	}
	*du = Duration(t)
}

func (p *Percent) decodeYAML(d *decoder, n *yaml.Node, path string) {
	s, ok := d.scalar(n, path)
	if !ok || s == "" {
		return
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(s, "%")), 64)
	if err != nil || f < 0 || f > 100 {
		d.errorf(n, path, "want a percentage from 0%% to 100%%, got %q", s)
		return
	}
	*p = Percent(f)
}

var bitrateRE = regexp.MustCompile(`^([0-9]+)(bit|kbit|mbit|gbit)$`)

func (b *Bitrate) decodeYAML(d *decoder, n *yaml.Node, path string) {
	s, ok := d.scalar(n, path)
	if !ok || s == "" {
		return
	}
	m := bitrateRE.FindStringSubmatch(strings.ToLower(s))
	if m == nil {
		d.errorf(n, path, "want a rate such as 8000bit, 500kbit or 1mbit, got %q", s)
		return
	}
	v, err := strconv.ParseUint(m[1], 10, 64)
	mult := map[string]uint64{"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9}[m[2]]
	if err != nil || v == 0 || v > (1<<63)/mult {
		d.errorf(n, path, "want a rate above 0 such as 1mbit, got %q", s)
		return
	}
	*b = Bitrate(v * mult)
}

func (r *Ready) decodeYAML(d *decoder, n *yaml.Node, path string) {
	s, ok := d.scalar(n, path)
	if !ok {
		return
	}
	switch n.Tag {
	case "!!bool":
		b, _ := strconv.ParseBool(strings.ToLower(s))
		r.Bool = &b
	case "!!int":
		i, err := strconv.Atoi(s)
		if err != nil || i < 0 {
			d.errorf(n, path, "want true, false or a count of pods, got %q", s)
			return
		}
		r.Count = &i
	default:
		d.errorf(n, path, "want true, false or a count of pods, got %q", s)
	}
}

func (nd *Need) decodeYAML(d *decoder, n *yaml.Node, path string) {
	s, ok := d.scalar(n, path)
	if !ok {
		return
	}
	switch Need(s) {
	case NeedDataPlane, NeedSCTP, NeedNetem:
		*nd = Need(s)
	default:
		d.errorf(n, path, "unknown need %q (known: dataplane, netem, sctp)", s)
	}
}

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

// parseYAML parses data into one document node, or reports a syntax error
// with its line.
func parseYAML(file string, data []byte) (doc *yaml.Node, err error) {
	defer func() {
		// yaml.v3 reports some malformed input by panicking; that is a
		// syntax error of the file, not a crash of nplab.
		if r := recover(); r != nil {
			doc, err = nil, Errors{{File: file, Line: 1, Msg: fmt.Sprintf("YAML syntax error: %v", r)}}
		}
	}()
	var root yaml.Node
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, Errors{{File: file, Line: 1, Msg: "the file is empty: a scenario needs at least a name and steps"}}
		}
		line := 1
		if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
			line, _ = strconv.Atoi(m[1])
		}
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		msg = yamlLineRE.ReplaceAllString(msg, "")
		msg = strings.TrimLeft(msg, ": ")
		return nil, Errors{{File: file, Line: max(line, 1), Msg: "YAML syntax error: " + msg}}
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		line := 1
		if len(next.Content) > 0 {
			line = next.Content[0].Line
		}
		if m := yamlLineRE.FindStringSubmatch(fmt.Sprint(err)); err != nil && m != nil {
			line, _ = strconv.Atoi(m[1])
		}
		return nil, Errors{{File: file, Line: max(line, 1), Msg: "a scenario file holds one YAML document; this is a second one"}}
	}
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		return root.Content[0], nil
	}
	return nil, Errors{{File: file, Line: 1, Msg: "the file is empty: a scenario needs at least a name and steps"}}
}

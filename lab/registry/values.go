package registry

import (
	"errors"
	"fmt"
	"reflect"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// ValueStyle is how a field error prints a complex bad value.
type ValueStyle int

const (
	// GoSyntaxValues prints structs, maps and slices in Go syntax (%#v),
	// as apimachinery did before v1.28 and as the spec quotes:
	// map[string]string{"app":"x"}, core.ServicePort{Name:"", Protocol:"TCP", ...}.
	GoSyntaxValues ValueStyle = iota
	// JSONValues prints them as JSON, as apimachinery v1.28+ (and v0.37)
	// does: {"app":"x"}.
	JSONValues
)

// goSyntax is a pre-rendered bad value: json.Marshal fails on it, so
// field.Error.ErrorBody falls back to its String method.
type goSyntax string

func (g goSyntax) String() string { return string(g) }

var errGoSyntax = errors.New("value rendered in Go syntax")

func (goSyntax) MarshalJSON() ([]byte, error) { return nil, errGoSyntax }

// val adapts a bad value to the configured style. Simple values (numbers,
// bools, strings and named string types) print the same in both styles.
func (r *Registry) val(v any) any {
	if r.cfg.ErrorValues == JSONValues || v == nil {
		return v
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return goSyntax("null")
		}
		return r.val(rv.Elem().Interface())
	}
	switch rv.Kind() {
	case reflect.Struct, reflect.Map, reflect.Slice, reflect.Array:
		return goSyntax(fmt.Sprintf("%#v", v))
	}
	return v
}

// internalServicePort mirrors the field layout of kube-apiserver's internal
// core.ServicePort (no JSON tags), the value of a duplicate-port error.
type internalServicePort struct {
	Name        string
	Protocol    corev1.Protocol
	AppProtocol *string
	Port        int32
	TargetPort  intstr.IntOrString
	NodePort    int32
}

// servicePortKey is the {Protocol, Port} key ValidateService reports for a
// duplicate (protocol, port) pair.
func (r *Registry) servicePortKey(proto corev1.Protocol, port int32) any {
	if r.cfg.ErrorValues == JSONValues {
		return internalServicePort{Protocol: proto, Port: port}
	}
	return goSyntax(fmt.Sprintf(`core.ServicePort{Name:"", Protocol:%q, AppProtocol:(*string)(nil), Port:%d, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:""}, NodePort:0}`, string(proto), port))
}

package kubectl

import (
	"errors"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
)

// Sourced is one error of a kubectl run with what kubectl was doing ("creating",
// "patching", "deleting") and the file the object came from ("" for none).
type Sourced struct {
	Err  error
	Verb string
	File string
}

// FormatError is what kubectl prints (to stderr) when a run ends with err
// alone, without the final newline. verb is kubectl's verb for the request
// ("creating" for a new object, "patching" for an update, "deleting") and file
// the -f file, which kubectl puts into non-Invalid API errors as
// `error when creating "FILE": `.
//
//	The Service "backend-service" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated
//	Error from server (AlreadyExists): error when creating "pods.yaml": pods "backend" already exists
func FormatError(err error, verb, file string) string {
	if agg, ok := err.(utilerrors.Aggregate); ok && len(agg.Errors()) == 1 {
		err = agg.Errors()[0]
	}
	if err == nil {
		return ""
	}
	var status *apierrors.StatusError
	if errors.As(err, &status) && apierrors.IsInvalid(status) {
		return invalidMessage(status)
	}
	if agg, ok := err.(utilerrors.Aggregate); ok {
		var out []Sourced
		for _, e := range agg.Errors() {
			out = append(out, Sourced{Err: e, Verb: verb, File: file})
		}
		return FormatErrors(out)
	}
	if msg, ok := standardMessage(addSource(err, verb, file)); ok {
		return msg
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "error: ") {
		msg = "error: " + msg
	}
	return msg
}

// FormatErrors is what kubectl prints when one run collected errs, without
// the final newline: a single error as FormatError; several, each on its own
// line in the generic form, Invalid ones included:
//
//	Error from server (Invalid): error when creating "a.yaml": Service "x" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated
//	Error from server (AlreadyExists): error when creating "b.yaml": pods "backend" already exists
func FormatErrors(errs []Sourced) string {
	switch len(errs) {
	case 0:
		return ""
	case 1:
		return FormatError(errs[0].Err, errs[0].Verb, errs[0].File)
	}
	var lines []string
	for _, s := range errs {
		var flat []error
		if agg, ok := s.Err.(utilerrors.Aggregate); ok {
			flat = utilerrors.Flatten(agg).Errors()
		} else {
			flat = []error{s.Err}
		}
		for _, e := range flat {
			msg, ok := standardMessage(addSource(e, s.Verb, s.File))
			if !ok {
				msg = e.Error()
			}
			lines = append(lines, msg)
		}
	}
	return strings.Join(lines, "\n")
}

// invalidMessage is checkErr's Invalid branch.
func invalidMessage(err *apierrors.StatusError) string {
	details := err.Status().Details
	s := "The request is invalid"
	if details == nil {
		return s
	}
	if details.Kind != "" || details.Name != "" {
		s = fmt.Sprintf("The %s %q is invalid", details.Kind, details.Name)
	}
	if len(details.Causes) == 0 {
		return s
	}
	seen := map[string]bool{}
	var causes []string
	for _, c := range details.Causes {
		msg := fmt.Sprintf("%s: %s", c.Field, c.Message)
		if seen[msg] {
			continue
		}
		seen[msg] = true
		causes = append(causes, msg)
	}
	if len(causes) == 1 {
		return s + ": " + causes[0]
	}
	var b strings.Builder
	b.WriteString(s + ": \n")
	for i, c := range causes {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString("* " + c)
	}
	return b.String()
}

// addSource is cmdutil.AddSourceToErr for API errors: the file goes into the
// status message. Other errors are left alone (nplab's own errors already
// name their object).
func addSource(err error, verb, file string) error {
	var status *apierrors.StatusError
	if file == "" || !errors.As(err, &status) {
		return err
	}
	s := status.Status()
	s.Message = fmt.Sprintf("error when %s %q: %v", verb, file, s.Message)
	return &apierrors.StatusError{ErrStatus: s}
}

// standardMessage is cmdutil.StandardErrorMessage for API errors.
func standardMessage(err error) (string, bool) {
	var status *apierrors.StatusError
	if !errors.As(err, &status) {
		return "", false
	}
	s := status.Status()
	switch {
	case s.Reason == metav1.StatusReasonUnauthorized:
		return fmt.Sprintf("error: You must be logged in to the server (%s)", s.Message), true
	case s.Reason != "":
		return fmt.Sprintf("Error from server (%s): %s", s.Reason, status.Error()), true
	default:
		return fmt.Sprintf("Error from server: %s", status.Error()), true
	}
}

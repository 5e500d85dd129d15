// Package manifest decodes the YAML a student writes into Kubernetes' own Go
// types, the way `kubectl apply -f FILE` reads it.
//
// A file holds one or more YAML documents separated by lines of `---`; a
// document may also be a `v1 List` whose items are objects. nplab knows three
// kinds: `v1 Pod`, `apps/v1 Deployment` and `v1 Service`. Each decoded
// [Object] remembers where it came from (file, document index, line), so a
// later error can point at it.
//
// Decoding is strict, like the API server's decoder under current kubectl
// (server-side strict field validation, the default since 1.27): a field the
// type does not have ("nodeport" instead of "nodePort") or a value of the
// wrong JSON type is the API server's BadRequest for that object alone
// ([ErrDecode]; the error's Err is the *StatusError), which kubectl prints
// as
//
//	Error from server (BadRequest): error when creating "svc.yaml": Service in version "v1" cannot be handled as a Service: strict decoding error: unknown field "spec.ports[0].nodeport"
//	Error from server (BadRequest): error when creating "svc.yaml": Service in version "v1" cannot be handled as a Service: json: cannot unmarshal string into Go struct field ServicePort.spec.ports.port of type int32
//
// (a wrong type wins over unknown fields; several unknown fields are listed
// in one strict decoding error). A missing apiVersion or kind is still found
// by kubectl itself ("error validating data: kind not set").
//
// YAML syntax errors read as kubectl prints them. kubectl decodes each
// document on its own, so the line is counted from the start of the
// document (the line after its `---`); [Error.FileLine] has the same line
// counted in the file:
//
//	error parsing svc.yaml: error converting YAML to JSON: yaml: line 12: did not find expected '-' indicator
//
// The line is go-yaml's, the one kubectl shows: for "did not find expected
// ..." errors go-yaml names the line before the offending one.
//
// Like kubectl, a syntax error ends the file (the documents after it are not
// read, because the parser cannot trust where they start); any other error
// only rejects its own object and decoding goes on. A `kind: List` inside a
// List is flattened too, as kubectl's FlattenListVisitor does.
//
// Nothing here defaults or validates values: that is the API server's job
// (package lab/registry).
package manifest

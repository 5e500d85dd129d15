// Package manifest decodes the YAML a student writes into Kubernetes' own Go
// types, the way `kubectl apply -f FILE` reads it.
//
// A file holds one or more YAML documents separated by lines of `---`; a
// document may also be a `v1 List` whose items are objects. nplab knows three
// kinds: `v1 Pod`, `apps/v1 Deployment` and `v1 Service`. Each decoded
// [Object] remembers where it came from (file, document index, line), so a
// later error can point at it.
//
// Decoding is strict, like kubectl's schema validation: a field the type does
// not have ("nodeport" instead of "nodePort") or a value of the wrong JSON type
// is an error naming the field's path and the OpenAPI type it belongs to:
//
//	error validating "svc.yaml": error validating data: ValidationError(Service.spec.ports[0]): unknown field "nodeport" in io.k8s.api.core.v1.ServicePort
//
// YAML syntax errors read as kubectl prints them, with the line counted in the
// file (kubectl counts it from the start of the document):
//
//	error parsing svc.yaml: error converting YAML to JSON: yaml: line 12: did not find expected '-' indicator
//
// The line is go-yaml's, the one kubectl shows: for "did not find expected
// ..." errors go-yaml names the line before the offending one.
//
// Like kubectl, a syntax error ends the file (the documents after it are not
// read, because the parser cannot trust where they start); a schema error only
// rejects its own object and decoding goes on.
//
// Nothing here defaults or validates values: that is the API server's job
// (package lab/registry).
package manifest

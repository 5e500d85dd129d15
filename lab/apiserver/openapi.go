package apiserver

import "net/http"

// openAPI serves /openapi/v2 and /openapi/v3: not yet (see the package
// doc), so a 404, after which kubectl goes on without a schema: apply
// computes its patch from the Go types it has built in, and leaves field
// validation to this server (?fieldValidation=Strict).
func (s *Server) openAPI(w http.ResponseWriter, r *http.Request, path string) {
	writeErr(w, notFoundPath(r))
}

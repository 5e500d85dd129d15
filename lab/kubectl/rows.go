package kubectl

import (
	"time"

	corev1 "k8s.io/api/core/v1"
)

// The rows below are the cells of the tables a kube-apiserver returns for
// `Accept: application/json;as=Table;g=meta.k8s.io;v=v1` (its server-side
// printers), which kubectl prints: package lab/apiserver serves them. The
// wide row is returned; the columns after ServiceColumns' first six (and
// PodColumns' first five) are priority 1, shown only by -o wide.

// ServiceColumns are the columns of ServiceRow.
var ServiceColumns = []string{"NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE", "SELECTOR"}

// ServiceRow is one Service's row of `kubectl get services -o wide`.
func ServiceRow(s *corev1.Service, now time.Time) []string {
	return serviceTable([]*corev1.Service{s}, now, true).rows[0]
}

// PodColumns are the columns of PodRow.
var PodColumns = []string{"NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE", "READINESS GATES"}

// PodRow is one Pod's row of `kubectl get pods -o wide`.
func PodRow(p *corev1.Pod, now time.Time) []string { return podRow(p, now, true) }

// EndpointsColumns are the columns of EndpointsRow.
var EndpointsColumns = []string{"NAME", "ENDPOINTS", "AGE"}

// EndpointsRow is one Endpoints object's row of `kubectl get endpoints`.
func EndpointsRow(e *corev1.Endpoints, now time.Time) []string {
	return []string{e.Name, formatEndpoints(e), age(e.CreationTimestamp, now)}
}

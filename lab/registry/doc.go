// Package registry is nplab's emulated kube-apiserver storage for v1
// Services, v1 Pods and apps/v1 Deployments: defaulting, allocation,
// validation and storage in the order kube-apiserver runs them, with its
// error text byte for byte. Pure Go, no root, no sockets; objects are
// Kubernetes' own k8s.io/api types and errors are
// *k8s.io/apimachinery/pkg/api/errors.StatusError, so
// `err.Error()` is the status message a real server sends
// (`Service "backend-service" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated`)
// and the causes in its Details are what kubectl prints from.
//
// Order of operations of a Service create (the generic store's Create plus
// the Service REST hooks):
//
//  1. (decode, done by the caller) then v1 defaulting: type ClusterIP,
//     protocol TCP, targetPort = port, sessionAffinity None (ClientIP gets
//     timeoutSeconds 10800), externalTrafficPolicy Cluster when externally
//     accessible, internalTrafficPolicy Cluster; namespace "default".
//  2. Allocation (BeginCreate): ipFamilyPolicy SingleStack and ipFamilies
//     [IPv4] after a loose check of the clusterIP fields; the clusterIP; the
//     nodePorts for NodePort/LoadBalancer (entries with the same `port`
//     share one; explicit ones reserved, zero ones auto-allocated); the
//     healthCheckNodePort for LoadBalancer+Local. The first allocation error
//     is returned at once: a Service with a bad name and a taken nodePort
//     reports only the port.
//  3. Status cleared, full validation (ValidateService).
//  4. Store; a name that exists is `services "x" already exists`. If 3 or 4
//     fail, everything 2 reserved is released.
//
// An update (UpdateService) checks resourceVersion, defaults, copies in the
// allocated values the client left out (a nodePort is matched by port
// name), reserves new numbers, drops what a type change made moot
// (NodePort → ClusterIP loses its nodePorts), validates, and releases old
// numbers only when it commits: a failed update changes nothing. Delete
// releases clusterIP and nodePorts at once; the numbers are reusable by the
// next request. No-op updates keep the resourceVersion, so a caller can tell
// "configured" from "unchanged".
//
// Pods and Deployments follow the same create/update shape with their own
// defaults and validation (the pod-update rule, the selector/template label
// match, an immutable Deployment selector). UpdatePodStatus and
// UpdateDeploymentStatus are the status subresources the controllers use.
//
// Every returned object is a deep copy; List* sort by namespace/name. A
// Registry is safe for concurrent use (one mutex). Inject Config.Rand and
// Config.Now for repeatable ports, IPs, UIDs and timestamps.
//
// Complex bad values in field errors (maps, structs, slices) are printed in
// Go syntax by default (map[string]string{"app":"x"}), as the spec quotes
// them; Config.ErrorValues = JSONValues prints them as apimachinery v1.28+
// does ({"app":"x"}).
//
// The equivalent on a real cluster is the API server itself:
// `kubectl create -f svc.yaml --dry-run=server -o yaml` shows the defaults
// and allocation without storing anything.
package registry

// Package apiserver serves a running lab's Kubernetes REST API, so the
// genuine kubectl works against it (`nplab kubectl`, or any kubectl with
// --kubeconfig /run/nplab/<lab>.kubeconfig).
//
// What it serves: discovery (/api, /apis, /api/v1, /apis/apps/v1,
// /apis/discovery.k8s.io/v1, /version), OpenAPI v3 (/openapi/v3, generated
// from the Go types, see openapi.go; no v2), and namespaces (default),
// nodes (one per lab node, with its InternalIP), services, endpoints,
// endpointslices, pods, deployments with their scale subresource,
// replicasets (read-only, made from the Deployments and their pods: see
// lab.Lab.ReplicaSets) and events (the lab's own events as v1 Events).
// pods/log serves `kubectl logs` (-c, --previous, --tail, --since,
// --timestamps, --limit-bytes, -f) from the data plane's container logs;
// pods/exec, attach and portforward answer 400 naming what to use instead
// (nplab exec), since nplab's pods have no container processes.
// Pods, services, deployments and replicasets are in the category "all",
// so `kubectl get all` lists them as on a cluster. Services, pods and
// deployments take get, list, watch, create, update (PUT), patch (strategic
// merge, JSON merge, JSON patch; server-side apply is a 415 kubectl
// reports) and delete, with ?dryRun=All and ?fieldValidation=Strict|Warn|
// Ignore; a delete takes DeleteOptions (dryRun, gracePeriodSeconds: kubectl
// delete --dry-run=server, --grace-period, --now, --force) in its body or
// query, not its propagationPolicy or preconditions (a Deployment's pods
// go with it). The others are read-only (the controllers own them). kubectl get
// gets server-side tables, as from a real server, with the cells of
// package lab/kubectl.
//
// Every write goes through lab.Lab's Create, Update, DeleteObject and Scale,
// which call the same registry as Apply: the defaulting, allocation,
// validation and *StatusError are the ones nplab already makes exact, and
// are returned as metav1.Status with their code and reason. A dry run
// allocates nothing.
//
// Why hand-written and not k8s.io/apiserver: its generic registry wants
// its own storage (etcd or a storage.Interface), internal types, conversions
// and admission chain; putting the lab's registry behind it would mean
// writing a storage layer that re-implements what package lab/registry
// already does in Kubernetes' order, and would pull a large dependency into
// every build of lab. The handlers here are small and use apimachinery
// for everything with a format: the serializers (JSON, YAML and protobuf
// bodies, strict decoding), metav1 discovery/Table/Status types,
// strategicpatch and json-patch for patches, label and field selectors.
//
// Watches are re-lists: each event of the lab wakes the watch, which lists
// the resource and sends what was added, modified or deleted (a watch from
// a list's resourceVersion, the lab's event Seq, first catches up on what
// changed since). Not served: other namespaces (kubectl's `namespaces "x"
// not found`), deletecollection, status subresources, generateName on
// create, OpenAPI v2.
//
// The endpoint (Serve) listens on 127.0.0.1 only, over TLS with a
// certificate made per run, and checks a bearer token; both are in the
// kubeconfig, mode 0600.
package apiserver

// Package lab is nplab's control plane: the part of Kubernetes that turns a
// manifest into Services, Pods and endpoints, with the same defaults, the
// same NodePort allocation and the same error text as a real cluster.
//
// A [Lab] stacks, as kube-apiserver and kube-controller-manager do:
//
//   - the API server (package lab/registry): defaulting, clusterIP and
//     nodePort allocation, validation, in Kubernetes' order;
//   - the Deployment/ReplicaSet controller, in a worker of its own (see
//     Controllers below): replicas pods named
//     <deployment>-<pod-template-hash>-<5 chars>, with the template's labels
//     plus pod-template-hash; scale up and down; a deleted pod is replaced;
//   - the scheduler, after the API server has validated and stored the pod:
//     spec.nodeName if set (a node the lab does not have is an
//     [UnknownNodeError] and the pod is not kept), else the node with the
//     fewest pods among those below the kubelet's default maxPods
//     ([MaxPods], 110), ties to the lowest index; a pod that fits nowhere
//     stays Pending with no node and a FailedScheduling event
//     ([UnschedulableError]), and is scheduled when a pod leaves a node;
//   - the pod network's IPAM: each node's pod CIDR (10.244.N.0/24) from .2
//     up, freed addresses reused lowest first;
//   - the endpoints controllers: one corev1.Endpoints and EndpointSlices per
//     Service with a selector, with the EndpointSlice conditions kube-proxy
//     reads — serving = pod Ready, terminating = deletionTimestamp set,
//     ready = publishNotReadyAddresses || (serving && !terminating) — and
//     targetPort resolved by number or by container port name.
//
// # Controllers
//
// On a real cluster `kubectl apply` returns as soon as the API server has
// stored the Deployment; the pods come afterwards, from the controllers.
// A lab works the same way. The API server's part — validation,
// allocation, storing, and for a bare Pod its scheduling — runs inside
// each call (Apply, Delete, Scale, SetPodReady, PodStopped). A
// Deployment's pods do not: the call only queues the Deployment (Apply,
// Scale, the deletion of one of its pods) and returns. One worker
// goroutine, started by New and stopped by Close, takes Deployments off
// that queue, first in first out, one at a time (a Deployment already
// waiting is not queued twice). Each sync is bounded as
// kube-controller-manager bounds it: it creates at most [BurstReplicas]
// (500) pods, in slow-start batches of 1, 2, 4, ... pods (a batch with a
// failure ends the sync, so a broken template costs one failed pod, not
// 500), and deletes at most 500. A Deployment with work left goes to the
// back of the queue, so a `replicas: 30080` typo neither blocks the
// caller nor starves the other Deployments. A failed creation is a Failed
// event, retried at the Deployment's next change (kube retries with a
// growing backoff).
//
// [Lab.WaitIdle] waits until the queue is empty and no sync runs: tests
// call it before they look at pods. [Lab.PauseControllers],
// [Lab.SyncOnce] and [Lab.ResumeControllers] drive the controllers by
// hand; `nplab validate` pauses them, applies, and runs one sync per
// Deployment, so it prints what `kubectl get pods` shows right after
// `kubectl apply`: the first burst of pods.
//
// The scheduler keeps its own count of pods per node and a queue of
// Pending pods, as kube-scheduler keeps its cache, so placing a pod costs
// O(nodes) and a sync O(pods), however many pods there are.
//
// The other controllers work, as informer-driven ones do, from what
// changed: the registry logs every Pod and Service it stores
// (registry.TakeChanges), and an index (pods by label and by owning
// Deployment, Services by selector) turns a change into the Services
// whose endpoints to recompute — the changed ones, and those whose
// selector matches a changed pod before or after — and the pods and
// Services whose state to compare. So applying n objects costs O(n), not
// O(n × objects in the lab); the benchmarks in apply_bench_test.go show
// it (`go test -run x -bench Apply -benchmem ./lab`). One cost stays by
// design: each change to the pods of a Service with m endpoints makes an
// EndpointsChanged event that lists all m, so m bare pods applied one by
// one behind one Service cost O(m²) (a Deployment's sync recomputes its
// Services once per sync).
//
// Determinism: a sync runs only when it can take the lab's lock, and each
// call makes all its changes under that lock in one go, so a call such as
// ApplyFiles is finished before the controllers act on it, and the
// controllers act in queue order. A lab with a seeded Config.Rand and a
// fixed Config.Now, given the same calls each followed by WaitIdle, ends
// with the same pods, names, nodes, IPs and events every run: golden files
// hold its `kubectl get` output. (Without the WaitIdle between two calls
// the second may land before or after a sync of the first; and a data
// plane reports readiness when its probes say so.)
//
// # Apply
//
// Apply(file, data) is `kubectl apply -f file`, ApplyFiles one `kubectl
// apply -f a -f b ...`. As kubectl does, every file is read first: the
// errors kubectl finds itself (YAML syntax, apiVersion/kind missing, kinds
// nplab does not know) come first, for all files. Then each object is sent
// in file order. A new one is created; an existing one gets kubectl apply's
// three-way strategic merge of the manifest applied last time, this one and
// the live object: a field in neither manifest keeps its live value (an
// allocated nodePort — spec.ports entries are matched on `port`, as
// ServicePort's patchMergeKey says, so renaming a port keeps its nodePort
// — the clusterIP, replicas set by Scale), one dropped from the manifest
// goes. The result is "configured", or "unchanged" when the merge changes
// nothing. (The registry's own rule of §4, a nodePort matched by port name,
// still applies below that.) A failed update is reported with the verb
// "patching"; kubectl's longer "error when applying patch: ... to: ...
// for:" form is not reproduced. An object with a name in generateName only
// is refused as kubectl refuses it (`error: from gen-: cannot use generate
// name with apply`). A rejected object does not stop the others. The same
// object twice within one file is created twice and the second fails with
// the API server's AlreadyExists, as `kubectl create -f` reports it (the
// issue asks for this; kubectl apply itself would patch). [Result.String]
// is kubectl's line for the object: `service/frontend-service created`, or
// the error exactly as kubectl prints it (see package lab/kubectl).
//
// Like every cluster, a lab has the Service default/kubernetes (10.96.0.1,
// port https 443/TCP → 6443, no selector and so no endpoints here). A
// manifest naming it is refused with `services "kubernetes" already
// exists`; deleting it brings it back, as kube-apiserver does.
//
// # Events and Watch
//
// Every change is an [Event] on one ordered stream, numbered by a strictly
// increasing Seq: applied and rejected objects (a [Rejection] with the
// exact error kubectl prints), clusterIPs and nodePorts allocated and
// released ([Allocation]), pods scheduled, ready or not, terminating and
// deleted, endpoints changed, faults ([Fault]), and what the data plane
// reports: a [plane.Flow] for every attempt through a node — the ones the
// node's kernel answered included — and the sockets each node's proxy
// listens on. An attempt that reaches no node, because the link of the
// node it was sent to (or from) is down, is a Flow too when [Lab.Send] or
// [Lab.Traffic] made it: the lab reports it, with
// plane.ReasonNodeLinkDown.
//
// An event also carries the state of the object it names after it
// happened (a [PodState], [ServiceState] or [NodeState], or Removed), and
// the lab's [State] is nothing but the fold of its events ([State.Apply]).
// That is what makes [Lab.Watch] exact: it returns the State as of some
// Seq and a channel of every event after it, with no gap and no duplicate,
// and a watcher that folds them in holds what the lab holds. A watcher
// never slows the lab: its buffer holds [WatchBuffer] events, and one that
// falls further behind has its channel closed with [ErrFellBehind] and
// Watches again. Events() keeps the last [MaxHistory] events.
//
// # Commands
//
// Front ends — the terminal UI, the scenario runner, `nplab up`, an
// instructor's Go code — drive a lab through its methods alone: Apply,
// ApplyFiles, ApplyObjects (Go objects, through the same path as a file),
// Delete, DeleteFile and Scale; [Lab.Send], whose reply carries
// its flow, and [Lab.Traffic], a bounded burst counted per pod and per
// result; and [Lab.Inject] for faults: delete a pod, make it unready or
// ready, stop or start its app, take a node's link down or up, add delay,
// jitter, loss or a rate limit to a link (an error wrapping
// plane.ErrNotSupported, with the reason, where the kernel has no netem).
// [Lab.Bench] measures the paths from the outside client to the pod behind
// a NodePort Service ([BenchManifest]) when the data plane implements
// [plane.Bencher] (the Linux one does), and [TimeLab] times a whole lab up
// and down: `nplab bench` is both.
//
// # The data plane
//
// [New] builds the control plane alone: no root, no namespaces, any OS;
// there is no kubelet, so a pod is Running and Ready as soon as it is
// scheduled, and a deleted pod is gone at once. [Start] adds the data plane
// that the imported package lab/dataplane registers (package nodes: real
// namespaces and a proxy on every node); lab itself never imports it, and
// links no netlink. With a data plane, a pod is Running but not Ready until
// its readiness probe passes; deleting a pod sets its
// deletionGracePeriodSeconds (its terminationGracePeriodSeconds, or the
// delete's gracePeriodSeconds: kubectl delete --grace-period, --now) and
// its deletionTimestamp (now plus that): `kubectl get pods` says
// Terminating, its endpoint is serving and terminating, and the pod goes
// when the data plane reports its app stopped (it exited, or the grace
// period ended). A grace period of 0 (kubectl delete --force
// --grace-period=0) takes it out of the API at once, as the API server
// does, while the data plane still stops it for its own grace period;
// its address stays taken until then.
//
// The Deployment controller writes each Deployment's status from its
// pods (deploymentstatus.go): replicas, updated, ready and available
// counts and the Available and Progressing conditions, which `kubectl get
// deployments`, `kubectl rollout status` and `kubectl wait
// --for=condition=Available` read.
//
// The kubelet's status (kubelet.go): the data plane reports every init
// container's and container's state (plane.Control.PodStatus) and the lab
// stores them and derives what the kubelet would: the phase (its getPhase:
// a failed init container fails a restartPolicy: Never pod; a crashing
// container under Always keeps it Running), the Initialized condition, and
// each container's Ready. `kubectl get pods` (package lab/kubectl, the
// server's printPod) then shows Init:0/2, Init:Error, Init:CrashLoopBackOff,
// Error, CrashLoopBackOff, Completed and RESTARTS "3 (5s ago)"; a
// container that exits is an event, a back-off the kubelet's Warning
// "Back-off restarting failed container X in pod Y". [PodState] carries
// the STATUS text and the restart count. A hostNetwork pod's IP is its
// node's (the pod network's IPAM gives it none).
//
// Fields nplab does not emulate (unemulated.go): creating a Pod,
// Deployment or Service that sets one, or an update that first sets one,
// is accepted as the API server accepts it, and one Warning event names
// every such field (spec.containers[0].livenessProbe,
// spec.internalTrafficPolicy, ...). The tables of emulated fields there
// are the deliberate list.
//
// The data plane reports through a [plane.Control] handle that only it
// receives. What the lab asks of it waits in one queue bounded by the
// lab's objects, not by their rate: pod starts and stops in order, and one
// level-triggered SyncServices with the latest service ports. A goroutine
// the lab owns runs it outside the lab's lock; a public method returns once
// what it queued has run, so an Apply returns with its listeners in place.
//
// # Persistence
//
// With Config.StateDir a lab is persistent (store.go): the registry hands
// every committed write to a store on disk (package lab/store) under
// etcd's keys; one fsync, outside the lab's lock, commits all the writes
// made since the last (group commit), and a public call returns once its
// writes are on disk (the controllers' and the data plane's are one fsync
// later). The lab's shape
// (nodes, ranges) and kubectl's last-applied manifests are kept beside
// them. A lab built with Config.Resume gets them back: the objects as they
// were stored (UIDs, resourceVersions, clusterIPs, nodePorts), the
// allocators repaired from them, the scheduler's cache and the pod IPs
// from the pods, the endpoints computed again, and, with a data plane,
// every pod started again on its node with the IP it had (the contract
// with the data plane is unchanged: StartPod always took the IP the
// control plane chose). Faults (a link down, an unready pod) are not
// stored: a restart clears them, as a node's reboot would. Close stops
// writing before the data plane tears the pods down, so the store keeps
// the lab as it ran.
//
// # The Kubernetes API
//
// [Lab.Create], [Lab.Update], [Lab.Get] and [Lab.DeleteObject] are the REST
// verbs on typed objects, with [WriteOptions] (dry run), through the same
// registry path and events as Apply; package lab/apiserver serves them to
// kubectl.
//
// A lab's objects live in namespace "default"; a manifest naming another
// namespace gets kubectl's `namespaces "x" not found`.
package lab

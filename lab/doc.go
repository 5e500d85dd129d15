// Package lab is nplab's control plane: the part of Kubernetes that turns a
// manifest into Services, Pods and endpoints, with the same defaults, the
// same NodePort allocation and the same error text as a real cluster.
//
// A [Lab] stacks, as kube-apiserver and kube-controller-manager do:
//
//   - the API server (package lab/registry): defaulting, clusterIP and
//     nodePort allocation, validation, in Kubernetes' order;
//   - the Deployment/ReplicaSet controller: replicas pods named
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
// Everything runs synchronously inside each call (Apply, Delete, Scale,
// SetPodReady, PodStopped), so a lab with a seeded Config.Rand and a fixed
// Config.Now is reproducible: golden files hold its `kubectl get` output.
//
// # Apply
//
// Apply(file, data) is `kubectl apply -f file`: each object is created, or,
// when an earlier Apply created it, updated ("configured"; "unchanged" when
// the manifest is the one applied last time). A rejected object does not
// stop the others. The same object twice within one Apply call is created
// twice and the second fails with the API server's AlreadyExists, as
// `kubectl create -f` reports it. [Result.String] is kubectl's line for the
// object: `service/frontend-service created`, or the error exactly as
// kubectl prints it (see package lab/kubectl).
//
// # Events
//
// Every change is an [Event] on one ordered stream: applied and rejected
// objects (with kubectl's error text), clusterIPs and nodePorts allocated and
// released, pods scheduled (node and IP), ready or not, terminating and
// deleted, endpoints changed (with the new list), and what the data plane
// records. Events() is the history; Subscribe() a channel per reader with an
// unbounded queue behind it: the lab never blocks on a slow reader, and
// nothing is dropped.
//
// # The data plane
//
// Without a [DataPlane] there is no kubelet: a pod is Running and Ready as
// soon as it is scheduled, and a deleted pod is gone at once. With one, the
// lab calls StartPod and the pod is Running but not Ready until the data
// plane calls SetPodReady (its readiness probe); deleting a pod sets its
// deletionTimestamp (terminating, still serving), calls StopPod, and removes
// it when the data plane calls PodStopped. After every change the whole set
// of service ports with their endpoints goes to SyncServices. Data plane
// calls run outside the lab's lock, in order, and may call back into the lab.
//
// A lab's objects live in namespace "default"; a manifest naming another
// namespace gets kubectl's `namespaces "x" not found`.
package lab

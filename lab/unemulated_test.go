package lab

import (
	"strings"
	"testing"
)

// TestUnemulatedFields: every field nplab does not emulate is named in a
// Warning event on its object, when it is created or first set by an
// update; the fields it emulates, and the defaults the API server fills
// in, never are.
func TestUnemulatedFields(t *testing.T) {
	l, err := New(Config{Name: "t"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	warnings := func() map[string]string {
		m := map[string]string{}
		for _, e := range l.Events() {
			if e.Type == EventWarning {
				m[e.Object] += e.Message + "\n"
			}
		}
		return m
	}
	const manifest = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  strategy:
    type: Recreate
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      dnsPolicy: ClusterFirst
      terminationGracePeriodSeconds: 5
      restartPolicy: Always
      initContainers:
      - name: wait
        image: busybox
        command: ["sh", "-c", "sleep 1"]
      containers:
      - name: web
        image: registry.k8s.io/e2e-test-images/agnhost:2.53
        args: ["netexec"]
        imagePullPolicy: IfNotPresent
        ports:
        - {name: http, containerPort: 8080, protocol: TCP, hostPort: 8080}
        env:
        - {name: A, value: "1"}
        - name: B
          valueFrom: {fieldRef: {fieldPath: metadata.name}}
        resources:
          limits: {cpu: 100m}
        readinessProbe:
          httpGet: {path: /readyz, port: 8080}
          periodSeconds: 1
        livenessProbe:
          httpGet: {path: /healthz, port: 8080}
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: NodePort
  selector: {app: web}
  externalTrafficPolicy: Local
  internalTrafficPolicy: Local
  externalIPs: [192.0.2.10]
  sessionAffinity: ClientIP
  ports:
  - {name: http, port: 80, targetPort: http, nodePort: 30080}
---
apiVersion: v1
kind: Pod
metadata:
  name: plain
spec:
  hostNetwork: true
  nodeName: node-2
  containers:
  - name: c
    image: nginx
`
	for _, r := range l.Apply("w.yaml", []byte(manifest)) {
		if r.Err != nil {
			t.Fatal(r)
		}
	}
	got := warnings()
	want := map[string]string{
		"deployment.apps/web": "nplab does not emulate spec.template.spec.containers[0].env[1].valueFrom, spec.template.spec.containers[0].imagePullPolicy, " +
			"spec.template.spec.containers[0].livenessProbe, spec.template.spec.containers[0].resources, spec.template.spec.dnsPolicy: accepted and stored, but with no effect in the lab (the README lists what nplab emulates)\n",
		"service/web": "nplab does not emulate spec.externalIPs, spec.internalTrafficPolicy: accepted and stored, but with no effect in the lab (the README lists what nplab emulates)\n",
	}
	for obj, w := range want {
		if got[obj] != w {
			t.Errorf("%s warned\n%q\nwant\n%q", obj, got[obj], w)
		}
	}
	for obj, w := range got {
		if _, ok := want[obj]; !ok {
			t.Errorf("unexpected warning on %s: %s", obj, w)
		}
	}
	// Re-applied unchanged: no new warning. Changed: only what is new.
	n := len(l.Events())
	l.Apply("w.yaml", []byte(manifest))
	for _, e := range l.Events()[n:] {
		if e.Type == EventWarning {
			t.Errorf("re-applied unchanged: %s %s", e.Object, e.Message)
		}
	}
	changed := strings.Replace(manifest, "  sessionAffinity: ClientIP\n", "  sessionAffinity: ClientIP\n  loadBalancerSourceRanges: [10.0.0.0/8]\n", 1)
	n = len(l.Events())
	l.Apply("w.yaml", []byte(changed))
	var msgs []string
	for _, e := range l.Events()[n:] {
		if e.Type == EventWarning {
			msgs = append(msgs, e.Object+": "+e.Message)
		}
	}
	if len(msgs) != 1 || !strings.HasPrefix(msgs[0], "service/web: nplab does not emulate spec.loadBalancerSourceRanges: ") {
		t.Errorf("after adding loadBalancerSourceRanges: %q", msgs)
	}
}

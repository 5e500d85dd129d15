package apiserver

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nplab/nplab/lab"
)

func newServer(t *testing.T) (*lab.Lab, *httptest.Server) {
	t.Helper()
	l, err := lab.New(lab.Config{Name: "t"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ts := httptest.NewServer(New(l, "tok"))
	t.Cleanup(ts.Close)
	return l, ts
}

func do(t *testing.T, ts *httptest.Server, method, path, ctype, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer tok")
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

const frontend = `{"apiVersion":"v1","kind":"Service","metadata":{"name":"frontend-service"},
 "spec":{"type":"NodePort","selector":{"app":"frontend"},"ports":[{"port":80,"targetPort":8080,"nodePort":30080}]}}`

func TestCreateConflictAndDryRun(t *testing.T) {
	l, ts := newServer(t)
	if code, body := do(t, ts, "POST", "/api/v1/namespaces/default/services", "application/json", frontend); code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	backend := strings.ReplaceAll(frontend, "frontend", "backend")
	code, body := do(t, ts, "POST", "/api/v1/namespaces/default/services?fieldValidation=Strict", "application/json", backend)
	var st struct {
		Code    int
		Reason  string
		Message string
	}
	_ = json.Unmarshal([]byte(body), &st)
	want := `Service "backend-service" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated`
	if code != 422 || st.Reason != "Invalid" || st.Message != want {
		t.Errorf("backend: %d %s", code, body)
	}
	// A server dry run picks a nodePort and keeps none.
	other := strings.ReplaceAll(strings.ReplaceAll(frontend, "frontend", "other"), `,"nodePort":30080`, "")
	code, body = do(t, ts, "POST", "/api/v1/namespaces/default/services?dryRun=All", "application/json", other)
	if code != 201 || !strings.Contains(body, `"nodePort":3`) {
		t.Fatalf("dry run: %d %s", code, body)
	}
	if n := len(l.Services()); n != 2 { // kubernetes and frontend-service
		t.Errorf("after a dry run the lab has %d services, want 2", n)
	}
	// Strict field validation.
	code, body = do(t, ts, "POST", "/api/v1/namespaces/default/services?fieldValidation=Strict", "application/json",
		strings.Replace(other, `"port":80`, `"port":80,"nodeport":1`, 1))
	if code != 400 || !strings.Contains(body, `strict decoding error: unknown field \"spec.ports[0].nodeport\"`) {
		t.Errorf("strict: %d %s", code, body)
	}
}

// A server dry run never allocates a nodePort (the upstream e2e's
// "should not allocate a nodePort on dry run"): in a range of two ports,
// any number of dry runs leave both for real creates.
func TestDryRunNeverAllocates(t *testing.T) {
	l, err := lab.New(lab.Config{Name: "t", NodePortRange: "30000-30001"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ts := httptest.NewServer(New(l, "tok"))
	t.Cleanup(ts.Close)
	svc := func(name string) string {
		return strings.ReplaceAll(strings.ReplaceAll(frontend, "frontend-service", name), `,"nodePort":30080`, "")
	}
	for i := 0; i < 5; i++ {
		code, body := do(t, ts, "POST", "/api/v1/namespaces/default/services?dryRun=All", "application/json", svc("dry"))
		if code != 201 || !regexp.MustCompile(`"nodePort":3000[01]`).MatchString(body) {
			t.Fatalf("dry run %d: %d %s", i, code, body)
		}
	}
	for _, name := range []string{"a", "b"} {
		if code, body := do(t, ts, "POST", "/api/v1/namespaces/default/services", "application/json", svc(name)); code != 201 {
			t.Fatalf("create %s after the dry runs: %d %s", name, code, body)
		}
	}
	code, body := do(t, ts, "POST", "/api/v1/namespaces/default/services", "application/json", svc("c"))
	if code < 400 || !strings.Contains(body, "range is full") {
		t.Errorf("a third Service in a range of two: %d %s", code, body)
	}
}

func TestPatchScaleAndWatch(t *testing.T) {
	l, ts := newServer(t)
	l.Apply("default.yaml", lab.DefaultManifest)
	_ = l.WaitIdle(t.Context())
	code, body := do(t, ts, "PATCH", "/api/v1/namespaces/default/services/web", "application/strategic-merge-patch+json",
		`{"spec":{"ports":[{"port":80,"protocol":"TCP","nodePort":30090}]}}`)
	if code != 200 || !strings.Contains(body, `"nodePort":30090`) {
		t.Fatalf("patch: %d %s", code, body)
	}
	// Server-side apply is a 415 whether the object exists or not (kubectl
	// apply --server-side of a new object sends the same PATCH).
	for _, name := range []string{"web", "not-there-yet"} {
		code, body = do(t, ts, "PATCH", "/api/v1/namespaces/default/services/"+name+"?fieldManager=kubectl", "application/apply-patch+yaml", `{}`)
		if code != 415 || !strings.Contains(body, `"reason":"UnsupportedMediaType"`) {
			t.Errorf("server-side apply of %s: %d %s", name, code, body)
		}
	}

	req, _ := http.NewRequest("GET", ts.URL+"/api/v1/namespaces/default/pods?watch=true&resourceVersion=1", nil)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	code, body = do(t, ts, "PATCH", "/apis/apps/v1/namespaces/default/deployments/web/scale", "application/merge-patch+json", `{"spec":{"replicas":5}}`)
	if code != 200 || !strings.Contains(body, `"replicas":5`) {
		t.Fatalf("scale: %d %s", code, body)
	}
	sc := bufio.NewScanner(resp.Body)
	added := 0
	deadline := time.AfterFunc(10*time.Second, func() { resp.Body.Close() })
	defer deadline.Stop()
	for added < 2 && sc.Scan() {
		if strings.HasPrefix(sc.Text(), `{"type":"ADDED"`) {
			added++
		}
	}
	if added != 2 {
		t.Errorf("watch saw %d pods added, want 2", added)
	}
}

// A watch from a list's resourceVersion catches up on what changed between
// the list and the watch: pods a scale created in between are ADDED, as a
// real server replays them from its history.
func TestWatchCatchesUpFromAList(t *testing.T) {
	l, ts := newServer(t)
	l.Apply("default.yaml", lab.DefaultManifest)
	_ = l.WaitIdle(t.Context())
	code, body := do(t, ts, "GET", "/api/v1/namespaces/default/pods", "", "")
	var list struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal([]byte(body), &list); code != 200 || err != nil || list.Metadata.ResourceVersion == "" {
		t.Fatalf("list: %d %v %s", code, err, body)
	}
	if code, body = do(t, ts, "PATCH", "/apis/apps/v1/namespaces/default/deployments/web/scale", "application/merge-patch+json", `{"spec":{"replicas":5}}`); code != 200 {
		t.Fatalf("scale: %d %s", code, body)
	}
	_ = l.WaitIdle(t.Context())

	req, _ := http.NewRequest("GET", ts.URL+"/api/v1/namespaces/default/pods?watch=true&resourceVersion="+list.Metadata.ResourceVersion, nil)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	deadline := time.AfterFunc(10*time.Second, func() { resp.Body.Close() })
	defer deadline.Stop()
	sc := bufio.NewScanner(resp.Body)
	added := 0
	for added < 2 && sc.Scan() {
		var ev struct{ Type string }
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("watch line %q: %v", sc.Text(), err)
		}
		switch ev.Type {
		case "ADDED":
			added++
		case "MODIFIED":
		default:
			t.Errorf("catch-up sent %s: %s", ev.Type, sc.Text())
		}
	}
	if added != 2 {
		t.Errorf("catch-up sent %d pods ADDED, want the 2 the scale created", added)
	}
}

func TestUnauthorizedAndKubeconfig(t *testing.T) {
	_, ts := newServer(t)
	resp, err := http.Get(ts.URL + "/api")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("no token: %d", resp.StatusCode)
	}
	p := filepath.Join(t.TempDir(), "x.kubeconfig")
	if err := WriteKubeconfig(p, "x", "http://127.0.0.1:1", "tok", nil); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("kubeconfig mode %v, %v", fi.Mode(), err)
	}
}

package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
	"github.com/godwit-project/godwit/internal/hypervisor/fake"
	"github.com/godwit-project/godwit/internal/store"
	"github.com/godwit-project/godwit/internal/store/bolt"
)

// testDaemon is a daemon on the fake hypervisor, serving on a unix socket
// in a temp dir.
type testDaemon struct {
	t        *testing.T
	dir      string // holds the socket and, by default, the state dir
	stateDir string
	socket   string
	f        *fake.Fake
	c        *client.Client
	raw      *http.Client
	stop     func()
}

// tempDir is a short temp dir: unix socket paths must stay under 108 bytes,
// which t.TempDir() under a long test name may not.
func tempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "godwit-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// serve starts a daemon on stateDir with f as its libvirt.
func serve(t *testing.T, dir, stateDir string, f *fake.Fake, opts ...Option) *testDaemon {
	t.Helper()
	socket := filepath.Join(dir, "godwit.sock")
	// The host's own programs are not the test's business, unless it says.
	opts = append([]Option{WithHypervisor(f), withMissingPrograms(func() []string { return nil })}, opts...)
	d, err := New(Config{Name: "testhost", StateDir: stateDir, Socket: socket, Accel: "tcg"},
		slog.New(slog.NewTextHandler(io.Discard, nil)), opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("the daemon did not stop within 20s")
		}
	}
	t.Cleanup(stop)
	c, err := client.New(client.Options{Socket: socket})
	if err != nil {
		t.Fatal(err)
	}
	raw := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}}
	return &testDaemon{t: t, dir: dir, stateDir: stateDir, socket: socket, f: f, c: c, raw: raw, stop: stop}
}

func newDaemon(t *testing.T) *testDaemon {
	dir := tempDir(t)
	return serve(t, dir, filepath.Join(dir, "state"), fake.New())
}

// do sends a raw request and returns the status and body.
func (td *testDaemon) do(method, path, body string) (int, http.Header, []byte) {
	td.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://godwit"+path, rd)
	if err != nil {
		td.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := td.raw.Do(req)
	if err != nil {
		td.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		td.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// wantError checks an error answer: the status, a JSON body of exactly
// {"error": "...", "code": status}, and a message mentioning words.
func wantError(t *testing.T, what string, status int, h http.Header, body []byte, code int, words ...string) {
	t.Helper()
	if status != code {
		t.Errorf("%s: status %d, want %d (body %s)", what, status, code, body)
		return
	}
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: Content-Type %q, want application/json", what, ct)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		t.Errorf("%s: body %s is not a JSON object: %v", what, body, err)
		return
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"code", "error"}) {
		t.Errorf("%s: body %s has keys %v, want exactly code and error", what, body, keys)
	}
	var e struct {
		Error string `json:"error"`
		Code  int    `json:"code"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Code != code || e.Error == "" {
		t.Errorf("%s: body %s, want code %d and a message (%v)", what, body, code, err)
		return
	}
	for _, w := range words {
		if !strings.Contains(e.Error, w) {
			t.Errorf("%s: message %q does not mention %q", what, e.Error, w)
		}
	}
}

// kernel writes a file a spec can boot.
func (td *testDaemon) kernel() string {
	p := filepath.Join(td.dir, "vmlinuz")
	if err := os.WriteFile(p, []byte("kernel"), 0o644); err != nil {
		td.t.Fatal(err)
	}
	return p
}

func (td *testDaemon) spec(name string) api.VMSpec {
	return api.VMSpec{Name: name, CPUs: 1, Memory: 64 * api.MiB, Boot: &api.Boot{Kernel: td.kernel()},
		Disks: []api.Disk{{Name: "root", Size: api.GiB}}}
}

// wait waits for an operation and returns how it ended.
func (td *testDaemon) wait(op api.Operation) (api.Operation, error) {
	td.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return td.c.WaitOperation(ctx, op.ID, nil)
}

func (td *testDaemon) createVM(spec api.VMSpec, start bool) {
	td.t.Helper()
	op, err := td.c.CreateVM(context.Background(), spec, client.CreateOptions{Start: start})
	if err != nil {
		td.t.Fatalf("create %s: %v", spec.Name, err)
	}
	if _, err := td.wait(op); err != nil {
		td.t.Fatalf("create %s: %v", spec.Name, err)
	}
}

func TestBadRequests(t *testing.T) {
	td := newDaemon(t)
	good := `"name": "web1", "cpus": 1, "memory": "64MiB", "boot": {"kernel": "` + td.kernel() + `"}, "disks": [{"name": "root", "size": "1GiB"}]`
	cases := []struct {
		what, method, path, body string
		words                    []string
	}{
		{"malformed JSON", "POST", "/v1/vms", `{"name": "web1", `, nil},
		{"not an object", "POST", "/v1/vms", `["web1"]`, nil},
		{"unknown field", "POST", "/v1/vms", `{` + good + `, "colour": "red"}`, []string{"colour"}},
		{"unknown nested field", "POST", "/v1/vms", `{` + good + `, "boot": {"kernel": "/k", "append": "x"}}`, []string{"boot.append"}},
		{"unknown disk field", "POST", "/v1/vms", `{"name": "web1", "disks": [{"name": "root", "size": "1GiB", "sise": "2GiB"}]}`, []string{"disks[0].sise"}},
		{"name of the wrong type", "POST", "/v1/vms", `{"name": 5}`, []string{"name"}},
		{"cpus of the wrong type", "POST", "/v1/vms", `{` + good + `, "cpus": "two"}`, []string{"cpus"}},
		{"autostart of the wrong type", "POST", "/v1/vms", `{` + good + `, "autostart": "yes"}`, []string{"autostart"}},
		{"bad size unit", "POST", "/v1/vms", `{` + good + `, "memory": "1XB"}`, []string{"memory: ", "1XB", "unit"}},
		{"size without a number", "POST", "/v1/vms", `{` + good + `, "memory": "GiB"}`, []string{`memory: size "GiB" does not start with a number`}},
		{"a word for a size", "POST", "/v1/vms", `{` + good + `, "memory": "lots"}`, []string{`memory: size "lots" does not start with a number`}},
		{"a bad disk size", "POST", "/v1/vms", `{` + good + `, "disks": [{"name": "root", "size": "1.2.3G"}]}`, []string{`disks[0].size: size "1.2.3G": "1.2.3" is not a number`}},
		{"invalid spec", "POST", "/v1/vms", `{` + good + `, "cpus": -2}`, []string{"cpus"}},
		{"tuning: topology not cpus", "POST", "/v1/vms", `{` + good + `, "cpu": {"cores": 3}}`, []string{"cpu:", "cores 3"}},
		{"tuning: pin beyond the host", "POST", "/v1/vms", `{` + good + `, "cpu": {"pin": [{"vcpu": 0, "hostCpus": "64"}]}}`, []string{"cpu.pin[0].hostCpus", "64"}},
		{"tuning: bad disk cache", "POST", "/v1/vms", `{` + good + `, "disks": [{"name": "root", "size": "1GiB", "cache": "fast"}]}`, []string{"disks[0].cache"}},
		{"tuning: unknown cpu field", "POST", "/v1/vms", `{` + good + `, "cpu": {"modle": "x"}}`, []string{"cpu.modle"}},
		{"apply names another VM", "PUT", "/v1/vms/web2", `{` + good + `}`, []string{"name", "web2"}},
		{"negative stop timeout", "POST", "/v1/vms/web1/stop", `{"timeoutSeconds": -1}`, []string{"timeoutSeconds"}},
		{"stop force of the wrong type", "POST", "/v1/vms/web1/stop", `{"force": "yes"}`, []string{"force"}},
	}
	for _, c := range cases {
		status, h, body := td.do(c.method, c.path, c.body)
		wantError(t, c.what, status, h, body, 400, c.words...)
	}
	if vms, err := td.c.ListVMs(context.Background()); err != nil || len(vms) != 0 {
		t.Fatalf("bad requests made VMs: %+v, %v", vms, err)
	}
}

func TestNotFound(t *testing.T) {
	td := newDaemon(t)
	for _, c := range []struct{ method, path, word string }{
		{"GET", "/v1/vms/nope", "nope"},
		{"POST", "/v1/vms/nope/start", "nope"},
		{"DELETE", "/v1/vms/nope", "nope"},
		{"GET", "/v1/vms/nope/console", "nope"},
		{"GET", "/v1/operations/nope", "nope"},
		{"GET", "/v2/anything", "/v2/anything"},
		{"POST", "/", "no such endpoint"}, // GET / leads to the web page
		{"POST", "/v1/vms/nope/explode", "explode"},
	} {
		status, h, body := td.do(c.method, c.path, "")
		wantError(t, c.method+" "+c.path, status, h, body, 404, c.word)
	}
	// The client sees the same as an *api.StatusError.
	_, err := td.c.GetVM(context.Background(), "nope")
	var se *api.StatusError
	if !errors.As(err, &se) || se.Code != 404 || !strings.Contains(se.Message, "nope") {
		t.Fatalf("client GetVM unknown: %#v", err)
	}
}

func TestWrongStateIsConflict(t *testing.T) {
	td := newDaemon(t)
	td.createVM(td.spec("web1"), true)
	status, h, body := td.do("POST", "/v1/vms/web1/start", "")
	wantError(t, "start a running VM", status, h, body, 409, "web1", "running")
	status, h, body = td.do("DELETE", "/v1/vms/web1", "")
	wantError(t, "delete a running VM", status, h, body, 409, "--force")
	status, h, body = td.do("POST", "/v1/vms", `{"name": "web1", "cpus": 1, "memory": "64MiB", "boot": {"kernel": "`+td.kernel()+`"}}`)
	wantError(t, "create a taken name", status, h, body, 409, "name: vm web1 already exists")
	_, err := td.c.StartVM(context.Background(), "web1")
	if api.Status(err) != 409 {
		t.Fatalf("client StartVM on a running VM: %v, want 409", err)
	}
	// Quick actions answer with the VM.
	v, err := td.c.PauseVM(context.Background(), "web1")
	if err != nil || v.State != api.VMPaused {
		t.Fatalf("PauseVM = %s, %v", v.State, err)
	}
}

func TestLifecycleOverHTTP(t *testing.T) {
	td := newDaemon(t)
	ctx := context.Background()
	status, _, body := td.do("POST", "/v1/vms", `{"name": "web1", "cpus": 1, "memory": "64MiB", "boot": {"kernel": "`+td.kernel()+`"}, "disks": [{"name": "root", "size": "1GiB"}]}`)
	if status != http.StatusAccepted {
		t.Fatalf("create: %d %s, want 202", status, body)
	}
	var op api.Operation
	if err := json.Unmarshal(body, &op); err != nil || op.ID == "" || op.Kind != "vm.create" {
		t.Fatalf("create answered %s (%v)", body, err)
	}
	if _, err := td.wait(op); err != nil {
		t.Fatal(err)
	}
	v, err := td.c.GetVM(ctx, "web1")
	if err != nil || v.State != api.VMStopped || v.Spec.Memory != 64*api.MiB || v.Host != "testhost" {
		t.Fatalf("GetVM = %+v, %v", v, err)
	}
	op, err = td.c.StartVM(ctx, "web1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := td.wait(op); err != nil {
		t.Fatal(err)
	}
	op, err = td.c.StopVM(ctx, "web1", api.StopRequest{Timeout: 5})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := td.wait(op); err != nil {
		t.Fatal(err)
	}
	op, err = td.c.DeleteVM(ctx, "web1", client.DeleteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := td.wait(op); err != nil {
		t.Fatal(err)
	}
	if len(td.f.DomainNames()) != 0 {
		t.Fatalf("domains after delete: %v", td.f.DomainNames())
	}
	ops, err := td.c.ListOperations(ctx, client.OperationFilter{Target: "vm/web1"})
	if err != nil || len(ops) != 4 {
		t.Fatalf("operations on vm/web1: %d, %v; want 4", len(ops), err)
	}
}

func TestLibvirtDown(t *testing.T) {
	dir := tempDir(t)
	f := fake.New()
	f.SetDown(true) // down from the start: the host was never brought up
	td := serve(t, dir, filepath.Join(dir, "state"), f)
	ctx := context.Background()

	check := func(when string) {
		t.Helper()
		status, h, body := td.do("GET", "/v1/vms", "")
		wantError(t, "list "+when, status, h, body, 503, "libvirt is not reachable")
		status, h, body = td.do("POST", "/v1/vms", `{"name": "web2", "cpus": 1, "memory": "64MiB", "boot": {"kernel": "`+td.kernel()+`"}}`)
		wantError(t, "create "+when, status, h, body, 503, "libvirt is not reachable")
		status, h, body = td.do("POST", "/v1/vms/web1/start", "")
		wantError(t, "start "+when, status, h, body, 503, "libvirt is not reachable")
		// What does not need libvirt still answers.
		host, err := td.c.Host(ctx)
		if err != nil || host.Libvirt.Connected || len(host.Warnings) == 0 {
			t.Errorf("host %s: %+v, %v; want not connected, with a warning", when, host, err)
		}
		if _, err := td.c.ListOperations(ctx, client.OperationFilter{}); err != nil {
			t.Errorf("operations %s: %v", when, err)
		}
	}
	check("before libvirt ever answered")

	f.SetDown(false)
	td.createVM(td.spec("web1"), false)
	if host, err := td.c.Host(ctx); err != nil || !host.Libvirt.Connected || host.Accel.Chosen != "tcg" {
		t.Fatalf("host once up: %+v, %v", host, err)
	}

	f.SetDown(true)
	check("after libvirt went away")

	f.SetDown(false)
	vms, err := td.c.ListVMs(ctx)
	if err != nil || len(vms) != 1 || vms[0].Name != "web1" {
		t.Fatalf("list once libvirt is back: %+v, %v", vms, err)
	}
	op, err := td.c.StartVM(ctx, "web1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := td.wait(op); err != nil {
		t.Fatal(err)
	}
}

func TestOpenAPI(t *testing.T) {
	td := newDaemon(t)
	status, h, body := td.do("GET", "/openapi.json", "")
	if status != 200 || !strings.Contains(h.Get("Content-Type"), "json") {
		t.Fatalf("/openapi.json: %d %s", status, h.Get("Content-Type"))
	}
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("/openapi.json is not JSON: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi version %q", doc.OpenAPI)
	}
	for path, methods := range map[string][]string{
		"/v1/vms":                  {"get", "post"},
		"/v1/vms/{name}":           {"get", "put", "delete"},
		"/v1/vms/{name}/start":     {"post"},
		"/v1/vms/{name}/stop":      {"post"},
		"/v1/operations/{id}/wait": {"get"},
		"/v1/host":                 {"get"},
	} {
		for _, m := range methods {
			if _, ok := doc.Paths[path][m]; !ok {
				t.Errorf("/openapi.json lacks %s %s", m, path)
			}
		}
	}
}

// An operation cut off by a daemon restart ends failed, saying so, and
// the VM it held is free again.
func TestOperationCutOffByRestart(t *testing.T) {
	dir := tempDir(t)
	stateDir := filepath.Join(dir, "state")
	f := fake.New()
	td := serve(t, dir, stateDir, f)
	ctx := context.Background()
	td.createVM(td.spec("web1"), true)
	f.SetGuest("web1", fake.Guest{IgnoreACPI: true})
	slow, err := td.c.StopVM(ctx, "web1", api.StopRequest{Timeout: 3600})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := td.c.StartVM(ctx, "web1"); api.Status(err) != 409 || !strings.Contains(err.Error(), slow.ID) {
		t.Fatalf("start during the stop: %v, want 409 naming %s", err, slow.ID)
	}
	td.stop()

	// A daemon killed outright leaves its operation "running" in the store.
	st, err := bolt.Open(filepath.Join(stateDir, "godwit.db"))
	if err != nil {
		t.Fatal(err)
	}
	killed := api.Operation{ID: "0-killed", Kind: "vm.start", Target: "vm/web1", State: api.OpRunning, CreatedAt: time.Now().UTC()}
	if err := store.PutJSON(ctx, st, "operations", killed.ID, killed); err != nil {
		t.Fatal(err)
	}
	st.Close()

	td2 := serve(t, dir, stateDir, f)
	for _, id := range []string{slow.ID, killed.ID} {
		op, err := td2.c.GetOperation(ctx, id)
		if err != nil {
			t.Fatalf("get operation %s after the restart: %v", id, err)
		}
		if op.State != api.OpFailed || !strings.Contains(op.Error, "daemon stopped") || op.FinishedAt.IsZero() {
			t.Errorf("operation %s after the restart: %s %q, want failed because the daemon stopped", id, op.State, op.Error)
		}
		if _, err := td2.wait(op); err == nil {
			t.Errorf("waiting on the failed operation %s gave no error", id)
		}
	}
	active, err := td2.c.ListOperations(ctx, client.OperationFilter{Active: true})
	if err != nil || len(active) != 0 {
		t.Fatalf("active operations after the restart: %+v, %v", active, err)
	}
	op, err := td2.c.StopVM(ctx, "web1", api.StopRequest{Force: true})
	if err != nil {
		t.Fatalf("stop after the restart: %v", err)
	}
	if _, err := td2.wait(op); err != nil {
		t.Fatal(err)
	}
}

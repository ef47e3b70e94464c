package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
)

// server answers every request with status and body, and records the
// requests it saw.
type server struct {
	*httptest.Server
	mu   sync.Mutex
	seen []string // "METHOD path?query body"
}

func newServer(t *testing.T, h http.HandlerFunc) (*server, *Client) {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.seen = append(s.seen, strings.TrimSpace(r.Method+" "+r.URL.RequestURI()+" "+string(b)))
		s.mu.Unlock()
		h(w, r)
	}))
	// The client speaks plain HTTP only over a unix socket.
	sock := filepath.Join(t.TempDir(), "d.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	s.Server.Listener.Close()
	s.Server.Listener = l
	s.Server.Start()
	t.Cleanup(s.Close)
	c, err := New(Options{Socket: sock})
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

func (s *server) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen...)
}

func answer(status int, contentType, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

func TestErrorBodies(t *testing.T) {
	cases := []struct {
		what        string
		status      int
		contentType string
		body        string
		wantCode    int
		wantMsg     string
	}{
		{"API error", 409, "application/json", `{"error": "vm web1 is busy", "code": 409}`, 409, "vm web1 is busy"},
		{"API error without a code", 418, "application/json", `{"error": "short and stout"}`, 418, "short and stout"},
		{"plain text", 502, "text/plain", "upstream exploded\n", 502, "upstream exploded"},
		{"HTML", 500, "text/html", "<h1>oops</h1>", 500, "<h1>oops</h1>"},
		{"empty body", 503, "", "", 503, "503 Service Unavailable"},
		{"JSON that is not an API error", 400, "application/json", `{"message": "nope"}`, 400, `{"message": "nope"}`},
		{"redirect", 307, "", "", 307, "307 Temporary Redirect"},
	}
	for _, c := range cases {
		_, cl := newServer(t, answer(c.status, c.contentType, c.body))
		_, err := cl.GetVM(context.Background(), "web1")
		var se *api.StatusError
		if !errors.As(err, &se) {
			t.Errorf("%s: %T %v, want *api.StatusError", c.what, err, err)
			continue
		}
		if se.Code != c.wantCode || se.Message != c.wantMsg {
			t.Errorf("%s: StatusError{%q, %d}, want {%q, %d}", c.what, se.Message, se.Code, c.wantMsg, c.wantCode)
		}
		if api.Status(err) != c.wantCode {
			t.Errorf("%s: api.Status = %d", c.what, api.Status(err))
		}
	}
}

func TestBadAnswer(t *testing.T) {
	_, c := newServer(t, answer(200, "application/json", `{"name": 5}`))
	_, err := c.GetVM(context.Background(), "web1")
	if err == nil || !strings.Contains(err.Error(), "decode answer of GET /v1/vms/web1") {
		t.Fatalf("undecodable answer: %v", err)
	}
}

func TestUnreachableDaemon(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "godwit.sock")
	c, err := New(Options{Socket: sock})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ListVMs(context.Background())
	if err == nil || !strings.Contains(err.Error(), "cannot reach the godwit daemon at "+sock) {
		t.Fatalf("unreachable daemon: %v", err)
	}
	if api.Status(err) != 0 {
		t.Fatalf("an unreachable daemon is not an HTTP status: %d", api.Status(err))
	}
	if _, err := New(Options{URL: "ftp://host"}); err == nil {
		t.Fatal("an ftp:// daemon URL was accepted")
	}
}

// The client sends what the API documents: methods, paths (escaped),
// query flags and JSON bodies.
func TestRequests(t *testing.T) {
	s, c := newServer(t, answer(202, "application/json", `{"id": "op1", "state": "running"}`))
	ctx := context.Background()
	spec := api.VMSpec{Name: "web1", Memory: 512 * api.MiB}
	if _, err := c.CreateVM(ctx, spec, CreateOptions{Start: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ApplyVM(ctx, spec, CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteVM(ctx, "a b", DeleteOptions{KeepDisks: true, Force: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StopVM(ctx, "web1", api.StopRequest{Force: true, Timeout: 5}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartVM(ctx, "web1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListOperations(ctx, OperationFilter{Target: "vm/web1", Active: true}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`POST /v1/vms?start=true {"name":"web1","cpus":0,"memory":"512MiB"}`,
		`PUT /v1/vms/web1 {"name":"web1","cpus":0,"memory":"512MiB"}`,
		`DELETE /v1/vms/a%20b?force=true&keepDisks=true`,
		`POST /v1/vms/web1/stop {"force":true,"timeoutSeconds":5}`,
		`POST /v1/vms/web1/start`,
		`GET /v1/operations?active=true&target=vm%2Fweb1`,
	}
	got := s.requests()
	if len(got) != len(want) {
		t.Fatalf("requests:\n%s", strings.Join(got, "\n"))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("request %d: %s\nwant %s", i, got[i], want[i])
		}
	}
}

// opServer serves an operation that runs for a few polls, then ends as end.
func opServer(t *testing.T, end api.Operation) (*server, *Client) {
	polls := 0
	var mu sync.Mutex
	return newServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		op := api.Operation{ID: "op1", Kind: "vm.create", Target: "vm/web1", State: api.OpRunning,
			Progress: api.Progress{Message: "step " + string(rune('0'+polls))}, UpdatedAt: time.Unix(int64(polls), 0)}
		polls++
		if polls > 3 || strings.HasSuffix(r.URL.Path, "/wait") {
			op = end
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(op)
	})
}

func TestWaitOperation(t *testing.T) {
	ctx := context.Background()
	failed := api.Operation{ID: "op1", State: api.OpFailed, Error: "vm web1: cpus: 64 is more than this host's 4 CPUs", ErrorCode: 400}
	for _, progress := range []bool{false, true} {
		s, c := opServer(t, failed)
		var seen []string
		var onProgress func(api.Operation)
		if progress {
			onProgress = func(op api.Operation) { seen = append(seen, string(op.State)+" "+op.Progress.Message) }
		}
		op, err := c.WaitOperation(ctx, "op1", onProgress)
		if op.State != api.OpFailed {
			t.Errorf("progress %t: op ended %s", progress, op.State)
		}
		var se *api.StatusError
		if !errors.As(err, &se) || se.Code != 400 || se.Message != failed.Error {
			t.Errorf("progress %t: err = %#v, want op.Err() (400, %q)", progress, err, failed.Error)
		}
		if err.Error() != op.Err().Error() {
			t.Errorf("progress %t: err %q is not op.Err() %q", progress, err, op.Err())
		}
		reqs := s.requests()
		if progress {
			if len(seen) != 4 || seen[0] != "running step 0" || seen[3] != "failed " {
				t.Errorf("progress reports: %q", seen)
			}
			if !strings.HasPrefix(reqs[0], "GET /v1/operations/op1") || strings.Contains(reqs[0], "wait") {
				t.Errorf("polling asked %s", reqs[0])
			}
		} else if len(reqs) != 1 || reqs[0] != "GET /v1/operations/op1/wait?timeout=30" {
			t.Errorf("long poll asked %q", reqs)
		}
	}

	_, c := opServer(t, api.Operation{ID: "op1", State: api.OpFailed, Error: "boom"})
	if _, err := c.WaitOperation(ctx, "op1", nil); api.Status(err) != 500 || err.Error() != "boom" {
		t.Errorf("failed op without a code: %v (%d), want 500", err, api.Status(err))
	}
	_, c = opServer(t, api.Operation{ID: "op1", State: api.OpCancelled, Error: "cancelled"})
	if _, err := c.WaitOperation(ctx, "op1", nil); api.Status(err) != 409 || !strings.Contains(err.Error(), "cancelled") {
		t.Errorf("cancelled op: %v, want 409 saying cancelled", err)
	}
	_, c = opServer(t, api.Operation{ID: "op1", State: api.OpSucceeded})
	if op, err := c.WaitOperation(ctx, "op1", nil); err != nil || op.State != api.OpSucceeded {
		t.Errorf("succeeded op: %s, %v", op.State, err)
	}
	_, c = newServer(t, answer(404, "application/json", `{"error": "operation \"op9\" not found", "code": 404}`))
	if _, err := c.WaitOperation(ctx, "op9", nil); api.Status(err) != 404 {
		t.Errorf("unknown op: %v, want 404", err)
	}
}

func TestWaitOperationHonoursContext(t *testing.T) {
	_, c := newServer(t, answer(200, "application/json", `{"id": "op1", "state": "running"}`))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	began := time.Now()
	_, err := c.WaitOperation(ctx, "op1", func(api.Operation) {})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait past the deadline: %v", err)
	}
	if time.Since(began) > 5*time.Second {
		t.Fatalf("wait took %s after its deadline", time.Since(began))
	}
}

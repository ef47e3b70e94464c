package daemon

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
	"github.com/godwit-project/godwit/internal/hypervisor/fake"
	"github.com/godwit-project/godwit/internal/pki"
)

// tlsDaemon is a daemon on the fake hypervisor serving the unix socket
// and TLS on a free loopback port.
type tlsDaemon struct {
	*testDaemon
	d      *Daemon
	url    string
	tlsDir string
}

func serveTLS(t *testing.T) *tlsDaemon {
	t.Helper()
	dir := tempDir(t)
	stateDir := filepath.Join(dir, "state")
	socket := filepath.Join(dir, "godwit.sock")
	d, err := New(Config{Name: "testhost", StateDir: stateDir, Socket: socket, Accel: "tcg", Listen: "127.0.0.1:0"},
		slog.New(slog.NewTextHandler(io.Discard, nil)), WithHypervisor(fake.New()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("the daemon did not stop")
		}
	})
	td := &testDaemon{t: t, dir: dir, stateDir: stateDir, socket: socket}
	td.c, _ = client.New(client.Options{Socket: socket})
	td.raw = unixHTTP(socket)
	return &tlsDaemon{testDaemon: td, d: d, url: "https://" + d.listeners[1].Addr().String(), tlsDir: filepath.Join(stateDir, "tls")}
}

// httpsClient returns an HTTP client trusting the daemon's CA, with the
// client certificate certName (from tlsDir) or none.
func (td *tlsDaemon) httpsClient(certName string) *http.Client {
	td.t.Helper()
	cfg, err := pki.ClientTLS(td.tlsDir)
	if err != nil {
		td.t.Fatal(err)
	}
	cfg.Certificates = nil
	if certName != "" {
		c, err := tls.LoadX509KeyPair(filepath.Join(td.tlsDir, certName+".crt"), filepath.Join(td.tlsDir, certName+".key"))
		if err != nil {
			td.t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}

// call sends a request over TLS with an optional bearer token.
func (td *tlsDaemon) call(hc *http.Client, token, method, path, body string) (int, http.Header, []byte) {
	td.t.Helper()
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	return td.send(hc, h, method, path, body)
}

// send sends a request over TLS with these headers.
func (td *tlsDaemon) send(hc *http.Client, h http.Header, method, path, body string) (int, http.Header, []byte) {
	td.t.Helper()
	req, err := http.NewRequest(method, td.url+path, strings.NewReader(body))
	if err != nil {
		td.t.Fatal(err)
	}
	req.Header = h
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		td.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func TestTCPNeedsCertificateOrToken(t *testing.T) {
	td := serveTLS(t)
	ctx := context.Background()
	td.createVM(td.spec("web1"), false)
	anon := td.httpsClient("")

	// Nothing proved: refused, with a WWW-Authenticate challenge.
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/v1/vms", ""}, {"POST", "/v1/vms/web1/start", ""}, {"GET", "/v1/host", ""},
		{"GET", "/metrics", ""}, {"GET", "/openapi.json", ""}, {"GET", "/nope", ""},
	} {
		status, h, body := td.call(anon, "", c.method, c.path, c.body)
		wantError(t, "anonymous "+c.method+" "+c.path, status, h, body, 401, "authentication required")
		if h.Get("WWW-Authenticate") == "" {
			t.Errorf("anonymous %s: no WWW-Authenticate", c.path)
		}
	}
	// Health probes answer anyone.
	if status, _, body := td.call(anon, "", "GET", "/healthz", ""); status != 200 {
		t.Fatalf("anonymous /healthz: %d %s", status, body)
	}
	// A made-up or malformed token is refused.
	for _, tok := range []string{"gwt_00000000_abcd", "nonsense", "gwt_"} {
		status, h, body := td.call(anon, tok, "GET", "/v1/vms", "")
		wantError(t, "token "+tok, status, h, body, 401, "invalid or revoked")
	}

	// The admin certificate (client.crt) may do everything.
	admin := td.httpsClient("client")
	if status, _, body := td.call(admin, "", "GET", "/v1/vms", ""); status != 200 || !strings.Contains(string(body), "web1") {
		t.Fatalf("admin certificate list: %d %s", status, body)
	}

	// Tokens, made over the unix socket (root, admin).
	reader, err := td.c.CreateToken(ctx, api.TokenRequest{Name: "grafana", Scope: "read"})
	if err != nil {
		t.Fatal(err)
	}
	adminTok, err := td.c.CreateToken(ctx, api.TokenRequest{Name: "ci", Scope: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := td.c.CreateToken(ctx, api.TokenRequest{Name: "ci", Scope: "read"}); api.Status(err) != 409 {
		t.Fatalf("a second token named ci: %v, want 409", err)
	}
	if _, err := td.c.CreateToken(ctx, api.TokenRequest{Name: "x", Scope: "root"}); api.Status(err) != 400 {
		t.Fatalf("scope root: %v, want 400", err)
	}
	// A read-only token reads, but cannot start a VM (nor make tokens).
	if status, _, body := td.call(anon, reader.Secret, "GET", "/v1/vms/web1", ""); status != 200 {
		t.Fatalf("read token get: %d %s", status, body)
	}
	status, h, body := td.call(anon, reader.Secret, "POST", "/v1/vms/web1/start", "")
	wantError(t, "read token start", status, h, body, 403, "token:grafana", "admin")
	status, h, body = td.call(anon, reader.Secret, "POST", "/v1/tokens", `{"name": "evil", "scope": "admin"}`)
	wantError(t, "read token makes a token", status, h, body, 403, "admin")
	if v, _ := td.c.GetVM(ctx, "web1"); v.State != api.VMStopped {
		t.Fatalf("web1 is %s after a refused start", v.State)
	}
	// The Go client with a token and only the CA.
	cfg, _ := pki.ClientTLS(td.tlsDir)
	cfg.Certificates = nil
	rc, _ := client.New(client.Options{URL: td.url, TLS: cfg, Token: reader.Secret})
	if _, err := rc.StartVM(ctx, "web1"); api.Status(err) != 403 {
		t.Fatalf("client with a read token: StartVM = %v, want 403", err)
	}
	ac, _ := client.New(client.Options{URL: td.url, TLS: cfg, Token: adminTok.Secret})
	op, err := ac.StartVM(ctx, "web1")
	if err != nil {
		t.Fatalf("admin token start: %v", err)
	}
	if _, err := ac.WaitOperation(ctx, op.ID, nil); err != nil {
		t.Fatal(err)
	}

	// A certificate issued with the read scope reads only.
	id, err := pki.LoadOrCreate(td.tlsDir, "testhost", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := id.NewClient("dashboard", "read")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(td.tlsDir, "reader.crt"), cc.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(td.tlsDir, "reader.key"), cc.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	rcert := td.httpsClient("reader")
	if status, _, _ := td.call(rcert, "", "GET", "/v1/vms", ""); status != 200 {
		t.Fatalf("read certificate list: %d", status)
	}
	status, h, body = td.call(rcert, "", "POST", "/v1/vms/web1/pause", "")
	wantError(t, "read certificate pause", status, h, body, 403, "cert:dashboard")

	// Revoked: refused at once. Secrets are not in the store.
	if _, err := td.c.RevokeToken(ctx, "grafana"); err != nil {
		t.Fatal(err)
	}
	status, h, body = td.call(anon, reader.Secret, "GET", "/v1/vms", "")
	wantError(t, "revoked token", status, h, body, 401, "revoked")
	kvs, err := td.d.store.List(ctx, "tokens")
	if err != nil || len(kvs) != 1 {
		t.Fatalf("tokens bucket: %d entries, %v", len(kvs), err)
	}
	for _, kv := range kvs {
		if bytes.Contains(kv.Value, []byte(adminTok.Secret)) || bytes.Contains(kv.Value, []byte(adminTok.Secret[len("gwt_xxxxxxxx_"):])) {
			t.Fatal("the store keeps a token's secret")
		}
	}
	list, err := td.c.ListTokens(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "ci" {
		t.Fatalf("tokens after revoke: %+v, %v", list, err)
	}

	// The audit log saw every change request, refused ones too.
	entries, err := td.c.Audit(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	local := fmt.Sprintf("local:uid=%d", os.Geteuid())
	want := []string{
		"anonymous POST /v1/vms/web1/start 401",
		local + " POST /v1/tokens 200",
		"token:grafana POST /v1/vms/web1/start 403",
		"token:ci POST /v1/vms/web1/start 202 vm/web1",
		"cert:dashboard POST /v1/vms/web1/pause 403",
		local + " DELETE /v1/tokens/grafana 200",
	}
	var got []string
	for _, e := range entries {
		if e.Method == "GET" {
			t.Errorf("audit log has a GET: %+v", e)
		}
		if e.Time.IsZero() {
			t.Errorf("audit entry without time: %+v", e)
		}
		got = append(got, strings.TrimSpace(fmt.Sprintf("%s %s %s %d %s", e.Principal, e.Method, e.Path, e.Status, e.Target)))
	}
	all := strings.Join(got, "\n")
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("audit log lacks %q; has:\n%s", w, all)
		}
	}
}

// Oversized and malformed bodies get 4xx, and the daemon goes on serving.
func TestBodyLimits(t *testing.T) {
	td := newDaemon(t)
	big := `{"name": "web1", "labels": {"x": "` + strings.Repeat("a", MaxBodyBytes) + `"}}`
	status, h, body := td.do("POST", "/v1/vms", big)
	wantError(t, "oversized body", status, h, body, 413, "too large")
	status, h, body = td.do("PUT", "/v1/vms/web1", big)
	wantError(t, "oversized apply", status, h, body, 413, "too large")
	// Just under the limit is read (and then judged on its content).
	under := `{"name": "web1", "labels": {"x": "` + strings.Repeat("a", MaxBodyBytes-100) + `"}}`
	status, h, body = td.do("POST", "/v1/vms", under)
	wantError(t, "big but allowed body", status, h, body, 400)
	for _, bad := range []string{`{"name": `, "\x00\xff", `{"name": "a"}{"name": "b"}`, `[[[[[[[[[[[[[[[[[[[[`, strings.Repeat("{", 100000)} {
		status, _, body := td.do("POST", "/v1/vms", bad)
		if status < 400 || status >= 500 {
			t.Errorf("body %.30q: %d %s, want 4xx", bad, status, body)
		}
	}
	if _, err := td.c.ListVMs(context.Background()); err != nil {
		t.Fatalf("the daemon stopped serving: %v", err)
	}
	if status, _, _ := td.do("GET", "/healthz", ""); status != 200 {
		t.Fatalf("/healthz after bad bodies: %d", status)
	}
}

func unixHTTP(socket string) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}}
}

package daemon

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/godwit-project/godwit/internal/hypervisor/fake"
)

// fuzzRoutes are the request bodies the API decodes.
var fuzzRoutes = []struct{ method, path string }{
	{"POST", "/v1/vms"},
	{"PUT", "/v1/vms/fuzz"},
	{"POST", "/v1/vms/fuzz/stop"},
	{"POST", "/v1/tokens"},
}

// FuzzAPIDecode sends any body to the routes that decode one, through the
// real handler (auth, audit, huma, errors) on the fake hypervisor. Every
// answer is 2xx or 4xx, never 5xx or a panic, and the daemon goes on
// serving.
func FuzzAPIDecode(f *testing.F) {
	for _, s := range []string{
		`{"name": "web1", "cpus": 1, "memory": "64MiB", "boot": {"kernel": "/k"}, "disks": [{"name": "root", "size": "1GiB"}]}`,
		`{"name": "fuzz", "cpus": 2, "memory": "1GiB", "boot": {"kernel": "/k", "cmdline": "x"}, "labels": {"a": "b"}}`,
		`{"name": "web1", "memory": "1XB"}`,
		`{"name": 5}`,
		`{"force": true, "timeoutSeconds": 3}`,
		`{"timeoutSeconds": -1}`,
		`{"name": "ci", "scope": "read"}`,
		`{"name": "", "scope": "root"}`,
		`{"name": "web1", `,
		`[]`,
		`null`,
		"\x00",
		``,
	} {
		for i := range fuzzRoutes {
			f.Add(uint8(i), []byte(s))
		}
	}
	dir := tempDir(f)
	d, err := New(Config{Name: "fuzzhost", StateDir: filepath.Join(dir, "state"), Socket: filepath.Join(dir, "godwit.sock"), Accel: "tcg"},
		slog.New(slog.NewTextHandler(io.Discard, nil)), WithHypervisor(fake.New()))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { d.ops.Shutdown(context.Background()); d.Close() })
	h := d.handler()
	local := context.WithValue(context.Background(), localPeerKey{}, localPeer{uid: 0})
	serve := func(method, path string, body []byte) *httptest.ResponseRecorder {
		req := httptest.NewRequestWithContext(local, method, path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		r := fuzzRoutes[int(route)%len(fuzzRoutes)]
		rec := serve(r.method, r.path, body)
		if rec.Code >= 500 || rec.Code < 200 {
			t.Fatalf("%s %s with %q: %d %s", r.method, r.path, body, rec.Code, rec.Body)
		}
		if rec.Code >= 400 && !bytes.Contains(rec.Body.Bytes(), []byte(`"error"`)) {
			t.Fatalf("%s %s with %q: %d without an API error: %s", r.method, r.path, body, rec.Code, rec.Body)
		}
		if rec := serve("GET", "/healthz", nil); rec.Code != http.StatusOK {
			t.Fatalf("the daemon stopped serving after %q: /healthz %d", body, rec.Code)
		}
	})
}

// Package python_test runs the Python client's own tests (clients/python,
// standard library only) with Debian's python3 against a daemon on the
// fake hypervisor: the generated models and routes must match the
// daemon's /openapi.json, every route the client calls must exist, and the
// client's calls that need no real VM must work. test/e2e/python_test.go
// runs the rest against a real libvirtd.
package python_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/godwit-project/godwit/internal/daemon"
	"github.com/godwit-project/godwit/internal/golden"
	"github.com/godwit-project/godwit/internal/hypervisor/fake"
	"github.com/godwit-project/godwit/internal/testenv"
)

// fakeDaemon serves the API on the fake hypervisor; it returns the socket.
func fakeDaemon(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "godwit-py")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	socket := filepath.Join(dir, "godwit.sock")
	d, err := daemon.New(daemon.Config{Name: "pyhost", StateDir: filepath.Join(dir, "state"), Socket: socket, Accel: "tcg"},
		slog.New(slog.NewTextHandler(io.Discard, nil)), daemon.WithHypervisor(fake.New()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("the daemon did not stop within 20s")
		}
	})
	return socket
}

// openAPI fetches /openapi.json from the daemon at socket into a file.
func openAPI(t *testing.T, socket string) string {
	t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}}
	resp, err := hc.Get("http://godwit/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/openapi.json: %d %v", resp.StatusCode, err)
	}
	path := filepath.Join(t.TempDir(), "openapi.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func run(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v\nstdout:\n%s\nstderr:\n%s", name, args, err, out.String(), errOut.String())
	}
	if errOut.Len() > 0 {
		t.Logf("%s %v:\n%s", name, args, errOut.String())
	}
	return out.String()
}

// The committed godwit/_generated.py is what tools/gen.py makes of the
// daemon's /openapi.json (go test -update rewrites it).
func TestGenerated(t *testing.T) {
	py := testenv.RequirePython(t)
	spec := openAPI(t, fakeDaemon(t))
	golden.Compare(t, "godwit/_generated.py", run(t, nil, py, "tools/gen.py", spec))
}

// The unit tests, the drift check against /openapi.json and the calls
// that need no real VM (tests/test_*.py; the live ones skip without
// GODWIT_TEST_LIVE).
func TestPythonUnit(t *testing.T) {
	py := testenv.RequirePython(t)
	socket := fakeDaemon(t)
	spec := openAPI(t, socket)
	run(t, []string{"GODWIT_SOCKET=" + socket, "GODWIT_OPENAPI=" + spec, "GODWIT_HOST=", "GODWIT_TOKEN=", "PYTHONDONTWRITEBYTECODE=1"},
		py, "-m", "unittest", "discover", "-v", "-s", "tests", "-t", ".")
}

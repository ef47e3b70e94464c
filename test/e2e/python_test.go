package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/godwit-project/godwit/internal/testenv"
)

// runPython runs Debian's python3 with args in clients/python and returns
// its output; it fails the test when python exits non-zero.
func runPython(t *testing.T, env []string, args ...string) string {
	t.Helper()
	py := testenv.RequirePython(t)
	cmd := exec.Command(py, args...)
	cmd.Dir = filepath.Join(testenv.RepoRoot(), "clients", "python")
	// The client reads the CLI's variables: none may leak in from the
	// environment the tests run in.
	cmd.Env = append(os.Environ(), "GODWIT_HOST=", "GODWIT_TLS_DIR=", "GODWIT_TOKEN=", "GODWIT_OPENAPI=", "PYTHONDONTWRITEBYTECODE=1")
	cmd.Env = append(cmd.Env, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("python3 %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// The Python client's whole suite (clients/python/tests) against a real
// daemon with --listen: the drift check against its /openapi.json, the
// API calls, a test guest started, watched in the event stream, listed
// with stats, snapshotted, backed up twice and stopped, errors as
// exceptions, and TLS with a client certificate and with tokens.
func TestPythonClient(t *testing.T) {
	concurrent(t)
	g := Guest(t)
	addr := freeAddr(t)
	d := StartDaemon(t, "--listen", addr)
	out := runPython(t, []string{
		"GODWIT_SOCKET=" + d.Socket, "GODWIT_TEST_LIVE=1",
		"GODWIT_TEST_KERNEL=" + g.Kernel, "GODWIT_TEST_INITRD=" + g.Initrd,
		"GODWIT_TEST_TLS_URL=https://" + addr, "GODWIT_TEST_TLS_DIR=" + filepath.Join(d.Dir, "state", "tls"),
	}, "-m", "unittest", "discover", "-v", "-s", "tests", "-t", ".")
	t.Log(out)
	// Every test has what it needs here: a skip would hide a gap.
	if m := regexp.MustCompile(`(?m)^.* \.\.\. skipped .*$`).FindAllString(out, -1); len(m) > 0 {
		t.Errorf("Python tests skipped against a real daemon:\n%s", strings.Join(m, "\n"))
	}
	if !strings.Contains(out, "test_a_guest_through_its_life") || !strings.Contains(out, "test_tokens") {
		t.Errorf("the live and TLS tests did not run")
	}
}

// examples/book_recipes.py, the book's Python recipes against godwit, on
// two hosts: define and start, list with stats, snapshot, back up,
// migrate to the other host, stop there, delete.
func TestPythonBookRecipes(t *testing.T) {
	g := Guest(t)
	b := migrationBed(t, 2, false)
	src, dst := b.Hosts[0], b.Hosts[1]
	name := "e2e-py-book-" + uniq()
	out := runPython(t, nil, "examples/book_recipes.py", "--socket", src.Socket, "--kernel", g.Kernel, "--initrd", g.Initrd,
		"--name", name, "--dest-host", dst.Name, "--dest-socket", dst.Socket)
	t.Log(out)
	for _, want := range []string{
		"connected to " + src.Name,
		"defined and started " + name + ": running",
		"snapshot before-change of " + name,
		": full, ", ": incremental, ",
		"migrated " + name + " from " + src.Name + " to " + dst.Name + " (live)",
		name + " now runs on " + dst.Name + ": running",
		name + " is stopped",
		"as expected: ", "(status 404)",
		"deleted " + name,
		"all recipes done",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("book_recipes.py output lacks %q", want)
		}
	}
	for _, h := range b.Hosts {
		if vms, err := h.C.ListVMs(ctxT(t, 30*time.Second)); err != nil || len(vms) != 0 {
			t.Errorf("%s after the recipes: %d VMs, %v", h.Name, len(vms), err)
		}
	}
}

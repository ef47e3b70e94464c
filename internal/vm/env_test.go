package vm

import (
	"context"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/hypervisor"
	"github.com/godwit-project/godwit/internal/hypervisor/fake"
	"github.com/godwit-project/godwit/internal/image"
	"github.com/godwit-project/godwit/internal/ops"
	"github.com/godwit-project/godwit/internal/store"
	"github.com/godwit-project/godwit/internal/store/bolt"
)

const (
	testPool  = "godwit-test"
	testOwner = "daemon-under-test"
)

// fakeImages is an image.Inspector over a map of path -> facts; any other
// path does not exist.
type fakeImages map[string]image.Info

func (m fakeImages) Inspect(_ context.Context, path string) (image.Info, error) {
	if info, ok := m[path]; ok {
		return info, nil
	}
	return image.Info{}, &fs.PathError{Op: "stat", Path: path, Err: fs.ErrNotExist}
}

// Images the tests use.
const (
	imgOneGiB = "/images/one-gib.qcow2"
	imgRaw    = "/images/two-gib.raw"
)

// env is a Service on the fake hypervisor and a bolt store in a temp dir.
type env struct {
	t      *testing.T
	ctx    context.Context
	f      *fake.Fake
	st     store.Store
	ops    *ops.Manager
	svc    *Service
	kernel string
	initrd string
	dir    string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	st, err := bolt.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	om := ops.NewManager(st, log)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		om.Shutdown(ctx)
		st.Close()
	})
	f := fake.New()
	ctx := context.Background()
	if _, err := f.EnsurePool(ctx, hypervisor.Pool{Name: testPool, Path: filepath.Join(dir, "pool")}); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ctx: ctx, f: f, st: st, ops: om, dir: dir,
		kernel: filepath.Join(dir, "vmlinuz"), initrd: filepath.Join(dir, "initrd.gz")}
	for _, p := range []string{e.kernel, e.initrd} {
		if err := os.WriteFile(p, []byte("not really a kernel"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	images := fakeImages{
		imgOneGiB: {Format: "qcow2", VirtualSize: uint64(api.GiB)},
		imgRaw:    {Format: "raw", VirtualSize: uint64(2 * api.GiB)},
	}
	boot, err := image.NewBootFiles(filepath.Join(dir, "boot"))
	if err != nil {
		t.Fatal(err)
	}
	e.svc = New(f, st, om, images, Config{
		Pool: testPool, ConsoleDir: filepath.Join(dir, "console"), Owner: testOwner, Host: "testhost", SeedDir: filepath.Join(dir, "seeds"),
		VirtType:  func(context.Context) (string, error) { return "qemu", nil },
		BootFiles: boot,
	}, log)
	return e
}

// spec is a small valid spec: direct kernel boot and one blank 1 GiB disk.
func (e *env) spec(name string) api.VMSpec {
	return api.VMSpec{
		Name: name, CPUs: 1, Memory: 64 * api.MiB,
		Boot:  &api.Boot{Kernel: e.kernel, Initrd: e.initrd, Cmdline: "console=ttyS0"},
		Disks: []api.Disk{{Name: "root", Size: api.GiB}},
	}
}

// wait waits for an operation to end.
func (e *env) wait(op api.Operation) api.Operation {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, 20*time.Second)
	defer cancel()
	got, err := e.ops.Wait(ctx, op.ID)
	if err != nil {
		e.t.Fatalf("wait %s: %v", op.ID, err)
	}
	if !got.State.Final() {
		e.t.Fatalf("operation %s (%s) still %s after 20s", op.ID, op.Kind, got.State)
	}
	return got
}

// succeed waits for op and fails the test unless it succeeded.
func (e *env) succeed(op api.Operation, err error) api.Operation {
	e.t.Helper()
	if err != nil {
		e.t.Fatalf("starting the operation: %v", err)
	}
	got := e.wait(op)
	if got.State != api.OpSucceeded {
		e.t.Fatalf("operation %s %s ended %s: %s", got.Kind, got.Target, got.State, got.Error)
	}
	return got
}

// fail waits for op and fails the test unless it failed.
func (e *env) fail(op api.Operation, err error) api.Operation {
	e.t.Helper()
	if err != nil {
		e.t.Fatalf("starting the operation: %v", err)
	}
	got := e.wait(op)
	if got.State != api.OpFailed {
		e.t.Fatalf("operation %s %s ended %s, want failed", got.Kind, got.Target, got.State)
	}
	return got
}

// create makes a VM (and starts it when start is set).
func (e *env) create(spec api.VMSpec, start bool) {
	e.t.Helper()
	op, err := e.svc.Create(e.ctx, spec, CreateOptions{Start: start})
	e.succeed(op, err)
}

// state returns the VM's state as the service reports it.
func (e *env) state(name string) api.VMState {
	e.t.Helper()
	v, err := e.svc.Get(e.ctx, name)
	if err != nil {
		e.t.Fatalf("Get %s: %v", name, err)
	}
	return v.State
}

// domain returns the fake's domain.
func (e *env) domain(name string) hypervisor.Domain {
	e.t.Helper()
	d, err := e.f.Lookup(e.ctx, name)
	if err != nil {
		e.t.Fatalf("Lookup %s: %v", name, err)
	}
	return d
}

// volumes returns the names of the volumes in the test pool.
func (e *env) volumes() []string {
	var out []string
	for _, v := range e.f.Volumes(testPool) {
		out = append(out, v.Name)
	}
	return out
}

// defineForeign defines (and starts, if running) a domain godwit did not
// create.
func (e *env) defineForeign(name string, running bool) {
	e.t.Helper()
	if _, err := e.f.Define(e.ctx, "<domain type='qemu'><name>"+name+"</name></domain>"); err != nil {
		e.t.Fatal(err)
	}
	if running {
		if err := e.f.Start(e.ctx, name); err != nil {
			e.t.Fatal(err)
		}
	}
}

// wantStatus checks that err carries the HTTP status code and mentions
// every one of words.
func wantStatus(t *testing.T, what string, err error, code int, words ...string) {
	t.Helper()
	if api.Status(err) != code {
		t.Errorf("%s: got %v (status %d), want status %d", what, err, api.Status(err), code)
		return
	}
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: %q does not mention %q", what, err.Error(), w)
		}
	}
}

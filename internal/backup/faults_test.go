package backup

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/backup/repo"
	"github.com/godwit-project/godwit/internal/hypervisor"
	"github.com/godwit-project/godwit/internal/hypervisor/fake"
	"github.com/godwit-project/godwit/internal/image"
	"github.com/godwit-project/godwit/internal/ops"
	"github.com/godwit-project/godwit/internal/store"
	"github.com/godwit-project/godwit/internal/store/bolt"
	"github.com/godwit-project/godwit/internal/vm"
)

// A bed is a backup service on the fake hypervisor, its state in a bolt
// store and its repository in a temp dir, with a running VM web1 of two
// disks. It can "crash": the process's connection to libvirtd is killed
// (its goroutines freeze at their next libvirt call) and another service
// starts on the same store, repository and libvirtd.
type bed struct {
	t   *testing.T
	ctx context.Context
	dir string
	lv  *fake.Fake // the test's own connection to libvirtd
	st  store.Store
	log *slog.Logger
	// The running "daemon".
	f   *fake.Fake
	om  *ops.Manager
	svc *Service
	// want is what each committed backup must restore: disk -> bytes.
	want map[string]map[string][]byte
}

const bedPool = "p"

// noImages is an image.Inspector for VMs on blank volumes only.
type noImages struct{}

func (noImages) Inspect(context.Context, string) (image.Info, error) {
	return image.Info{}, fs.ErrNotExist
}

func newBed(t *testing.T) *bed {
	t.Helper()
	dir := t.TempDir()
	st, err := bolt.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	b := &bed{t: t, ctx: context.Background(), dir: dir, lv: fake.New(), st: st,
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), want: map[string]map[string][]byte{}}
	if _, err := b.lv.EnsurePool(b.ctx, hypervisor.Pool{Name: bedPool, Path: filepath.Join(dir, "pool")}); err != nil {
		t.Fatal(err)
	}
	kernel := filepath.Join(dir, "vmlinuz")
	if err := os.WriteFile(kernel, []byte("kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	b.start()
	op, err := b.svc.vms.Create(b.ctx, api.VMSpec{Name: "web1", CPUs: 1, Memory: 64 * api.MiB, Boot: &api.Boot{Kernel: kernel},
		Disks: []api.Disk{{Name: "root", Size: 16 * api.MiB}, {Name: "data", Size: 4 * api.MiB}}}, vm.CreateOptions{Start: true})
	if err != nil {
		t.Fatal(err)
	}
	if op, err = b.om.Wait(b.ctx, op.ID); err != nil || op.State != api.OpSucceeded {
		t.Fatalf("create web1: %s %s %v", op.State, op.Error, err)
	}
	b.write("root", 0, 8<<20)
	b.write("data", 1<<20, 1<<20)
	return b
}

// start runs a backup service on a new connection to the libvirtd.
func (b *bed) start() {
	b.f = b.lv.Connect()
	f := b.f
	b.om = ops.NewManager(b.st, b.log)
	if _, err := b.om.Recover(b.ctx); err != nil {
		b.t.Fatal(err)
	}
	om := b.om
	b.t.Cleanup(func() {
		f.Release()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		om.Shutdown(ctx)
	})
	vms := vm.New(f, b.st, b.om, noImages{}, vm.Config{Pool: bedPool, ConsoleDir: filepath.Join(b.dir, "console"), Owner: "o", Host: "h",
		VirtType: func(context.Context) (string, error) { return "qemu", nil }, SeedDir: filepath.Join(b.dir, "seeds")}, b.log)
	b.svc = New(f, vms, b.om, b.st, Config{Repo: filepath.Join(b.dir, "repo"), WorkDir: filepath.Join(b.dir, "work"), Host: "h",
		OpenDisk: func(ctx context.Context, socket, export string, contexts ...string) (DiskReader, error) {
			x, err := f.OpenExport(ctx, socket, export, contexts...)
			if err != nil {
				return nil, err
			}
			return x, nil
		}}, b.log)
}

// crash ends the running service as kill -9 would and starts another.
func (b *bed) crash() {
	b.f.Kill()
	b.start()
}

func (b *bed) repo() *repo.Repo {
	r, err := b.svc.Repo()
	if err != nil {
		b.t.Fatal(err)
	}
	return r
}

// write has the guest write n random bytes at off of a disk.
func (b *bed) write(disk string, off, n uint64) {
	buf := make([]byte, n)
	_, _ = rand.Read(buf)
	if err := b.lv.WriteVolume(bedPool, vm.VolumeName("web1", disk), off, buf); err != nil {
		b.t.Fatal(err)
	}
}

// disks is what the VM's disks hold now.
func (b *bed) disks() map[string][]byte {
	return map[string][]byte{
		"root": b.lv.VolumeData(bedPool, vm.VolumeName("web1", "root")),
		"data": b.lv.VolumeData(bedPool, vm.VolumeName("web1", "data")),
	}
}

// start begins a backup (the disks as they are now) and returns its
// operation.
func (b *bed) begin(full bool) (api.Operation, map[string][]byte) {
	b.t.Helper()
	now := b.disks()
	op, err := b.svc.Create(b.ctx, "web1", CreateOptions{Full: full})
	if err != nil {
		b.t.Fatal(err)
	}
	return op, now
}

// backup backs the VM up and returns the operation as it ended; a
// backup that succeeds must restore what the disks held.
func (b *bed) backup(full bool) api.Operation {
	b.t.Helper()
	op, now := b.begin(full)
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	final, err := b.om.Wait(ctx, op.ID)
	if final.ID == "" {
		b.t.Fatalf("wait for the backup: %v", err)
	}
	if final.State == api.OpSucceeded {
		var got api.Backup
		if err := decodeResult(final, &got); err != nil {
			b.t.Fatal(err)
		}
		b.want[got.ID] = now
	}
	return final
}

func decodeResult(op api.Operation, v any) error {
	return json.Unmarshal(op.Result, v)
}

// consistent checks the repository (repoConsistent), and that no backup
// job and no work files are left.
func (b *bed) consistent() {
	b.t.Helper()
	b.repoConsistent()
	if active, _, err := b.lv.ActiveJob(b.ctx, "web1"); err != nil || active {
		b.t.Errorf("a job is left on web1 (%v)", err)
	}
	if left, _ := os.ReadDir(filepath.Join(b.dir, "work")); len(left) > 0 {
		b.t.Errorf("work files left: %v", left)
	}
}

// repoConsistent checks the repository: it verifies, it holds exactly the
// backups that succeeded, and each restores the bytes its disks had.
func (b *bed) repoConsistent() {
	b.t.Helper()
	r := b.repo()
	ms, err := r.List()
	if err != nil {
		b.t.Fatal(err)
	}
	var ids, want []string
	for _, m := range ms {
		ids = append(ids, m.ID)
	}
	for id := range b.want {
		want = append(want, id)
	}
	slices.Sort(ids)
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		b.t.Fatalf("the repository holds backups %v, want %v", ids, want)
	}
	rep, err := r.Verify(b.ctx, nil, nil)
	if err != nil || !rep.OK() || rep.Backups != len(want) {
		b.t.Fatalf("verify: %+v, %v", rep, err)
	}
	for _, m := range ms {
		for _, d := range m.Disks {
			got := restoreBytes(b.t, r, d)
			exp := make([]byte, d.Size)
			copy(exp, b.want[m.ID][d.Name])
			if !bytes.Equal(got, exp) {
				b.t.Errorf("backup %s, disk %s does not restore what the disk held", m.ID, d.Name)
			}
		}
	}
}

// restoreBytes reads a backed-up disk back from the repository, chunk by
// chunk, as restore does before it writes them to a volume.
func restoreBytes(t *testing.T, r *repo.Repo, d repo.Disk) []byte {
	t.Helper()
	idx, err := r.ReadIndex(d)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, d.Size)
	for i, h := range idx {
		off := i * d.ChunkSize
		if err := r.GetChunk(h, out[off:off+repo.ChunkLen(i, d.ChunkSize, d.Size)]); err != nil {
			t.Fatalf("disk %s, chunk %d: %v", d.Name, i, err)
		}
	}
	return out
}

func (b *bed) succeeds(op api.Operation) {
	b.t.Helper()
	if op.State != api.OpSucceeded {
		b.t.Fatalf("backup %s: %s", op.State, op.Error)
	}
}

func (b *bed) fails(op api.Operation, words ...string) {
	b.t.Helper()
	if op.State != api.OpFailed {
		b.t.Fatalf("backup %s (%s), want failed", op.State, op.Error)
	}
	for _, w := range words {
		if !strings.Contains(op.Error, w) {
			b.t.Errorf("the backup's error %q does not say %q", op.Error, w)
		}
	}
}

// A backup that fails halfway leaves the repository as it was: every
// earlier backup verifies and restores, the failed one is not there, and
// the next backup works.
func TestBackupFailsCleanly(t *testing.T) {
	for _, c := range []struct {
		name  string
		fault func(b *bed) (heal func())
		words []string
	}{
		{"NBD read error halfway", func(b *bed) func() {
			b.lv.Inject(fake.Fault{Method: "ReadExport", Name: "vda", Bytes: 4 << 20})
			return func() {}
		}, []string{"disk root", "injected failure"}},
		{"pack write fails", func(b *bed) func() {
			var once sync.Once
			b.repo().BeforeWrite(func(kind, path string) error {
				var err error
				if kind == "pack" {
					once.Do(func() { err = fmt.Errorf("write %s: %w", path, syscall.EIO) })
				}
				return err
			})
			return func() { b.repo().BeforeWrite(nil) }
		}, []string{"write pack", "input/output error"}},
		{"disk full", func(b *bed) func() {
			b.repo().BeforeWrite(func(kind, path string) error { return fmt.Errorf("write %s: %w", path, syscall.ENOSPC) })
			return func() { b.repo().BeforeWrite(nil) }
		}, []string{"no space left on device"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := newBed(t)
			b.succeeds(b.backup(false))
			b.write("root", 2<<20, 1<<20)
			heal := c.fault(b)
			b.fails(b.backup(true), c.words...)
			b.consistent()
			heal()
			b.write("data", 0, 4096)
			b.succeeds(b.backup(false))
			b.consistent()
		})
	}
}

// A backup cut by a crash: before its manifest is committed it is not
// there; after, it is whole, and the next one builds on it. Cut while it
// reads, its backup job is left running. Either way the next backup
// works and leaves nothing of the cut one: no job, checkpoint or work
// file.
func TestBackupCrash(t *testing.T) {
	for _, c := range []struct {
		name      string
		committed bool // the cut backup is whole
		jobLeft   bool // its backup job runs on
		freeze    func(b *bed, reached func())
	}{
		{"before the manifest commit", false, false, func(b *bed, reached func()) {
			block := make(chan struct{})
			b.t.Cleanup(func() { close(block) })
			b.repo().BeforeWrite(func(kind, _ string) error {
				if kind == "manifest" {
					reached()
					<-block
					return errors.New("the process is gone")
				}
				return nil
			})
		}},
		{"after the manifest commit", true, false, func(b *bed, reached func()) {
			// The next libvirt call after the commit lists checkpoints.
			b.lv.Inject(fake.Fault{Method: "Checkpoints", After: 1, Action: fake.Hang})
			go func() {
				for len(b.manifests()) < 2 {
					time.Sleep(time.Millisecond)
				}
				reached()
			}()
		}},
		{"while reading", false, true, func(b *bed, reached func()) {
			b.lv.Inject(fake.Fault{Method: "ReadExport", Name: "vda", Bytes: 512 << 10, Action: fake.Hang})
			before := countCalls(b.lv, "ReadExport vda")
			go func() {
				for countCalls(b.lv, "ReadExport vda") == before {
					time.Sleep(time.Millisecond)
				}
				reached()
			}()
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := newBed(t)
			b.succeeds(b.backup(false))
			b.write("root", 2<<20, 1<<20)
			reached := make(chan struct{})
			var once sync.Once
			c.freeze(b, func() { once.Do(func() { close(reached) }) })
			op, now := b.begin(false)
			select {
			case <-reached:
			case <-time.After(10 * time.Second):
				t.Fatal("the backup never reached the crash")
			}
			b.crash()
			if c.committed {
				b.want[b.manifests()[1]] = now
			}
			if got, err := b.om.Get(b.ctx, op.ID); err != nil || got.State != api.OpFailed || !strings.Contains(got.Error, "interrupted") {
				t.Errorf("the cut backup's operation: %+v, %v; want it failed as interrupted", got, err)
			}
			b.lv.ClearFaults()
			if active, backup, _ := b.lv.ActiveJob(b.ctx, "web1"); c.jobLeft != (active && backup) {
				t.Fatalf("after the crash a backup job runs: %t, want %t", active && backup, c.jobLeft)
			}
			// What the dead process left is the next backup's to clear.
			b.repoConsistent()
			b.write("data", 0, 4096)
			next := b.backup(false)
			b.succeeds(next)
			b.consistent()
			var got api.Backup
			if err := decodeResult(next, &got); err != nil {
				t.Fatal(err)
			}
			if c.committed && got.Parent != b.manifests()[1] {
				t.Errorf("the next backup's parent is %q, want the committed one", got.Parent)
			}
			cps, err := b.lv.Checkpoints(b.ctx, "web1")
			if err != nil || len(cps) != 1 {
				t.Errorf("checkpoints after the next backup: %+v, %v; want only its own", cps, err)
			}
		})
	}
}

// manifests lists the committed backups' ids, oldest first.
func (b *bed) manifests() []string {
	ms, err := b.repo().List()
	if err != nil {
		b.t.Fatal(err)
	}
	var out []string
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

func countCalls(f *fake.Fake, call string) int {
	n := 0
	for _, c := range f.Calls() {
		if c == call {
			n++
		}
	}
	return n
}

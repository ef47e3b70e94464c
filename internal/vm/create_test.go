package vm

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/hypervisor"
	"github.com/godwit-project/godwit/internal/hypervisor/fake"
)

// A create that fails at any step leaves nothing: no domain, no volume, no
// record, no console log, and an operation that failed saying where.
func TestFailedCreateLeavesNothing(t *testing.T) {
	cases := []struct {
		step   string
		fault  fake.Fault
		opts   CreateOptions
		auto   bool
		saying string // the operation's error mentions this
		code   int    // and carries this status
	}{
		{"second disk", fake.Fault{Method: "CreateVolume", Name: "web1-data.qcow2"}, CreateOptions{}, false, "create disk data of vm web1: CreateVolume godwit-test/web1-data.qcow2: injected failure", 500},
		{"define", fake.Fault{Method: "Define"}, CreateOptions{}, false, "define vm web1: Define web1: injected failure", 500},
		{"autostart", fake.Fault{Method: "SetAutostart"}, CreateOptions{}, true, "set autostart of vm web1: SetAutostart web1: injected failure", 500},
		{"start", fake.Fault{Method: "Start"}, CreateOptions{Start: true}, false, "start vm web1: Start web1: injected failure", 500},
		{"libvirt lost at start", fake.Fault{Method: "Start", Err: fmt.Errorf("lost the connection: %w", hypervisor.ErrUnavailable)},
			CreateOptions{Start: true}, false, "start vm web1: lost the connection", 503},
	}
	for _, c := range cases {
		t.Run(c.step, func(t *testing.T) {
			e := newEnv(t)
			spec := e.spec("web1")
			spec.Disks = append(spec.Disks, api.Disk{Name: "data", Size: 2 * api.GiB})
			spec.Autostart = c.auto
			// A console log, as QEMU may have begun it: a create that
			// got as far as the domain removes it when it fails.
			log := filepath.Join(e.dir, "console", "web1.log")
			if err := os.MkdirAll(filepath.Dir(log), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(log, []byte("old boot\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			e.f.Inject(c.fault)
			op := e.fail(e.svc.Create(e.ctx, spec, c.opts))
			wantStatus(t, "failed create", op.Err(), c.code, c.saying)
			if names := e.f.DomainNames(); len(names) != 0 {
				t.Errorf("domains left: %v", names)
			}
			if vols := e.volumes(); len(vols) != 0 {
				t.Errorf("volumes left: %v", vols)
			}
			if _, err := e.svc.getRecord(e.ctx, "web1"); api.Status(err) != 404 {
				t.Errorf("record left: %v", err)
			}
			if _, err := e.svc.Get(e.ctx, "web1"); api.Status(err) != 404 {
				t.Errorf("Get after a failed create: %v, want 404", err)
			}
			if _, err := os.Stat(log); c.step != "second disk" && !os.IsNotExist(err) {
				t.Errorf("console log left: %v", err)
			}
			// Nothing stands in the way of trying again.
			e.create(spec, c.opts.Start)
		})
	}
}

// A create that succeeds made what the spec asks for.
func TestCreateMakesDiskAndDomain(t *testing.T) {
	e := newEnv(t)
	spec := e.spec("web1")
	spec.Disks = append(spec.Disks, api.Disk{Name: "data", Size: 2 * api.GiB})
	spec.Autostart = true
	e.create(spec, true)
	if vols := e.volumes(); !slices.Equal(vols, []string{"web1-data.qcow2", "web1-root.qcow2"}) {
		t.Fatalf("volumes = %v", vols)
	}
	d := e.domain("web1")
	if !d.Autostart || d.State != hypervisor.StateRunning || !d.Persistent {
		t.Fatalf("domain = %+v", d)
	}
	v, err := e.svc.Get(e.ctx, "web1")
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Disks) != 2 || v.Disks[1].Target != "vdb" || v.Disks[1].Size != 2*api.GiB || v.Disks[1].Path == "" {
		t.Fatalf("disks = %+v", v.Disks)
	}
	if v.ConsoleLog != filepath.Join(e.dir, "console", "web1.log") {
		t.Fatalf("console log = %q", v.ConsoleLog)
	}
}

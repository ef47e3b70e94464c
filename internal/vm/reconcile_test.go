package vm

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/domainxml"
	"github.com/godwit-project/godwit/internal/hypervisor"
	"github.com/godwit-project/godwit/internal/store"
)

// crashed leaves what a daemon that died mid-way would: a record in
// status, the record's volumes, and (when withDomain) its domain, defined
// by this daemon and running when running is set.
func (e *env) crashed(name, status string, withDomain, running bool) record {
	e.t.Helper()
	spec := e.spec(name)
	spec.Disks = append(spec.Disks, api.Disk{Name: "data", Size: api.GiB})
	rec := record{Name: name, UUID: newUUID(), Spec: spec, Status: status, CreatedAt: time.Now().UTC()}
	for i, d := range spec.Disks {
		vd := api.VMDisk{Name: d.Name, Target: diskTarget(i), Pool: testPool, Volume: volumeName(name, d.Name), Size: d.Size}
		info, err := e.f.CreateVolume(e.ctx, testPool, hypervisor.Volume{Name: vd.Volume, Capacity: uint64(d.Size), Format: "qcow2"})
		if err != nil {
			e.t.Fatal(err)
		}
		vd.Path = info.Path
		rec.Disks = append(rec.Disks, vd)
	}
	if withDomain {
		xml, err := e.svc.domainXML(rec, "qemu")
		if err != nil {
			e.t.Fatal(err)
		}
		if _, err := e.f.Define(e.ctx, xml); err != nil {
			e.t.Fatal(err)
		}
		if running {
			if err := e.f.Start(e.ctx, name); err != nil {
				e.t.Fatal(err)
			}
		}
	}
	if err := store.PutJSON(e.ctx, e.st, bucket, name, rec); err != nil {
		e.t.Fatal(err)
	}
	return rec
}

func (e *env) hasVolumesOf(name string) bool {
	for _, v := range e.volumes() {
		if strings.HasPrefix(v, name+"-") {
			return true
		}
	}
	return false
}

func (e *env) hasRecord(name string) bool {
	_, err := e.svc.getRecord(e.ctx, name)
	return err == nil
}

func TestReconcile(t *testing.T) {
	e := newEnv(t)
	e.create(e.spec("ready"), true)
	e.crashed("half", statusCreating, false, false)       // died before defining
	e.crashed("defined", statusCreating, true, false)     // died after defining
	e.crashed("booted", statusCreating, true, true)       // died while starting
	e.crashed("leaving", statusDeleting, true, true)      // died while deleting
	e.crashed("gone", statusDeleting, false, false)       // died after undefining
	e.crashed("stolen", statusCreating, false, false)     // a foreign domain took the name
	e.crashed("stolen-del", statusDeleting, false, false) // same, while deleting
	e.crashed("twin", statusCreating, false, false)       // another daemon's domain took it
	e.defineForeign("stolen", true)
	e.defineForeign("stolen-del", true)
	e.defineForeign("bystander", true)
	// Daemons side by side share libvirtd: a domain another one defined.
	twin := e.spec("twin")
	xml, err := domainxml.Marshal(domainxml.Input{Spec: twin, UUID: newUUID(), VirtType: "qemu", Owner: "another-daemon"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.f.Define(e.ctx, xml); err != nil {
		t.Fatal(err)
	}
	if st := e.state("half"); st != api.VMCreating {
		t.Fatalf("a record left creating shows as %s", st)
	}
	if st := e.state("leaving"); st != api.VMDeleting {
		t.Fatalf("a record left deleting shows as %s", st)
	}
	_, err = e.svc.Start(e.ctx, "defined")
	wantStatus(t, "start of a half-created VM", err, 409, "being created")

	if err := e.svc.Reconcile(e.ctx); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"half", "defined", "booted", "leaving", "gone", "stolen", "stolen-del", "twin"} {
		if e.hasRecord(name) {
			t.Errorf("%s: record left after reconcile", name)
		}
	}
	for _, name := range []string{"half", "defined", "booted", "leaving", "gone"} {
		if e.hasVolumesOf(name) {
			t.Errorf("%s: volumes left after reconcile: %v", name, e.volumes())
		}
		if slices.Contains(e.f.DomainNames(), name) {
			t.Errorf("%s: domain left after reconcile", name)
		}
	}
	// Domains godwit did not define are never touched, whatever the record says.
	for _, name := range []string{"stolen", "stolen-del", "bystander", "twin"} {
		d, err := e.f.Lookup(e.ctx, name)
		if err != nil || d.State.Active() != (name != "twin") || !d.Persistent {
			t.Errorf("foreign domain %s after reconcile: %+v, %v", name, d, err)
		}
	}
	for _, c := range e.f.Calls() {
		for _, name := range []string{"stolen", "stolen-del", "bystander", "twin"} {
			if c == "Destroy "+name || c == "Undefine "+name {
				t.Errorf("reconcile called %q on a domain godwit did not create", c)
			}
		}
	}
	// A ready VM is left as it is.
	if st := e.state("ready"); st != api.VMRunning || !e.hasVolumesOf("ready") {
		t.Errorf("ready VM after reconcile: %s, volumes %v", st, e.volumes())
	}
	// Reconcile is idempotent.
	if err := e.svc.Reconcile(e.ctx); err != nil {
		t.Fatalf("second reconcile: %v", err)
	}
}

// A delete cut off with --keep-disks finishes keeping them.
func TestReconcileKeepsDisksWhenAsked(t *testing.T) {
	e := newEnv(t)
	rec := e.crashed("web1", statusDeleting, true, false)
	rec.KeepDisks = true
	if err := store.PutJSON(e.ctx, e.st, bucket, rec.Name, rec); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Reconcile(e.ctx); err != nil {
		t.Fatal(err)
	}
	if e.hasRecord("web1") || slices.Contains(e.f.DomainNames(), "web1") {
		t.Fatal("the delete was not finished")
	}
	if vols := e.volumes(); len(vols) != 2 {
		t.Fatalf("volumes after a keep-disks delete: %v", vols)
	}
}

// Reconcile while libvirt is down fails (the daemon retries later) and
// removes nothing.
func TestReconcileWithLibvirtDown(t *testing.T) {
	e := newEnv(t)
	e.crashed("web1", statusCreating, true, false)
	e.f.SetDown(true)
	if err := e.svc.Reconcile(e.ctx); err == nil {
		t.Fatal("reconcile with libvirt down succeeded")
	}
	e.f.SetDown(false)
	if !e.hasRecord("web1") || !e.hasVolumesOf("web1") {
		t.Fatal("a failed reconcile removed the record or volumes")
	}
	if err := e.svc.Reconcile(e.ctx); err != nil {
		t.Fatal(err)
	}
	if e.hasRecord("web1") || e.hasVolumesOf("web1") || len(e.f.DomainNames()) != 0 {
		t.Fatal("reconcile after libvirt came back did not roll back")
	}
}

// Deleting a VM whose domain was replaced, outside godwit, by another of
// the same name removes the VM's disks and record but not that domain.
func TestDeleteLeavesAForeignDomainAlone(t *testing.T) {
	e := newEnv(t)
	e.create(e.spec("web1"), false)
	if err := e.f.Undefine(e.ctx, "web1"); err != nil {
		t.Fatal(err)
	}
	e.defineForeign("web1", false)
	e.succeed(e.svc.Delete(e.ctx, "web1", DeleteOptions{Force: true}))
	if e.hasRecord("web1") || e.hasVolumesOf("web1") {
		t.Fatalf("record or volumes left: %v", e.volumes())
	}
	if _, err := e.f.Lookup(e.ctx, "web1"); err != nil {
		t.Fatalf("the foreign domain was removed: %v", err)
	}
}

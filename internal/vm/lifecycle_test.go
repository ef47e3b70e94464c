package vm

import (
	"slices"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/hypervisor"
	"github.com/godwit-project/godwit/internal/hypervisor/fake"
)

func TestLifecycle(t *testing.T) {
	e := newEnv(t)
	spec := e.spec("web1")
	spec.Labels = map[string]string{"app": "web"}
	e.create(spec, false)
	if st := e.state("web1"); st != api.VMStopped {
		t.Fatalf("created VM is %s", st)
	}
	v, _ := e.svc.Get(e.ctx, "web1")
	if !v.Managed || v.Spec == nil || v.Spec.Labels["app"] != "web" || len(v.Disks) != 1 || v.Disks[0].Target != "vda" {
		t.Fatalf("created VM = %+v", v)
	}
	if d := e.domain("web1"); d.UUID != v.UUID {
		t.Fatalf("domain UUID %s, record UUID %s", d.UUID, v.UUID)
	}

	e.succeed(e.svc.Start(e.ctx, "web1"))
	if st := e.state("web1"); st != api.VMRunning {
		t.Fatalf("after start: %s", st)
	}
	if v, err := e.svc.Pause(e.ctx, "web1"); err != nil || v.State != api.VMPaused {
		t.Fatalf("Pause = %s, %v", v.State, err)
	}
	if v, err := e.svc.Resume(e.ctx, "web1"); err != nil || v.State != api.VMRunning {
		t.Fatalf("Resume = %s, %v", v.State, err)
	}
	e.succeed(e.svc.Reboot(e.ctx, "web1"))
	if !slices.Contains(e.f.Calls(), "Reboot web1") {
		t.Fatal("reboot did not reach the hypervisor")
	}
	if v, err := e.svc.Kill(e.ctx, "web1"); err != nil || v.State != api.VMStopped {
		t.Fatalf("Kill = %s, %v", v.State, err)
	}

	// Delete with --keep-disks keeps the volume, otherwise it goes too.
	e.succeed(e.svc.Delete(e.ctx, "web1", DeleteOptions{KeepDisks: true}))
	if _, err := e.svc.Get(e.ctx, "web1"); api.Status(err) != 404 {
		t.Fatalf("Get after delete: %v, want 404", err)
	}
	if vols := e.volumes(); !slices.Equal(vols, []string{"web1-root.qcow2"}) {
		t.Fatalf("volumes after delete --keep-disks: %v", vols)
	}
	// The kept volume blocks a new VM of that name, with a reason.
	_, err := e.svc.Create(e.ctx, e.spec("web1"), CreateOptions{})
	wantStatus(t, "create over a kept volume", err, 409, "web1-root.qcow2")

	e.create(e.spec("web2"), true)
	e.succeed(e.svc.Delete(e.ctx, "web2", DeleteOptions{Force: true}))
	if names := e.f.DomainNames(); len(names) != 0 {
		t.Fatalf("domains after delete: %v", names)
	}
	if vols := e.volumes(); slices.Contains(vols, "web2-root.qcow2") {
		t.Fatalf("volumes after delete: %v", vols)
	}
}

func TestConflictsAndNotFound(t *testing.T) {
	e := newEnv(t)
	e.create(e.spec("web1"), false)
	e.defineForeign("foreign", true)
	setupCalls := len(e.f.Calls())

	_, err := e.svc.Create(e.ctx, e.spec("web1"), CreateOptions{})
	wantStatus(t, "duplicate name", err, 409, "name: vm web1 already exists")
	_, err = e.svc.Create(e.ctx, e.spec("foreign"), CreateOptions{})
	wantStatus(t, "name of an unmanaged domain", err, 409, "name: a libvirt domain named foreign")
	_, err = e.svc.Apply(e.ctx, e.spec("foreign"), ApplyOptions{})
	wantStatus(t, "apply on an unmanaged domain", err, 409, "foreign")

	actions := map[string]func(name string) error{
		"start":  func(n string) error { _, err := e.svc.Start(e.ctx, n); return err },
		"stop":   func(n string) error { _, err := e.svc.Stop(e.ctx, n, StopOptions{}); return err },
		"reboot": func(n string) error { _, err := e.svc.Reboot(e.ctx, n); return err },
		"kill":   func(n string) error { _, err := e.svc.Kill(e.ctx, n); return err },
		"pause":  func(n string) error { _, err := e.svc.Pause(e.ctx, n); return err },
		"resume": func(n string) error { _, err := e.svc.Resume(e.ctx, n); return err },
		"delete": func(n string) error { _, err := e.svc.Delete(e.ctx, n, DeleteOptions{Force: true}); return err },
	}
	for what, act := range actions {
		wantStatus(t, what+" of an unknown VM", act("nope"), 404, "nope")
		wantStatus(t, what+" of an unmanaged domain", act("foreign"), 409, "foreign", "did not create")
	}
	if _, err := e.svc.Get(e.ctx, "nope"); api.Status(err) != 404 {
		t.Errorf("Get unknown: %v, want 404", err)
	}
	if _, err := e.svc.ConsoleLog(e.ctx, "nope"); api.Status(err) != 404 {
		t.Errorf("console of unknown: %v, want 404", err)
	}
	if _, err := e.svc.ConsoleLog(e.ctx, "foreign"); api.Status(err) != 409 {
		t.Errorf("console of unmanaged: %v, want 409", err)
	}
	// The unmanaged domain was listed but never touched.
	if d := e.domain("foreign"); d.State != hypervisor.StateRunning {
		t.Fatalf("foreign domain is %s", d.State)
	}
	for _, c := range e.f.Calls()[setupCalls:] {
		switch c {
		case "Start foreign", "Destroy foreign", "Shutdown foreign", "Suspend foreign", "Resume foreign", "Reboot foreign", "Undefine foreign":
			t.Errorf("godwit called %q on a domain it did not create", c)
		}
	}
	list, err := e.svc.List(e.ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("List = %+v, %v", list, err)
	}
	for _, v := range list {
		if v.Managed != (v.Name == "web1") {
			t.Errorf("%s: managed = %t", v.Name, v.Managed)
		}
	}
}

func TestWrongState(t *testing.T) {
	e := newEnv(t)
	e.create(e.spec("up"), true)
	e.create(e.spec("down"), false)
	e.create(e.spec("paused"), true)
	if _, err := e.svc.Pause(e.ctx, "paused"); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.Start(e.ctx, "up")
	wantStatus(t, "start running", err, 409, "up", "running")
	_, err = e.svc.Start(e.ctx, "paused")
	wantStatus(t, "start paused", err, 409, "paused", "resume")
	_, err = e.svc.Pause(e.ctx, "paused")
	wantStatus(t, "pause paused", err, 409, "already paused")
	_, err = e.svc.Resume(e.ctx, "up")
	wantStatus(t, "resume running", err, 409, "not paused")
	_, err = e.svc.Stop(e.ctx, "down", StopOptions{})
	wantStatus(t, "stop stopped", err, 409, "not running")
	_, err = e.svc.Kill(e.ctx, "down")
	wantStatus(t, "kill stopped", err, 409, "not running")
	_, err = e.svc.Reboot(e.ctx, "down")
	wantStatus(t, "reboot stopped", err, 409, "stopped")
	_, err = e.svc.Delete(e.ctx, "up", DeleteOptions{})
	wantStatus(t, "delete running", err, 409, "--force")
	_, err = e.svc.Delete(e.ctx, "paused", DeleteOptions{})
	wantStatus(t, "delete paused", err, 409, "--force")
	// None of the refusals changed anything, nor left the VM locked.
	for name, want := range map[string]api.VMState{"up": api.VMRunning, "down": api.VMStopped, "paused": api.VMPaused} {
		if st := e.state(name); st != want {
			t.Errorf("%s is %s, want %s", name, st, want)
		}
	}
	e.succeed(e.svc.Start(e.ctx, "down"))
}

// A VM whose domain was undefined behind godwit's back is "missing", and
// actions on it say so instead of failing obscurely.
func TestMissingDomain(t *testing.T) {
	e := newEnv(t)
	e.create(e.spec("web1"), false)
	if err := e.f.Undefine(e.ctx, "web1"); err != nil {
		t.Fatal(err)
	}
	if st := e.state("web1"); st != api.VMMissing {
		t.Fatalf("state = %s, want missing", st)
	}
	_, err := e.svc.Start(e.ctx, "web1")
	wantStatus(t, "start without domain", err, 409, "no libvirt domain")
	e.succeed(e.svc.Delete(e.ctx, "web1", DeleteOptions{}))
	if vols := e.volumes(); len(vols) != 0 {
		t.Fatalf("volumes left: %v", vols)
	}
}

func TestConcurrentActionsConflict(t *testing.T) {
	e := newEnv(t)
	e.create(e.spec("web1"), true)
	e.f.SetGuest("web1", fake.Guest{IgnoreACPI: true})
	stop, err := e.svc.Stop(e.ctx, "web1", StopOptions{Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for what, act := range map[string]func() error{
		"start":  func() error { _, err := e.svc.Start(e.ctx, "web1"); return err },
		"stop":   func() error { _, err := e.svc.Stop(e.ctx, "web1", StopOptions{Force: true}); return err },
		"pause":  func() error { _, err := e.svc.Pause(e.ctx, "web1"); return err },
		"delete": func() error { _, err := e.svc.Delete(e.ctx, "web1", DeleteOptions{Force: true}); return err },
		"apply": func() error {
			s := e.spec("web1")
			s.Autostart = true
			_, err := e.svc.Apply(e.ctx, s, ApplyOptions{})
			return err
		},
	} {
		wantStatus(t, what+" during a stop", act(), 409, "busy", stop.ID, "vm.stop")
	}
	if _, err := e.ops.Cancel(e.ctx, stop.ID); err != nil {
		t.Fatal(err)
	}
	if got := e.wait(stop); got.State != api.OpCancelled {
		t.Fatalf("cancelled stop ended %s: %s", got.State, got.Error)
	}
	// The lock is released once the operation ends.
	e.succeed(e.svc.Stop(e.ctx, "web1", StopOptions{Force: true}))
}

// Operations must release the VM when they end, however fast they are:
// the next action may not find it "busy" with an operation that already
// ended. An apply that fails at its first libvirt call ends in
// microseconds, racing the code that labels the lock with its id.
func TestFastOperationsReleaseTheVM(t *testing.T) {
	e := newEnv(t)
	e.create(e.spec("web1"), false)
	spec := e.spec("web1")
	spec.CPUs = 2
	for i := 0; i < 2000; i++ {
		e.f.FailNext("XML", nil)
		op, err := e.svc.Apply(e.ctx, spec, ApplyOptions{})
		if err != nil {
			t.Fatalf("round %d: apply: %v", i, err)
		}
		if got := e.wait(op); got.State != api.OpFailed {
			t.Fatalf("round %d: apply ended %s despite the injected failure", i, got.State)
		}
	}
	e.succeed(e.svc.Apply(e.ctx, spec, ApplyOptions{}))
}

func TestStop(t *testing.T) {
	e := newEnv(t)

	t.Run("graceful waits for the guest", func(t *testing.T) {
		e.create(e.spec("slow"), true)
		e.f.SetGuest("slow", fake.Guest{ShutdownDelay: 700 * time.Millisecond})
		began := time.Now()
		op := e.succeed(e.svc.Stop(e.ctx, "slow", StopOptions{Timeout: 10 * time.Second}))
		if took := time.Since(began); took < 700*time.Millisecond {
			t.Fatalf("stop %s ended after %s, before the guest powered off", op.ID, took)
		}
		d := e.domain("slow")
		if d.State != hypervisor.StateShutoff || d.Reason != "shut down" {
			t.Fatalf("after stop: %s (%s), want shut off by the guest", d.State, d.Reason)
		}
	})

	t.Run("guest ignoring ACPI times out", func(t *testing.T) {
		e.create(e.spec("stubborn"), true)
		e.f.SetGuest("stubborn", fake.Guest{IgnoreACPI: true})
		op := e.fail(e.svc.Stop(e.ctx, "stubborn", StopOptions{Timeout: 600 * time.Millisecond}))
		if op.ErrorCode != 504 {
			t.Errorf("error code %d, want 504", op.ErrorCode)
		}
		wantStatus(t, "stop timeout", op.Err(), 504, "did not shut down", "--force")
		if st := e.state("stubborn"); st != api.VMRunning {
			t.Fatalf("after a timed-out stop: %s, want still running", st)
		}
	})

	t.Run("force destroys", func(t *testing.T) {
		e.succeed(e.svc.Stop(e.ctx, "stubborn", StopOptions{Force: true}))
		d := e.domain("stubborn")
		if d.State != hypervisor.StateShutoff || d.Reason != "destroyed" {
			t.Fatalf("after stop --force: %s (%s), want destroyed", d.State, d.Reason)
		}
	})

	t.Run("paused VM is resumed to see the button", func(t *testing.T) {
		e.create(e.spec("sleepy"), true)
		if _, err := e.svc.Pause(e.ctx, "sleepy"); err != nil {
			t.Fatal(err)
		}
		e.succeed(e.svc.Stop(e.ctx, "sleepy", StopOptions{Timeout: 5 * time.Second}))
		if st := e.state("sleepy"); st != api.VMStopped {
			t.Fatalf("paused VM after stop: %s", st)
		}
	})
}

// With libvirt down, an action on a name godwit does not know may concern a
// foreign domain: the answer is 503, not 404.
func TestUnknownNameWhileLibvirtDown(t *testing.T) {
	e := newEnv(t)
	e.f.SetDown(true)
	_, err := e.svc.Start(e.ctx, "nope")
	wantStatus(t, "start", err, 503)
	_, err = e.svc.Delete(e.ctx, "nope", DeleteOptions{})
	wantStatus(t, "delete", err, 503)
}

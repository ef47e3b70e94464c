package vm

import (
	"strings"
	"testing"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/hypervisor"
)

// HoldSettled holds a running or stopped VM, refuses a crashed one with a
// 409 that says the verb, and lets go of the VM when it refuses.
func TestHoldSettled(t *testing.T) {
	e := newEnv(t)
	e.create(e.spec("web1"), true)
	v, release, err := e.svc.HoldSettled(e.ctx, "web1", "backup.create", "back up")
	if err != nil || v.State != api.VMRunning {
		t.Fatalf("hold a running VM: %v, %v", v.State, err)
	}
	if _, _, err := e.svc.Hold(e.ctx, "web1", "snapshot.create"); api.Status(err) != 409 || !strings.Contains(err.Error(), "backup.create") {
		t.Fatalf("a second hold while held: %v, want a 409 naming the holder", err)
	}
	release()

	if err := e.f.SetState("web1", hypervisor.StateCrashed, "panicked"); err != nil {
		t.Fatal(err)
	}
	_, _, err = e.svc.HoldSettled(e.ctx, "web1", "snapshot.revert", "revert")
	if api.Status(err) != 409 || err.Error() != "vm web1 is crashed; revert a running, paused or stopped VM" {
		t.Fatalf("hold a crashed VM: %v (status %d)", err, api.Status(err))
	}
	if _, release, err := e.svc.Hold(e.ctx, "web1", "snapshot.delete"); err != nil {
		t.Fatalf("the refused hold kept the VM: %v", err)
	} else {
		release()
	}
}

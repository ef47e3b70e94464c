package daemon

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
	"github.com/godwit-project/godwit/internal/hypervisor"
	"github.com/godwit-project/godwit/internal/hypervisor/fake"
)

// tidies waits until h has nothing left of a VM that moved away offline
// (its Confirm runs after the operation ended), checking on every look
// that godwit never shows it meanwhile.
func (h *host) tidies(name string) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		h.unseen(name)
		left := h.left(name)
		if left == "" {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%s still has, 10s after the move: %s", h.name, left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// unseen checks that godwit on h shows no VM name: not in the list, not
// as one VM (managed or not).
func (h *host) unseen(name string) {
	h.t.Helper()
	ctx := context.Background()
	vms, err := h.c.ListVMs(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	if i := slices.IndexFunc(vms, func(v api.VM) bool { return v.Name == name }); i >= 0 {
		h.t.Fatalf("%s lists vm %s (%+v) after it moved away", h.name, name, vms[i])
	}
	if v, err := h.c.GetVM(ctx, name); api.Status(err) != 404 {
		h.t.Fatalf("%s shows vm %s after it moved away: %+v, %v; want 404", h.name, name, v, err)
	}
}

// An offline move ends when the VM runs on the destination; the source's
// Confirm (libvirt ending its QEMU) goes on after. While it does, the
// source shows the VM nowhere, neither as godwit's nor as an unmanaged
// domain, and refuses a new VM of the name; once it is done, nothing of
// the VM is left there and the name is free again.
func TestMigrateOfflineTidiesUpAfter(t *testing.T) {
	a, b := twoHosts(t)
	ctx := context.Background()
	a.lv.Inject(fake.Fault{Method: "Confirm", Action: fake.Hang})
	op := a.migrate(api.MigrateRequest{Mode: api.MigrateOffline})
	if op.State != api.OpSucceeded {
		t.Fatalf("migration %s: %s", op.State, op.Error)
	}
	b.runs("web1", hypervisor.StateRunning)
	if _, err := a.lv.Lookup(ctx, "web1"); err != nil {
		t.Fatalf("a's domain web1 is gone with Confirm still hanging: %v", err)
	}
	a.unseen("web1")
	if recs := a.records(); len(recs) != 1 || !strings.Contains(recs[0], "handed over") {
		t.Fatalf("a's migration records during the tidy-up: %v", recs)
	}
	_, err := a.c.CreateVM(ctx, api.VMSpec{Name: "web1", CPUs: 1, Memory: 64 * api.MiB, Disks: []api.Disk{{Name: "root", Size: api.GiB}}}, client.CreateOptions{})
	if api.Status(err) != 409 || !strings.Contains(err.Error(), "the end of its domain here") {
		t.Fatalf("create web1 on a during the tidy-up: %v; want 409 saying its domain is being ended", err)
	}
	a.lv.ClearFaults() // Confirm goes on
	a.tidies("web1")
	a.wait(a.c.CreateVM(ctx, api.VMSpec{Name: "web1", CPUs: 1, Memory: 64 * api.MiB, Disks: []api.Disk{{Name: "root", Size: api.GiB}}}, client.CreateOptions{}))
	if v, err := a.c.GetVM(ctx, "web1"); err != nil || !v.Managed {
		t.Fatalf("a new web1 on a after the tidy-up: %+v, %v", v, err)
	}
}

// A Confirm that fails after the hand-over: the source ends its domain
// by hand, and keeps nothing.
func TestMigrateOfflineConfirmFails(t *testing.T) {
	a, b := twoHosts(t)
	a.lv.Inject(fake.Fault{Method: "Confirm"})
	if op := a.migrate(api.MigrateRequest{Mode: api.MigrateOffline}); op.State != api.OpSucceeded {
		t.Fatalf("migration %s: %s; the VM runs on b, so it moved", op.State, op.Error)
	}
	b.runs("web1", hypervisor.StateRunning)
	a.tidies("web1")
}

// The source's daemon killed during the tidy-up: its next start ends the
// domain left here before it shows any VM, and keeps nothing, without
// asking (Finish had said it runs there): here the destination is down
// meanwhile.
func TestMigrateOfflineKilledDuringTidyUp(t *testing.T) {
	a, b := twoHosts(t)
	ctx := context.Background()
	a.lv.Inject(fake.Fault{Method: "Confirm", Action: fake.Hang})
	if op := a.migrate(api.MigrateRequest{Mode: api.MigrateOffline}); op.State != api.OpSucceeded {
		t.Fatalf("migration %s: %s", op.State, op.Error)
	}
	if _, err := a.lv.Lookup(ctx, "web1"); err != nil {
		t.Fatalf("a's domain web1 is gone with Confirm still hanging: %v", err)
	}
	a.kill()
	b.kill()
	a.lv.ClearFaults()
	if _, err := a.lv.Lookup(ctx, "web1"); err != nil {
		t.Fatalf("a's domain web1 went with the daemon: %v; the restart has nothing to end", err)
	}
	a.start()
	a.unseen("web1")
	a.hasNothing("web1")
	b.start()
	b.runs("web1", hypervisor.StateRunning)
}

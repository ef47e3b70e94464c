package daemon

import (
	"context"
	"testing"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/hypervisor"
	"github.com/godwit-project/godwit/internal/hypervisor/fake"
)

// A daemon killed between phases and started again: the VM runs on one
// host, the other undoes its side (by itself, or at its next start), and
// the move ends saying why.
func TestMigrateDaemonRestart(t *testing.T) {
	ctx := context.Background()
	streaming := func(t *testing.T, a *host) api.Operation {
		t.Helper()
		half := a.streamSize() / 2
		a.lv.Inject(fake.Fault{Method: "Perform", Bytes: half, Action: fake.Hang})
		op, err := a.c.MigrateVM(ctx, "web1", api.MigrateRequest{To: "b"})
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, "the stream reaches 50%", func() bool {
			st, _ := a.lv.JobStats(ctx, "web1", false)
			return st.DataProcessed >= half
		})
		return op
	}

	// The destination dies mid-stream: libvirt drops its incoming domain,
	// the stream breaks, the VM runs on; the destination's next start
	// deletes the volumes it made.
	t.Run("destination during perform", func(t *testing.T) {
		a, b := twoHosts(t)
		op := streaming(t, a)
		b.kill()
		failed(t, a.wait(op, nil), "keeps running on a")
		a.runs("web1", hypervisor.StateRunning)
		b.start()
		b.undoes("web1")
	})

	// The destination dies while Prepare makes its volumes: its next start
	// deletes every volume Prepare made, the record listing them.
	t.Run("destination during prepare", func(t *testing.T) {
		a, b := twoHosts(t)
		b.lv.Inject(fake.Fault{Method: "CreateVolume", Name: "web1-data.qcow2", Action: fake.Hang})
		op, err := a.c.MigrateVM(ctx, "web1", api.MigrateRequest{To: "b"})
		if err != nil {
			t.Fatal(err)
		}
		pool := b.d.cfg.Pool.Name
		eventually(t, "prepare makes the second volume", func() bool { return b.called("CreateVolume " + pool + "/web1-data.qcow2") })
		b.kill()
		failed(t, a.wait(op, nil), "prepare on b")
		a.runs("web1", hypervisor.StateRunning)
		b.start()
		b.undoes("web1")
	})

	// The source dies mid-stream: libvirt aborts the job and the VM runs
	// on; the destination undoes its side once the source is silent; the
	// source's next start ends the move as interrupted.
	t.Run("source during perform", func(t *testing.T) {
		a, b := twoHosts(t)
		op := streaming(t, a)
		a.kill()
		b.undoes("web1")
		a.start()
		failed(t, a.wait(op, nil), "interrupted")
		a.runs("web1", hypervisor.StateRunning)
	})

	// The destination dies right after libvirt's Finish resumed the guest
	// there, before it defined the domain (transient until then): the VM
	// runs there only, and its next start defines it from its own XML.
	t.Run("destination between finish and define", func(t *testing.T) {
		a, b := twoHosts(t)
		b.lv.Inject(fake.Fault{Method: "Define", Name: "web1", Action: fake.Hang})
		op, err := a.c.MigrateVM(ctx, "web1", api.MigrateRequest{To: "b"})
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, "b defines web1 after finish", func() bool { return b.called("Define web1") })
		if d, err := b.lv.Lookup(ctx, "web1"); err != nil || d.Persistent || d.State != hypervisor.StateRunning {
			t.Fatalf("b after finish: domain web1 %+v, %v; want it running, transient", d, err)
		}
		b.kill()
		b.lv.ClearFaults()
		b.start()
		b.runs("web1", hypervisor.StateRunning)
		b.definedHere("web1")
		if r := b.records(); r != nil {
			t.Fatalf("b keeps records: %v", r)
		}
		// The source asked b while it was down, or after: either way it
		// ends its side, now or at its own next start.
		if got := a.wait(op, nil); got.State != api.OpSucceeded {
			t.Logf("the move on a: %s (%s)", got.State, got.Error)
			a.kill()
			a.start()
		}
		a.undoes("web1")
	})

	// The source dies while Finish runs on the destination: the VM runs
	// there, paused here; the source's next start asks, and ends its side.
	t.Run("source during finish", func(t *testing.T) {
		a, b := twoHosts(t)
		b.lv.Inject(fake.Fault{Method: "Finish", Action: fake.Hang})
		op, err := a.c.MigrateVM(ctx, "web1", api.MigrateRequest{To: "b"})
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, "finish runs on b", func() bool { return b.called("Finish") })
		a.kill()
		b.lv.ClearFaults() // Finish goes on: the guest resumes on b
		eventually(t, "web1 runs on b", func() bool { return b.left("web1") != "" && b.records() == nil })
		a.start()
		failed(t, a.wait(op, nil), "interrupted")
		a.undoes("web1")
		b.runs("web1", hypervisor.StateRunning)
	})
}

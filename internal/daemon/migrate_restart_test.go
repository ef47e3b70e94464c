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

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
}

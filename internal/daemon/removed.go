package daemon

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/ops"
	"github.com/godwit-project/godwit/internal/vm"
)

// serveForRemoved answers, here, a request about a VM whose host was
// removed from the cluster (`cluster remove`): nothing can be asked of
// that host any more, and its disks went with it. `vm show` shows the
// record; `vm delete` forgets it, as an operation of this host; anything
// else is refused with what can be done.
func (d *Daemon) serveForRemoved(ctx huma.Context, w http.ResponseWriter, host string) {
	n := d.clusterNode()
	name := ctx.Param("name")
	switch ctx.Operation().OperationID {
	case "get-vm":
		raw, ok := n.VMs(host)[name]
		if !ok {
			writeError(w, api.NotFound("vm %s not found", name))
			return
		}
		v, err := vm.RecordView(raw, host)
		if err != nil {
			writeError(w, err)
			return
		}
		v.Reason = removedReason(host)
		writeBody(w, http.StatusOK, v)
	case "delete-vm":
		o := d.ops.Start("vm.delete", name, func(ctx context.Context, _ *ops.Op) error {
			return n.ForgetVM(ctx, host, name)
		})
		writeBody(w, http.StatusAccepted, o)
	default:
		writeError(w, api.Conflict("vm %s: %s; only vm show and vm delete (which forgets its record) work for it, and an HA VM is restarted on another host by itself", name, removedReason(host)))
	}
}

func removedReason(host string) string {
	return "its host " + host + " was removed from the cluster (cluster remove), and its disks with it"
}

func writeBody(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

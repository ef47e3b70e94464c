package daemon

import (
	"context"
	"net/http"
	"slices"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/buildinfo"
)

// Access is what a caller needs for a route: read routes change nothing.
type Access string

// Access levels.
const (
	Read  Access = "read"
	Admin Access = "admin"
)

// route is one entry of the route table: the operation, who may call it,
// and how to register its handler.
type route struct {
	access   Access
	op       huma.Operation
	register func(huma.API, huma.Operation)
}

// handle registers h with its errors mapped through toStatus.
func handle[I, O any](h func(context.Context, *I) (*O, error)) func(huma.API, huma.Operation) {
	return func(a huma.API, op huma.Operation) {
		huma.Register(a, op, func(ctx context.Context, in *I) (*O, error) {
			out, err := h(ctx, in)
			if err != nil {
				return nil, toStatus(err)
			}
			return out, nil
		})
	}
}

func op(id, method, path, summary string, tags ...string) huma.Operation {
	return huma.Operation{OperationID: id, Method: method, Path: path, Summary: summary, Tags: tags}
}

func accepted(o huma.Operation) huma.Operation {
	o.DefaultStatus = http.StatusAccepted
	return o
}

// routes is the API: every endpoint, in tables. Each area keeps its table
// next to its handlers and adds one line here.
func (d *Daemon) routes() []route {
	return slices.Concat(
		d.vmRoutes(),
		d.operationRoutes(),
		d.hostRoutes(),
		d.tuneRoutes(),
		d.backupRoutes(),
		d.snapshotRoutes(),
		d.storageRoutes(),
		d.peerRoutes(),
		d.migrationRoutes(),
		d.securityRoutes(),
		d.certRoutes(),
		d.monitorRoutes(),
		d.networkRoutes(),
		d.clusterRoutes(),
		d.placementRoutes(),
		d.drainRoutes(),
	)
}

func (d *Daemon) vmRoutes() []route {
	return []route{
		{Read, op("list-vms", http.MethodGet, "/v1/vms", "List VMs", "vms"), handle(d.listVMs)},
		{Admin, withSpecExamples(accepted(op("create-vm", http.MethodPost, "/v1/vms", "Create a VM from a spec", "vms"))), handle(d.createVM)},
		{Read, op("get-vm", http.MethodGet, "/v1/vms/{name}", "Show a VM", "vms"), handle(d.getVM)},
		{Admin, withSpecExamples(accepted(op("apply-vm", http.MethodPut, "/v1/vms/{name}", "Make a VM match a spec (create it if missing)", "vms"))), handle(d.applyVM)},
		{Admin, accepted(op("set-vm", http.MethodPost, "/v1/vms/{name}/set", "Change a VM's memory, vCPUs, pinning or disk I/O limits, live where QEMU can", "vms")), handle(d.setVM)},
		{Admin, accepted(op("delete-vm", http.MethodDelete, "/v1/vms/{name}", "Delete a VM", "vms")), handle(d.deleteVM)},
		{Admin, accepted(op("start-vm", http.MethodPost, "/v1/vms/{name}/start", "Start a VM", "vms")), handle(d.startVM)},
		{Admin, accepted(op("stop-vm", http.MethodPost, "/v1/vms/{name}/stop", "Shut a VM down (ACPI), or destroy it with force", "vms")), handle(d.stopVM)},
		{Admin, accepted(op("reboot-vm", http.MethodPost, "/v1/vms/{name}/reboot", "Reboot a VM (ACPI)", "vms")), handle(d.rebootVM)},
		{Admin, op("kill-vm", http.MethodPost, "/v1/vms/{name}/kill", "Destroy a running VM at once", "vms"), handle(d.killVM)},
		{Admin, op("pause-vm", http.MethodPost, "/v1/vms/{name}/pause", "Pause a VM's vCPUs", "vms"), handle(d.pauseVM)},
		{Admin, op("resume-vm", http.MethodPost, "/v1/vms/{name}/resume", "Resume a paused VM", "vms"), handle(d.resumeVM)},
		{Read, op("vm-console", http.MethodGet, "/v1/vms/{name}/console", "Read (and follow) a VM's serial console log", "vms"), d.registerConsole},
		{Read, op("vm-console-ws", http.MethodGet, "/v1/vms/{name}/console/ws", "The serial console over a websocket: its output, and input from admin callers", "vms"), d.registerConsoleWS},
		{Read, op("vm-vnc-ws", http.MethodGet, "/v1/vms/{name}/vnc/ws", "The graphical console (VNC, RFB) over a websocket: input from admin callers, view only for read", "vms"), d.registerVNCWS},
		{Admin, op("adopt-vm", http.MethodPost, "/v1/vms/{name}/adopt", "Take a libvirt domain godwit did not define under management, changing nothing in it", "vms"), handle(d.adoptVM)},
		{Admin, op("release-vm", http.MethodPost, "/v1/vms/{name}/release", "Hand an adopted VM back to plain libvirt, as it is", "vms"), handle(d.releaseVM)},
	}
}

func (d *Daemon) operationRoutes() []route {
	return []route{
		{Read, op("list-operations", http.MethodGet, "/v1/operations", "List operations, newest first", "operations"), handle(d.listOps)},
		{Read, op("get-operation", http.MethodGet, "/v1/operations/{id}", "Show an operation", "operations"), handle(d.getOp)},
		{Read, op("wait-operation", http.MethodGet, "/v1/operations/{id}/wait", "Wait for an operation to end", "operations"), handle(d.waitOp)},
		{Admin, op("cancel-operation", http.MethodPost, "/v1/operations/{id}/cancel", "Cancel a running operation", "operations"), handle(d.cancelOp)},
	}
}

func (d *Daemon) hostRoutes() []route {
	return []route{
		{Read, op("get-host", http.MethodGet, "/v1/host", "Show this host", "host"), handle(d.getHost)},
		{Public, op("healthz", http.MethodGet, "/healthz", "Liveness: the daemon answers", "health"), handle(d.healthz)},
	}
}

// handler builds the HTTP handler: huma over the stdlib mux.
func (d *Daemon) handler() http.Handler {
	useAPIErrors()
	mux := http.NewServeMux()
	cfg := huma.DefaultConfig("godwit", buildinfo.String())
	cfg.Info.Description = "godwit manages KVM virtual machines through libvirt. Slow actions answer 202 with an operation; errors are {\"error\": ..., \"code\": ...}."
	cfg.CreateHooks = nil // no $schema links in bodies
	cfg.DocsPath = ""     // the docs page pulls scripts from a CDN
	a := humago.New(mux, cfg)
	useSizeSchema(a.OpenAPI().Components.Schemas)
	a.UseMiddleware(checkAccess(a, d.mon.health.Expect), d.forward)
	public := map[string]bool{}
	for _, r := range d.routes() {
		o := r.op
		o.Metadata = map[string]any{"access": r.access}
		if o.MaxBodyBytes == 0 {
			// Explicit, so it is tested and documented; streaming routes
			// (uploads) set -1 and are not capped.
			o.MaxBodyBytes = MaxBodyBytes
		}
		if r.access == Public {
			public[o.Path] = true
		}
		r.register(a, o)
	}
	documentAPI(a.OpenAPI())
	d.mountUI(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, api.NotFound("no such endpoint: %s %s (see /openapi.json)", r.Method, r.URL.Path))
	})
	return d.middleware(public, mux)
}

// MaxBodyBytes caps a request body (a VM spec, a token request): larger
// ones get 413. Streaming uploads are exempt.
const MaxBodyBytes = 1 << 20

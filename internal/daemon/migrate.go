package daemon

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/godwit-project/godwit/api"
)

func (d *Daemon) migrationRoutes() []route {
	return []route{
		{Admin, accepted(op("migrate-vm", http.MethodPost, "/v1/vms/{name}/migrate", "Move a VM to another host (live, offline or cold)", "migration")), handle(d.migrateVM)},
		{Admin, accepted(op("evacuate-host", http.MethodPost, "/v1/host/evacuate", "Move every running VM off this host", "migration")), handle(d.evacuate)},
		{Peer, op("peer-migration-preflight", http.MethodPost, "/v1/peer/migrations/preflight", "Can this VM move here? (daemon to daemon)", "peer"), handle(d.peerPreflight)},
		{Peer, op("peer-migration-prepare", http.MethodPost, "/v1/peer/migrations", "Prepare to receive a VM (daemon to daemon)", "peer"), handle(d.peerPrepare)},
		{Peer, op("peer-migration-finish", http.MethodPost, "/v1/peer/migrations/{id}/finish", "Finish or cancel receiving a VM (daemon to daemon)", "peer"), handle(d.peerFinish)},
		{Peer, op("peer-migration-keepalive", http.MethodPost, "/v1/peer/migrations/{id}/keepalive", "The source is still at it (daemon to daemon)", "peer"), handle(d.peerKeepalive)},
		{Peer, op("peer-migration-upload", http.MethodPut, "/v1/peer/migrations/{id}/files/{file}", "Receive a file of an offline or cold move (daemon to daemon)", "peer"), d.registerUpload},
	}
}

type migrateInput struct {
	Name string `path:"name" doc:"VM name"`
	Body api.MigrateRequest
}

func (d *Daemon) migrateVM(ctx context.Context, in *migrateInput) (*opOutput, error) {
	return d.opAction(ctx, func() (api.Operation, error) { return d.migrations.Migrate(ctx, in.Name, in.Body) })
}

func (d *Daemon) evacuate(ctx context.Context, in *struct{ Body api.EvacuateRequest }) (*opOutput, error) {
	return d.opAction(ctx, func() (api.Operation, error) { return d.migrations.Evacuate(ctx, in.Body) })
}

func (d *Daemon) peerPreflight(ctx context.Context, in *struct{ Body api.MigrationOffer }) (*struct{ Body api.PreflightAnswer }, error) {
	if err := d.host.ensure(ctx); err != nil {
		return nil, err
	}
	a, err := d.migrations.Preflight(ctx, callerPeer(ctx), in.Body)
	if err != nil {
		return nil, err
	}
	return &struct{ Body api.PreflightAnswer }{a}, nil
}

func (d *Daemon) peerPrepare(ctx context.Context, in *struct{ Body api.MigrationOffer }) (*struct{ Body api.PrepareAnswer }, error) {
	if err := d.host.ensure(ctx); err != nil {
		return nil, err
	}
	a, err := d.migrations.Prepare(ctx, callerPeer(ctx), in.Body)
	if err != nil {
		return nil, err
	}
	return &struct{ Body api.PrepareAnswer }{a}, nil
}

type peerFinishInput struct {
	ID   string `path:"id" doc:"Migration id"`
	Body api.FinishRequest
}

func (d *Daemon) peerFinish(ctx context.Context, in *peerFinishInput) (*struct{ Body api.FinishAnswer }, error) {
	a, err := d.migrations.Finish(ctx, callerPeer(ctx), in.ID, in.Body)
	if err != nil {
		return nil, err
	}
	return &struct{ Body api.FinishAnswer }{a}, nil
}

type migrationIDInput struct {
	ID string `path:"id" doc:"Migration id"`
}

func (d *Daemon) peerKeepalive(ctx context.Context, in *migrationIDInput) (*struct{}, error) {
	return &struct{}{}, d.migrations.Keepalive(callerPeer(ctx), in.ID)
}

type uploadInput struct {
	ID     string `path:"id" doc:"Migration id"`
	File   string `path:"file" doc:"File of the move: state, or a disk name"`
	SHA256 string `header:"X-Godwit-SHA256" doc:"SHA-256 of the file, hex; or, usually, the same as an HTTP trailer after the body."`
}

// registerUpload streams the request body to disk: it must not go through
// huma's body buffer (disks are big), so the handler reads the request
// the authenticate layer put in the context.
func (d *Daemon) registerUpload(a huma.API, o huma.Operation) {
	o.RequestBody = &huma.RequestBody{Description: "The file's bytes", Content: map[string]*huma.MediaType{"application/octet-stream": {}}}
	huma.Register(a, o, func(ctx context.Context, in *uploadInput) (*struct{}, error) {
		r, _ := ctx.Value(requestKey{}).(*http.Request)
		if r == nil {
			return nil, toStatus(api.BadRequest("no request body"))
		}
		// The trailer is there once the body has been read to its end.
		sum := func() string {
			if in.SHA256 != "" {
				return in.SHA256
			}
			return r.Trailer.Get(api.HeaderSHA256)
		}
		if err := d.migrations.Upload(ctx, callerPeer(ctx), in.ID, in.File, sum, r.Body); err != nil {
			return nil, toStatus(err)
		}
		return &struct{}{}, nil
	})
}

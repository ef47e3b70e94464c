package daemon

import (
	"context"
	"net/http"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/snapshot"
)

// startSnapshots makes the snapshot service.
func (d *Daemon) startSnapshots() {
	d.snapshots = snapshot.New(d.hv, d.vms, d.ops, d.log)
}

func (d *Daemon) snapshotRoutes() []route {
	return []route{
		{Admin, accepted(op("create-snapshot", http.MethodPost, "/v1/vms/{name}/snapshots", "Take a snapshot of a VM", "snapshots")), handle(d.createSnapshot)},
		{Read, op("list-snapshots", http.MethodGet, "/v1/vms/{name}/snapshots", "List a VM's snapshots (a tree: each names its parent)", "snapshots"), handle(d.listSnapshots)},
		{Read, op("get-snapshot", http.MethodGet, "/v1/vms/{name}/snapshots/{snapshot}", "Show a snapshot", "snapshots"), handle(d.getSnapshot)},
		{Admin, accepted(op("revert-snapshot", http.MethodPost, "/v1/vms/{name}/snapshots/{snapshot}/revert", "Revert a VM to a snapshot", "snapshots")), handle(d.revertSnapshot)},
		{Admin, accepted(op("delete-snapshot", http.MethodDelete, "/v1/vms/{name}/snapshots/{snapshot}", "Delete a snapshot", "snapshots")), handle(d.deleteSnapshot)},
	}
}

func (d *Daemon) snapshotService(ctx context.Context) (*snapshot.Service, error) {
	if err := d.host.ensure(ctx); err != nil {
		return nil, err
	}
	return d.snapshots, nil
}

type createSnapshotInput struct {
	Name string `path:"name" doc:"VM name"`
	Body api.SnapshotRequest
}

func (d *Daemon) createSnapshot(ctx context.Context, in *createSnapshotInput) (*opOutput, error) {
	s, err := d.snapshotService(ctx)
	if err != nil {
		return nil, err
	}
	o, err := s.Create(ctx, in.Name, in.Body)
	if err != nil {
		return nil, err
	}
	return &opOutput{o}, nil
}

func (d *Daemon) listSnapshots(ctx context.Context, in *nameInput) (*struct{ Body api.SnapshotList }, error) {
	s, err := d.snapshotService(ctx)
	if err != nil {
		return nil, err
	}
	list, err := s.List(ctx, in.Name)
	if err != nil {
		return nil, err
	}
	return &struct{ Body api.SnapshotList }{api.SnapshotList{Snapshots: list}}, nil
}

type snapshotInput struct {
	Name     string `path:"name" doc:"VM name"`
	Snapshot string `path:"snapshot" doc:"Snapshot name"`
}

func (d *Daemon) getSnapshot(ctx context.Context, in *snapshotInput) (*struct{ Body api.Snapshot }, error) {
	s, err := d.snapshotService(ctx)
	if err != nil {
		return nil, err
	}
	sn, err := s.Get(ctx, in.Name, in.Snapshot)
	if err != nil {
		return nil, err
	}
	return &struct{ Body api.Snapshot }{sn}, nil
}

func (d *Daemon) revertSnapshot(ctx context.Context, in *snapshotInput) (*opOutput, error) {
	s, err := d.snapshotService(ctx)
	if err != nil {
		return nil, err
	}
	o, err := s.Revert(ctx, in.Name, in.Snapshot)
	if err != nil {
		return nil, err
	}
	return &opOutput{o}, nil
}

func (d *Daemon) deleteSnapshot(ctx context.Context, in *snapshotInput) (*opOutput, error) {
	s, err := d.snapshotService(ctx)
	if err != nil {
		return nil, err
	}
	o, err := s.Delete(ctx, in.Name, in.Snapshot)
	if err != nil {
		return nil, err
	}
	return &opOutput{o}, nil
}

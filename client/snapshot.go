package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/godwit-project/godwit/api"
)

func snapshotPath(vm string) string { return "/v1/vms/" + url.PathEscape(vm) + "/snapshots" }

// CreateSnapshot starts taking a snapshot of a VM.
func (c *Client) CreateSnapshot(ctx context.Context, vm string, req api.SnapshotRequest) (api.Operation, error) {
	var out api.Operation
	err := c.do(ctx, http.MethodPost, snapshotPath(vm), nil, req, &out)
	return out, err
}

// ListSnapshots lists a VM's snapshots, oldest first.
func (c *Client) ListSnapshots(ctx context.Context, vm string) ([]api.Snapshot, error) {
	var out api.SnapshotList
	err := c.do(ctx, http.MethodGet, snapshotPath(vm), nil, nil, &out)
	return out.Snapshots, err
}

// GetSnapshot shows one snapshot.
func (c *Client) GetSnapshot(ctx context.Context, vm, name string) (api.Snapshot, error) {
	var out api.Snapshot
	err := c.do(ctx, http.MethodGet, snapshotPath(vm)+"/"+url.PathEscape(name), nil, nil, &out)
	return out, err
}

// RevertSnapshot starts reverting a VM to a snapshot.
func (c *Client) RevertSnapshot(ctx context.Context, vm, name string) (api.Operation, error) {
	var out api.Operation
	err := c.do(ctx, http.MethodPost, snapshotPath(vm)+"/"+url.PathEscape(name)+"/revert", nil, nil, &out)
	return out, err
}

// DeleteSnapshot starts deleting a snapshot.
func (c *Client) DeleteSnapshot(ctx context.Context, vm, name string) (api.Operation, error) {
	var out api.Operation
	err := c.do(ctx, http.MethodDelete, snapshotPath(vm)+"/"+url.PathEscape(name), nil, nil, &out)
	return out, err
}

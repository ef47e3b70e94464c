package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/godwit-project/godwit/api"
)

// CreateBackup starts a backup of a VM (incremental when possible).
func (c *Client) CreateBackup(ctx context.Context, vm string, req api.BackupRequest) (api.Operation, error) {
	var out api.Operation
	err := c.do(ctx, http.MethodPost, "/v1/vms/"+url.PathEscape(vm)+"/backups", nil, req, &out)
	return out, err
}

// ListBackups lists backups, oldest first; vm filters by VM.
func (c *Client) ListBackups(ctx context.Context, vm string) ([]api.Backup, error) {
	q := url.Values{}
	if vm != "" {
		q.Set("vm", vm)
	}
	var out api.BackupList
	err := c.do(ctx, http.MethodGet, "/v1/backups", q, nil, &out)
	return out.Backups, err
}

// GetBackup shows one backup; id may be a VM name (its newest backup).
func (c *Client) GetBackup(ctx context.Context, id string) (api.Backup, error) {
	var out api.Backup
	err := c.do(ctx, http.MethodGet, "/v1/backups/"+url.PathEscape(id), nil, nil, &out)
	return out, err
}

// RestoreBackup starts recreating a VM from a backup.
func (c *Client) RestoreBackup(ctx context.Context, id string, req api.RestoreRequest) (api.Operation, error) {
	var out api.Operation
	err := c.do(ctx, http.MethodPost, "/v1/backups/"+url.PathEscape(id)+"/restore", nil, req, &out)
	return out, err
}

// VerifyBackups starts re-hashing backups (all when ids is empty).
func (c *Client) VerifyBackups(ctx context.Context, ids []string) (api.Operation, error) {
	var out api.Operation
	err := c.do(ctx, http.MethodPost, "/v1/backups/verify", nil, api.VerifyRequest{IDs: ids}, &out)
	return out, err
}

// PruneBackups starts removing backups a policy does not keep.
func (c *Client) PruneBackups(ctx context.Context, req api.PruneRequest) (api.Operation, error) {
	var out api.Operation
	err := c.do(ctx, http.MethodPost, "/v1/backups/prune", nil, req, &out)
	return out, err
}

// SetBackupSchedule makes or replaces a VM's backup schedule.
func (c *Client) SetBackupSchedule(ctx context.Context, vm string, req api.ScheduleRequest) (api.BackupSchedule, error) {
	var out api.BackupSchedule
	err := c.do(ctx, http.MethodPut, "/v1/vms/"+url.PathEscape(vm)+"/backup-schedule", nil, req, &out)
	return out, err
}

// DeleteBackupSchedule removes a VM's backup schedule.
func (c *Client) DeleteBackupSchedule(ctx context.Context, vm string) error {
	return c.do(ctx, http.MethodDelete, "/v1/vms/"+url.PathEscape(vm)+"/backup-schedule", nil, nil, nil)
}

// ListBackupSchedules lists every backup schedule.
func (c *Client) ListBackupSchedules(ctx context.Context) ([]api.BackupSchedule, error) {
	var out api.BackupScheduleList
	err := c.do(ctx, http.MethodGet, "/v1/backup-schedules", nil, nil, &out)
	return out.Schedules, err
}

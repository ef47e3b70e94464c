package daemon

import (
	"context"
	"net/http"
	"path/filepath"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/backup"
)

// startBackups makes the backup service; restore --to moves VMs with the
// migration service.
func (d *Daemon) startBackups() {
	cfg := backup.Config{Repo: d.cfg.BackupRepo, WorkDir: filepath.Join(d.cfg.StateDir, "backup-work"), Host: d.cfg.Name,
		Migrate: d.migrations.Migrate}
	d.backups = backup.New(d.hv, d.vms, d.ops, d.store, cfg, d.log)
	// A deleted VM's schedule goes with it (its backups stay).
	d.vms.OnDeleted(func(ctx context.Context, name string) {
		if err := d.backups.DeleteSchedule(ctx, name); err != nil && api.Status(err) != 404 {
			d.log.Warn("remove the backup schedule of a deleted VM", "vm", name, "err", err)
		}
	})
}

// runBackupSchedules runs the schedules in the background until ctx ends.
func (d *Daemon) runBackupSchedules(ctx context.Context) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.backups.RunSchedules(ctx, func(ctx context.Context) bool { return d.host.ensure(ctx) == nil })
	}()
}

func (d *Daemon) backupRoutes() []route {
	return []route{
		{Admin, accepted(op("create-backup", http.MethodPost, "/v1/vms/{name}/backups", "Back a VM up (incremental when its last checkpoint allows)", "backups")), handle(d.createBackup)},
		{Read, op("list-backups", http.MethodGet, "/v1/backups", "List backups, oldest first", "backups"), handle(d.listBackups)},
		{Read, op("get-backup", http.MethodGet, "/v1/backups/{id}", "Show a backup (or a VM's newest, by VM name)", "backups"), handle(d.getBackup)},
		{Admin, accepted(op("restore-backup", http.MethodPost, "/v1/backups/{id}/restore", "Recreate a VM from a backup", "backups")), handle(d.restoreBackup)},
		{Admin, accepted(op("verify-backups", http.MethodPost, "/v1/backups/verify", "Re-hash backups' chunks and report damage", "backups")), handle(d.verifyBackups)},
		{Admin, accepted(op("prune-backups", http.MethodPost, "/v1/backups/prune", "Remove backups a retention policy does not keep", "backups")), handle(d.pruneBackups)},
		{Read, op("list-backup-schedules", http.MethodGet, "/v1/backup-schedules", "List backup schedules", "backups"), handle(d.listSchedules)},
		{Admin, op("set-backup-schedule", http.MethodPut, "/v1/vms/{name}/backup-schedule", "Back a VM up periodically", "backups"), handle(d.setSchedule)},
		{Admin, op("delete-backup-schedule", http.MethodDelete, "/v1/vms/{name}/backup-schedule", "Stop backing a VM up periodically", "backups"), handle(d.deleteSchedule)},
	}
}

func (d *Daemon) backupService(ctx context.Context) (*backup.Service, error) {
	if err := d.host.ensure(ctx); err != nil {
		return nil, err
	}
	return d.backups, nil
}

type createBackupInput struct {
	Name string `path:"name" doc:"VM name"`
	Body *api.BackupRequest
}

func (d *Daemon) createBackup(ctx context.Context, in *createBackupInput) (*opOutput, error) {
	b, err := d.backupService(ctx)
	if err != nil {
		return nil, err
	}
	req := api.BackupRequest{}
	if in.Body != nil {
		req = *in.Body
	}
	o, err := b.Create(ctx, in.Name, backup.CreateOptions{Full: req.Full})
	if err != nil {
		return nil, err
	}
	return &opOutput{o}, nil
}

type listBackupsInput struct {
	VM string `query:"vm" doc:"Only this VM's backups."`
}

func (d *Daemon) listBackups(ctx context.Context, in *listBackupsInput) (*struct{ Body api.BackupList }, error) {
	list, err := d.backups.List(ctx, in.VM)
	if err != nil {
		return nil, err
	}
	return &struct{ Body api.BackupList }{api.BackupList{Backups: list}}, nil
}

type backupIDInput struct {
	ID string `path:"id" doc:"Backup id, or a VM name for its newest backup"`
}

func (d *Daemon) getBackup(ctx context.Context, in *backupIDInput) (*struct{ Body api.Backup }, error) {
	b, err := d.backups.Get(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	return &struct{ Body api.Backup }{b}, nil
}

type restoreInput struct {
	ID   string `path:"id" doc:"Backup id, or a VM name for its newest backup"`
	Body *api.RestoreRequest
}

func (d *Daemon) restoreBackup(ctx context.Context, in *restoreInput) (*opOutput, error) {
	b, err := d.backupService(ctx)
	if err != nil {
		return nil, err
	}
	req := api.RestoreRequest{}
	if in.Body != nil {
		req = *in.Body
	}
	o, err := b.Restore(ctx, in.ID, req)
	if err != nil {
		return nil, err
	}
	return &opOutput{o}, nil
}

type verifyInput struct {
	Body *api.VerifyRequest
}

func (d *Daemon) verifyBackups(ctx context.Context, in *verifyInput) (*opOutput, error) {
	var ids []string
	if in.Body != nil {
		ids = in.Body.IDs
	}
	o, err := d.backups.Verify(ctx, ids)
	if err != nil {
		return nil, err
	}
	return &opOutput{o}, nil
}

type pruneInput struct {
	Body api.PruneRequest
}

func (d *Daemon) pruneBackups(ctx context.Context, in *pruneInput) (*opOutput, error) {
	o, err := d.backups.Prune(ctx, in.Body)
	if err != nil {
		return nil, err
	}
	return &opOutput{o}, nil
}

func (d *Daemon) listSchedules(ctx context.Context, _ *struct{}) (*struct{ Body api.BackupScheduleList }, error) {
	list, err := d.backups.Schedules(ctx)
	if err != nil {
		return nil, err
	}
	return &struct{ Body api.BackupScheduleList }{api.BackupScheduleList{Schedules: list}}, nil
}

type setScheduleInput struct {
	Name string `path:"name" doc:"VM name"`
	Body api.ScheduleRequest
}

func (d *Daemon) setSchedule(ctx context.Context, in *setScheduleInput) (*struct{ Body api.BackupSchedule }, error) {
	b, err := d.backupService(ctx)
	if err != nil {
		return nil, err
	}
	sc, err := b.SetSchedule(ctx, api.BackupSchedule{VM: in.Name, Every: in.Body.Every, RetentionPolicy: in.Body.RetentionPolicy})
	if err != nil {
		return nil, err
	}
	return &struct{ Body api.BackupSchedule }{sc}, nil
}

func (d *Daemon) deleteSchedule(ctx context.Context, in *nameInput) (*struct{}, error) {
	if err := d.backups.DeleteSchedule(ctx, in.Name); err != nil {
		return nil, err
	}
	return &struct{}{}, nil
}

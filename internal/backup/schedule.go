package backup

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/store"
)

const scheduleBucket = "backup-schedules"

// MinEvery is the shortest schedule period.
const MinEvery = time.Minute

// SetSchedule makes (or replaces) a VM's backup schedule.
func (s *Service) SetSchedule(ctx context.Context, sc api.BackupSchedule) (api.BackupSchedule, error) {
	every, err := time.ParseDuration(sc.Every)
	if err != nil {
		return sc, api.BadRequest("every: %q is not a duration such as 24h or 90m", sc.Every)
	}
	if every < MinEvery {
		return sc, api.BadRequest("every: %s is shorter than %s", every, MinEvery)
	}
	if sc.KeepLast < 0 || sc.KeepDaily < 0 || sc.KeepWeekly < 0 {
		return sc, api.BadRequest("keepLast, keepDaily, keepWeekly: must not be negative")
	}
	if _, err := s.vms.Get(ctx, sc.VM); err != nil {
		return sc, err
	}
	old, err := store.GetJSON[api.BackupSchedule](ctx, s.store, scheduleBucket, sc.VM)
	if err == nil {
		sc.LastRun, sc.LastBackup, sc.LastError = old.LastRun, old.LastBackup, old.LastError
	} else if !errors.Is(err, store.ErrNotFound) {
		return sc, err
	}
	sc.Every = every.String()
	sc.NextRun = next(sc, s.clock())
	return sc, store.PutJSON(ctx, s.store, scheduleBucket, sc.VM, sc)
}

// DeleteSchedule removes a VM's schedule.
func (s *Service) DeleteSchedule(ctx context.Context, vmName string) error {
	err := s.store.Delete(ctx, scheduleBucket, vmName)
	if errors.Is(err, store.ErrNotFound) {
		return api.NotFound("vm %s has no backup schedule", vmName)
	}
	return err
}

// Schedules lists every schedule.
func (s *Service) Schedules(ctx context.Context) ([]api.BackupSchedule, error) {
	list, err := store.ListJSON[api.BackupSchedule](ctx, s.store, scheduleBucket)
	if err != nil {
		return nil, err
	}
	now := s.clock()
	for i := range list {
		list[i].NextRun = next(list[i], now)
	}
	return list, nil
}

// next is when a schedule runs next: a period after its last run, or now
// when that is past. However many periods were missed, it runs once.
func next(sc api.BackupSchedule, now time.Time) time.Time {
	every, _ := time.ParseDuration(sc.Every)
	if sc.LastRun.IsZero() {
		return now.UTC().Truncate(time.Second)
	}
	n := sc.LastRun.Add(every)
	if n.Before(now) {
		return now.UTC().Truncate(time.Second)
	}
	return n
}

// RunSchedules runs due schedules until ctx ends. ready says whether the
// daemon can act now (libvirt reachable).
func (s *Service) RunSchedules(ctx context.Context, ready func(context.Context) bool) {
	t := time.NewTicker(s.cfg.ScheduleTick)
	defer t.Stop()
	running := map[string]bool{}
	done := make(chan string)
	for {
		select {
		case <-ctx.Done():
			return
		case vm := <-done:
			delete(running, vm)
			continue
		case <-t.C:
		}
		if !ready(ctx) {
			continue
		}
		list, err := store.ListJSON[api.BackupSchedule](ctx, s.store, scheduleBucket)
		if err != nil {
			s.log.Error("read backup schedules", "err", err)
			continue
		}
		now := s.clock()
		for _, sc := range list {
			if running[sc.VM] || next(sc, now).After(now) {
				continue
			}
			running[sc.VM] = true
			go func(sc api.BackupSchedule) {
				s.runSchedule(ctx, sc)
				select {
				case done <- sc.VM:
				case <-ctx.Done():
				}
			}(sc)
		}
	}
}

// runSchedule backs the VM up, then prunes its backups with the
// schedule's policy. A busy VM is tried again at the next tick.
func (s *Service) runSchedule(ctx context.Context, sc api.BackupSchedule) {
	start := s.clock().UTC()
	s.log.Info("scheduled backup", "vm", sc.VM, "every", sc.Every)
	op, err := s.Create(ctx, sc.VM, CreateOptions{})
	if api.Status(err) == 409 {
		s.log.Info("scheduled backup postponed: the VM is busy", "vm", sc.VM, "err", err)
		return
	}
	if err == nil {
		op, err = s.ops.Wait(ctx, op.ID)
		if err == nil {
			err = op.Err()
		}
	}
	if ctx.Err() != nil {
		return
	}
	sc.LastRun, sc.LastError = start, ""
	if err != nil {
		sc.LastError = err.Error()
		s.log.Warn("scheduled backup failed", "vm", sc.VM, "err", err)
	} else {
		var b api.Backup
		if decode(op, &b) == nil {
			sc.LastBackup = b.ID
		}
		p := sc.RetentionPolicy
		if !policy(p).Empty() {
			if _, perr := s.prune(ctx, noProgress{}, api.PruneRequest{RetentionPolicy: p, VM: sc.VM}); perr != nil {
				sc.LastError = "prune: " + perr.Error()
				s.log.Warn("scheduled prune failed", "vm", sc.VM, "err", perr)
			}
		}
	}
	// The schedule may have changed or gone meanwhile: keep what the user set.
	cur, gerr := store.GetJSON[api.BackupSchedule](ctx, s.store, scheduleBucket, sc.VM)
	if gerr != nil {
		return
	}
	cur.LastRun, cur.LastBackup, cur.LastError = sc.LastRun, sc.LastBackup, sc.LastError
	if perr := store.PutJSON(ctx, s.store, scheduleBucket, sc.VM, cur); perr != nil {
		s.log.Error("save backup schedule", "vm", sc.VM, "err", perr)
	}
}

type noProgress struct{}

func (noProgress) Progress(string, int64, int64, string) {}

func decode(op api.Operation, v any) error {
	if len(op.Result) == 0 {
		return errors.New("no result")
	}
	return json.Unmarshal(op.Result, v)
}

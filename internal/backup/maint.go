package backup

import (
	"context"
	"fmt"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/backup/repo"
	"github.com/godwit-project/godwit/internal/ops"
)

// shareRepo takes the repository lock shared (backups, restores and
// verifies run side by side), saying so while a prune holds it.
func shareRepo(ctx context.Context, r *repo.Repo, o *ops.Op) (*repo.Lock, error) {
	return r.Lock(ctx, false, func() { o.Progress("waiting for the repository lock (a prune is running)", 0, 0, "") })
}

// Verify re-hashes the chunks of the given backups (all when none) in an
// operation. The operation fails when it finds damage; its result is the
// report either way.
func (s *Service) Verify(ctx context.Context, ids []string) (api.Operation, error) {
	r, err := s.Repo()
	if err != nil {
		return api.Operation{}, err
	}
	var resolved []string
	for _, id := range ids {
		m, err := s.manifest(id)
		if err != nil {
			return api.Operation{}, err
		}
		resolved = append(resolved, m.ID)
	}
	return s.ops.Start("backup.verify", "backups", func(ctx context.Context, o *ops.Op) error {
		lock, err := shareRepo(ctx, r, o)
		if err != nil {
			return err
		}
		defer lock.Unlock()
		o.Progress("reading indexes", 0, 0, "")
		rep, err := r.Verify(ctx, resolved, func(done, total int) {
			o.Progress("re-hashing chunks", int64(done), int64(total), "chunks")
		})
		if err != nil {
			return err
		}
		out := api.VerifyReport{OK: rep.OK(), Backups: rep.Backups, ChunksChecked: rep.ChunksChecked,
			BytesChecked: api.Size(rep.BytesChecked), BadChunks: rep.BadChunks}
		for _, d := range rep.Damaged {
			out.Damaged = append(out.Damaged, api.BackupDamage{ID: d.ID, VM: d.VM, BadChunks: d.BadChunks, Problems: d.Problems})
		}
		o.SetResult(out)
		if !out.OK {
			return fmt.Errorf("verify found %d damaged backup(s) and %d bad chunk(s)", len(out.Damaged), len(out.BadChunks))
		}
		return nil
	}), nil
}

// Prune removes the backups the policy does not keep, then every chunk no
// remaining backup needs, in an operation holding the repository alone.
func (s *Service) Prune(ctx context.Context, req api.PruneRequest) (api.Operation, error) {
	p := policy(req.RetentionPolicy)
	if p.Empty() {
		return api.Operation{}, api.BadRequest("keepLast, keepDaily, keepWeekly: prune needs at least one of them above 0 (it never removes every backup)")
	}
	if p.KeepLast < 0 || p.KeepDaily < 0 || p.KeepWeekly < 0 {
		return api.Operation{}, api.BadRequest("keepLast, keepDaily, keepWeekly: must not be negative")
	}
	if _, err := s.Repo(); err != nil {
		return api.Operation{}, err
	}
	tgt := "backups"
	if req.VM != "" {
		tgt = target(req.VM)
	}
	return s.ops.Start("backup.prune", tgt, func(ctx context.Context, o *ops.Op) error {
		res, err := s.prune(ctx, o, req)
		if err != nil {
			return err
		}
		o.SetResult(res)
		return nil
	}), nil
}

func policy(p api.RetentionPolicy) repo.Policy {
	return repo.Policy{KeepLast: p.KeepLast, KeepDaily: p.KeepDaily, KeepWeekly: p.KeepWeekly}
}

func (s *Service) prune(ctx context.Context, o interface {
	Progress(string, int64, int64, string)
}, req api.PruneRequest) (api.PruneResult, error) {
	res := api.PruneResult{DryRun: req.DryRun, Decisions: []api.PruneDecision{}}
	r, err := s.Repo()
	if err != nil {
		return res, err
	}
	lock, err := r.Lock(ctx, !req.DryRun, func() { o.Progress("waiting for running backups to end (repository lock)", 0, 0, "") })
	if err != nil {
		return res, err
	}
	defer lock.Unlock()
	all, err := r.List()
	if err != nil {
		return res, err
	}
	var ms []repo.Manifest
	for _, m := range all {
		if req.VM == "" || m.VM == req.VM {
			ms = append(ms, m)
		}
	}
	var drop []string
	for _, d := range repo.Plan(ms, policy(req.RetentionPolicy), time.Local) {
		res.Decisions = append(res.Decisions, api.PruneDecision{ID: d.ID, VM: d.VM, Keep: d.Keep, Reasons: d.Reasons})
		if !d.Keep {
			drop = append(drop, d.ID)
		}
	}
	res.Removed = len(drop)
	if req.DryRun {
		return res, nil
	}
	o.Progress(fmt.Sprintf("removing %d backup(s)", len(drop)), 0, 0, "")
	if err := r.Delete(drop...); err != nil {
		return res, err
	}
	o.Progress("removing chunks no backup needs (and repacking packs mostly dead)", 0, 0, "")
	st, err := r.GC(ctx)
	if err != nil {
		return res, err
	}
	res.ChunksRemoved, res.BytesFreed = st.ChunksRemoved, api.Size(st.BytesRemoved)
	s.log.Info("backups pruned", "vm", req.VM, "removed", len(drop), "chunks", st.ChunksRemoved, "bytes", st.BytesRemoved,
		"packsRemoved", st.PacksRemoved, "packsRepacked", st.PacksRepacked, "packsWritten", st.PacksWritten)
	return res, nil
}

package repo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"
)

// Policy says which backups of a VM prune keeps: the newest KeepLast, the
// newest of each of the KeepDaily most recent days that have backups, and
// likewise for ISO weeks. A backup kept by any rule stays.
type Policy struct {
	KeepLast   int `json:"keepLast,omitempty"`
	KeepDaily  int `json:"keepDaily,omitempty"`
	KeepWeekly int `json:"keepWeekly,omitempty"`
}

// Empty reports whether the policy keeps nothing.
func (p Policy) Empty() bool { return p.KeepLast <= 0 && p.KeepDaily <= 0 && p.KeepWeekly <= 0 }

// Decision is what prune does with one backup, and why.
type Decision struct {
	ID      string
	VM      string
	Keep    bool
	Reasons []string // "last", "daily 2026-11-29", "weekly 2026-W48"
}

// Plan applies p to every VM's backups separately (ms in any order) and
// returns one decision per backup, newest first per VM. Times are taken in
// loc (days and weeks begin at local midnight).
func Plan(ms []Manifest, p Policy, loc *time.Location) []Decision {
	byVM := map[string][]Manifest{}
	for _, m := range ms {
		byVM[m.VM] = append(byVM[m.VM], m)
	}
	vms := make([]string, 0, len(byVM))
	for vm := range byVM {
		vms = append(vms, vm)
	}
	sort.Strings(vms)
	var out []Decision
	for _, vm := range vms {
		list := byVM[vm]
		sort.Slice(list, func(i, j int) bool { return list[i].CreatedAt.After(list[j].CreatedAt) })
		lastDay, lastWeek := "", ""
		days, weeks := 0, 0
		for i, m := range list {
			d := Decision{ID: m.ID, VM: vm}
			if i < p.KeepLast {
				d.Reasons = append(d.Reasons, "last")
			}
			t := m.CreatedAt.In(loc)
			if day := t.Format("2006-01-02"); day != lastDay {
				lastDay = day
				if days < p.KeepDaily {
					days++
					d.Reasons = append(d.Reasons, "daily "+day)
				}
			}
			y, w := t.ISOWeek()
			if week := fmt.Sprintf("%d-W%02d", y, w); week != lastWeek {
				lastWeek = week
				if weeks < p.KeepWeekly {
					weeks++
					d.Reasons = append(d.Reasons, "weekly "+week)
				}
			}
			d.Keep = len(d.Reasons) > 0
			out = append(out, d)
		}
	}
	return out
}

// Delete removes backups' manifests (then their index files). It does not
// collect chunks: GC does, under the exclusive lock.
func (r *Repo) Delete(ids ...string) error {
	for _, id := range ids {
		if err := ValidID(id); err != nil {
			return err
		}
		if err := os.Remove(r.manifestPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if d, err := os.Open(filepath.Join(r.dir, "backups")); err == nil {
		_ = d.Sync()
		d.Close()
	}
	for _, id := range ids {
		if err := os.RemoveAll(filepath.Join(r.dir, "index", id)); err != nil {
			return err
		}
	}
	return nil
}

// GCStats say what GC removed.
type GCStats struct {
	ChunksKept     int    `json:"chunksKept"`
	ChunksRemoved  int    `json:"chunksRemoved"`
	BytesRemoved   uint64 `json:"bytesRemoved"`
	TempRemoved    int    `json:"tempRemoved"`
	IndexesRemoved int    `json:"indexesRemoved"`
}

// GC removes every chunk no backup references, temp files, and index files
// of backups that were never committed. Hold the exclusive lock: it must
// not race a backup that is writing chunks.
func (r *Repo) GC(ctx context.Context) (GCStats, error) {
	var st GCStats
	ms, err := r.List()
	if err != nil {
		return st, err
	}
	live := map[Hash]bool{}
	ids := map[string]bool{}
	for _, m := range ms {
		ids[m.ID] = true
		for _, d := range m.Disks {
			idx, err := r.ReadIndex(d)
			if err != nil {
				return st, fmt.Errorf("backup %s, disk %s: %w (no chunk was removed; run verify)", m.ID, d.Name, err)
			}
			for _, h := range idx {
				live[h] = true
			}
		}
	}
	tmp, _ := os.ReadDir(filepath.Join(r.dir, "tmp"))
	for _, e := range tmp {
		if os.RemoveAll(filepath.Join(r.dir, "tmp", e.Name())) == nil {
			st.TempRemoved++
		}
	}
	idxDirs, _ := os.ReadDir(filepath.Join(r.dir, "index"))
	for _, e := range idxDirs {
		if !ids[e.Name()] {
			if os.RemoveAll(filepath.Join(r.dir, "index", e.Name())) == nil {
				st.IndexesRemoved++
			}
		}
	}
	for i := 0; i < 256; i++ {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		dir := filepath.Join(r.dir, "chunks", fmt.Sprintf("%02x", i))
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			h, err := ParseHash(e.Name())
			if err == nil && live[h] {
				st.ChunksKept++
				continue
			}
			info, _ := e.Info()
			if err := os.Remove(filepath.Join(dir, e.Name())); err == nil {
				st.ChunksRemoved++
				if info != nil {
					st.BytesRemoved += uint64(info.Size())
				}
			}
		}
	}
	return st, r.Sync()
}

// Damage is what verify found wrong with one backup.
type Damage struct {
	ID       string   `json:"id"`
	VM       string   `json:"vm"`
	Problems []string `json:"problems"`
	// BadChunks counts the chunks of this backup that are missing or wrong.
	BadChunks int `json:"badChunks"`
}

// Report is the result of Verify.
type Report struct {
	Backups       int      `json:"backups"`
	ChunksChecked int      `json:"chunksChecked"`
	BytesChecked  uint64   `json:"bytesChecked"`
	BadChunks     []string `json:"badChunks,omitempty"`
	Damaged       []Damage `json:"damaged,omitempty"`
}

// OK reports whether verify found nothing wrong.
func (rep Report) OK() bool { return len(rep.BadChunks) == 0 && len(rep.Damaged) == 0 }

// Verify re-reads and re-hashes every chunk the given backups reference
// (all backups when ids is empty) and their index files, and reports the
// damage per backup. progress sees (chunks done, chunks in all).
func (r *Repo) Verify(ctx context.Context, ids []string, progress func(done, total int)) (Report, error) {
	var rep Report
	var ms []Manifest
	if len(ids) == 0 {
		all, err := r.List()
		if err != nil {
			return rep, err
		}
		ms = all
	} else {
		for _, id := range ids {
			m, err := r.Manifest(id)
			if err != nil {
				return rep, err
			}
			ms = append(ms, m)
		}
	}
	rep.Backups = len(ms)
	users := map[Hash][]int{} // chunk -> backups (index into ms)
	damage := make([]Damage, len(ms))
	for i, m := range ms {
		damage[i] = Damage{ID: m.ID, VM: m.VM}
		for _, d := range m.Disks {
			idx, err := r.ReadIndex(d)
			if err != nil {
				damage[i].Problems = append(damage[i].Problems, fmt.Sprintf("disk %s: %v", d.Name, err))
				continue
			}
			for _, h := range idx {
				if h == Zero {
					continue
				}
				if u := users[h]; len(u) == 0 || u[len(u)-1] != i {
					users[h] = append(u, i)
				}
			}
		}
	}
	hashes := make([]Hash, 0, len(users))
	for h := range users {
		hashes = append(hashes, h)
	}
	sort.Slice(hashes, func(i, j int) bool { return strings.Compare(string(hashes[i][:]), string(hashes[j][:])) < 0 })

	var mu sync.Mutex
	bad := map[Hash]string{}
	done := 0
	work := make(chan Hash)
	var wg sync.WaitGroup
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, r.chunkSize)
			for h := range work {
				err := r.checkChunk(h, buf)
				var size int64
				if st, serr := os.Stat(r.chunkPath(h)); serr == nil {
					size = st.Size()
				}
				mu.Lock()
				if err != nil {
					bad[h] = err.Error()
				}
				done++
				rep.BytesChecked += uint64(size)
				if progress != nil && (done%256 == 0 || done == len(hashes)) {
					progress(done, len(hashes))
				}
				mu.Unlock()
			}
		}()
	}
	var cerr error
	for _, h := range hashes {
		if cerr = ctx.Err(); cerr != nil {
			break
		}
		work <- h
	}
	close(work)
	wg.Wait()
	if cerr != nil {
		return rep, cerr
	}
	rep.ChunksChecked = len(hashes)
	for _, h := range hashes {
		msg, ok := bad[h]
		if !ok {
			continue
		}
		rep.BadChunks = append(rep.BadChunks, msg)
		for _, i := range users[h] {
			damage[i].BadChunks++
			if len(damage[i].Problems) < 10 {
				damage[i].Problems = append(damage[i].Problems, msg)
			}
		}
	}
	for _, d := range damage {
		if len(d.Problems) > 0 {
			rep.Damaged = append(rep.Damaged, d)
		}
	}
	return rep, nil
}

package repo

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
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
	_ = syncDir(filepath.Join(r.dir, "backups"))
	for _, id := range ids {
		if err := os.RemoveAll(filepath.Join(r.dir, "index", id)); err != nil {
			return err
		}
	}
	return nil
}

// GCStats say what GC removed.
type GCStats struct {
	// ChunksKept counts the live chunks left where they were.
	ChunksKept int `json:"chunksKept"`
	// ChunksRemoved counts the chunks no backup references that were
	// dropped (with their packs, or left out of repacked ones).
	ChunksRemoved int `json:"chunksRemoved"`
	// BytesRemoved is the space freed: the removed packs and chunk files
	// less the packs repacking wrote.
	BytesRemoved uint64 `json:"bytesRemoved"`
	// PacksRemoved counts removed packs (dead, repacked or unreadable);
	// PacksRepacked those of them whose live chunks were copied first,
	// into PacksWritten new packs.
	PacksRemoved  int `json:"packsRemoved"`
	PacksRepacked int `json:"packsRepacked"`
	PacksWritten  int `json:"packsWritten"`
	// PacksUnreadable counts packs with a damaged trailer that GC left
	// because some live chunk is missing (verify reports them).
	PacksUnreadable int `json:"packsUnreadable,omitempty"`
	TempRemoved     int `json:"tempRemoved"`
	IndexesRemoved  int `json:"indexesRemoved"`
}

// repackBelow: a pack whose live chunks hold less than this share of its
// bytes is repacked (its live chunks copied to a new pack, the old one
// removed). At one half, repacking copies at most as much as it frees.
const repackBelow = 0.5

// GC removes what no backup references: packs without a live chunk, temp
// files, index files of backups that were never committed, version 1 chunk
// files; it repacks packs that are mostly dead (the new packs are durable
// before the old ones go). Hold the exclusive lock: it must not race a
// backup that is writing.
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
	delete(live, Zero)
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
	if err := r.scanPacks(); err != nil {
		return st, err
	}

	// Tally each pack's live chunks: those a backup references and the
	// index finds in this pack (a copy elsewhere is dead).
	r.mu.Lock()
	type pk struct {
		no uint32
		id string
	}
	var packs []pk
	for no, p := range r.packs {
		if !p.gone {
			packs = append(packs, pk{uint32(no), p.id})
		}
	}
	r.mu.Unlock()
	var drop, repack []packStat
	for _, p := range packs {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		ents, size, err := readTrailer(r.packPath(p.id))
		if err != nil {
			continue // gone meanwhile, or damaged: verify says so
		}
		ps := packStat{no: p.no, id: p.id, size: size, ents: ents}
		r.mu.Lock()
		for _, e := range ents {
			ps.frameBytes += uint64(e.n)
			if l, ok := r.idx[e.h]; ok && live[e.h] && l.pack == p.no && l.off == e.off {
				ps.live = append(ps.live, e)
				ps.liveBytes += uint64(e.n)
			}
		}
		r.mu.Unlock()
		switch {
		case len(ps.live) == 0:
			drop = append(drop, ps)
		case float64(ps.liveBytes) < repackBelow*float64(ps.frameBytes):
			repack = append(repack, ps)
		default:
			st.ChunksKept += len(ps.live)
		}
	}
	var written uint64
	if len(repack) > 0 {
		w := r.NewSession().Writer()
		w.repack = true
		for _, ps := range repack {
			if err := ctx.Err(); err != nil {
				w.Abort()
				return st, err
			}
			data, err := os.ReadFile(r.packPath(ps.id))
			if err != nil {
				w.Abort()
				return st, fmt.Errorf("repack %s: %w", ps.id, err)
			}
			for _, e := range ps.live {
				if e.off+uint64(e.n) > uint64(len(data)) {
					w.Abort()
					return st, fmt.Errorf("repack %s: chunk %s lies past its end (run verify)", ps.id, e.h)
				}
				if err := w.putFrame(e.h, data[e.off:e.off+uint64(e.n)]); err != nil {
					w.Abort()
					return st, fmt.Errorf("repack %s: %w", ps.id, err)
				}
			}
		}
		// The new packs are durable (fsynced, named, directory fsynced)
		// before any old one is removed.
		if err := w.Close(); err != nil {
			return st, fmt.Errorf("repack: %w", err)
		}
		st.PacksWritten, written = w.Packs, w.Bytes
	}
	var freed uint64
	gone := map[uint32]bool{}
	for i, ps := range append(drop, repack...) {
		if err := os.Remove(r.packPath(ps.id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return st, err
		}
		gone[ps.no] = true
		st.PacksRemoved++
		st.ChunksRemoved += len(ps.ents) - len(ps.live)
		freed += uint64(ps.size)
		if i >= len(drop) {
			st.PacksRepacked++
			st.ChunksKept += len(ps.live)
		}
	}
	r.mu.Lock()
	r.dropPacksLocked(gone)
	r.mu.Unlock()

	if r.loose {
		if err := r.gcLoose(ctx, live, &st, &freed); err != nil {
			return st, err
		}
	}

	// Unreadable packs (a damaged trailer) go only when every live chunk
	// is found elsewhere; else verify names the missing ones and the
	// packs stay for whoever wants to salvage them.
	r.mu.Lock()
	missing := false
	for h := range live {
		if _, ok := r.idx[h]; !ok && !(r.loose && r.hasLoose(h)) {
			missing = true
			break
		}
	}
	bad := maps.Clone(r.bad)
	r.mu.Unlock()
	for id := range bad {
		if missing {
			st.PacksUnreadable++
			continue
		}
		p := r.packPath(id)
		info, err := os.Stat(p)
		if err == nil && os.Remove(p) == nil {
			st.PacksRemoved++
			freed += uint64(info.Size())
			r.mu.Lock()
			delete(r.bad, id)
			r.mu.Unlock()
		}
	}
	if freed > written {
		st.BytesRemoved = freed - written
	}
	return st, r.Sync()
}

// gcLoose removes the version 1 chunk files no backup references.
func (r *Repo) gcLoose(ctx context.Context, live map[Hash]bool, st *GCStats, freed *uint64) error {
	for i := 0; i < 256; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		dir := filepath.Join(r.dir, "chunks", fmt.Sprintf("%02x", i))
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			h, err := ParseHash(e.Name())
			if err == nil && live[h] {
				r.mu.Lock()
				_, inPack := r.idx[h]
				r.mu.Unlock()
				if !inPack {
					st.ChunksKept++
					continue
				}
			}
			info, _ := e.Info()
			if err := os.Remove(filepath.Join(dir, e.Name())); err == nil {
				st.ChunksRemoved++
				if info != nil {
					*freed += uint64(info.Size())
				}
			}
		}
	}
	return nil
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
// (all backups when ids is empty; pack by pack, each read whole once) and
// their index files, and reports the damage per backup. progress sees (chunks done, chunks in all).
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
	if err := r.scanPacks(); err != nil {
		return rep, err
	}

	// One unit of work per pack (read whole, each referenced chunk
	// checked), plus one per version 1 chunk file.
	type item struct {
		h Hash
		l loc
	}
	type unit struct {
		pack  string
		items []item
	}
	byPack := map[uint32]*unit{}
	var units []*unit
	r.mu.Lock()
	for _, h := range hashes {
		l, ok := r.idx[h]
		if !ok {
			units = append(units, &unit{items: []item{{h: h}}})
			continue
		}
		u := byPack[l.pack]
		if u == nil {
			u = &unit{pack: r.packs[l.pack].id}
			byPack[l.pack] = u
			units = append(units, u)
		}
		u.items = append(u.items, item{h, l})
	}
	var badPacks []string
	for id, why := range r.bad {
		badPacks = append(badPacks, fmt.Sprintf("pack %s is unreadable: %s", id, why))
	}
	r.mu.Unlock()
	sort.Strings(badPacks)

	var mu sync.Mutex
	bad := map[Hash]string{}
	done := 0
	work := make(chan *unit)
	var wg sync.WaitGroup
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, r.chunkSize)
			for u := range work {
				var data []byte
				var perr error
				if u.pack != "" {
					data, perr = os.ReadFile(r.packPath(u.pack))
				}
				var checked uint64
				errs := make([]error, len(u.items))
				for i, it := range u.items {
					var comp []byte
					switch {
					case u.pack == "":
						var err error
						if comp, err = r.readLoose(it.h); err != nil {
							errs[i] = err
							continue
						}
					case perr != nil:
						errs[i] = fmt.Errorf("chunk %s is missing (pack %s: %v): %w", it.h, u.pack, perr, ErrDamaged)
						continue
					case it.l.off+uint64(it.l.n) > uint64(len(data)):
						errs[i] = fmt.Errorf("chunk %s lies past the end of pack %s: %w", it.h, u.pack, ErrDamaged)
						continue
					default:
						comp = data[it.l.off : it.l.off+uint64(it.l.n)]
					}
					checked += uint64(len(comp))
					_, errs[i] = r.decode(it.h, comp, buf[:0])
				}
				mu.Lock()
				for i, err := range errs {
					if err != nil {
						bad[u.items[i].h] = err.Error()
					}
				}
				done += len(u.items)
				rep.BytesChecked += checked
				if progress != nil {
					progress(done, len(hashes))
				}
				mu.Unlock()
			}
		}()
	}
	var cerr error
	for _, u := range units {
		if cerr = ctx.Err(); cerr != nil {
			break
		}
		work <- u
	}
	close(work)
	wg.Wait()
	if cerr != nil {
		return rep, cerr
	}
	rep.ChunksChecked = len(hashes)
	rep.BadChunks = append(rep.BadChunks, badPacks...)
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

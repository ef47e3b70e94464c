package repo

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

func chunk(t *testing.T, r *Repo) ([]byte, Hash) {
	b := make([]byte, r.ChunkSize())
	rand.Read(b)
	return b, Sum(b)
}

func open(t *testing.T, dir string) *Repo {
	t.Helper()
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// put stores chunks through one writer and returns the bytes it stored.
func put(t *testing.T, r *Repo, chunks ...[]byte) int {
	t.Helper()
	w := r.NewSession().Writer()
	total := 0
	for _, c := range chunks {
		n, err := w.Put(Sum(c), c)
		if err != nil {
			t.Fatal(err)
		}
		total += n
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return total
}

// backup stores a one-disk backup made of chunks and commits it.
func backup(t *testing.T, r *Repo, id, vm string, at time.Time, chunks ...[]byte) Manifest {
	t.Helper()
	idx := Index{}
	size := uint64(0)
	put(t, r, chunks...)
	for _, c := range chunks {
		idx = append(idx, Sum(c))
		size += uint64(len(c))
	}
	d, err := r.WriteIndex(id, "root", idx, size)
	if err != nil {
		t.Fatal(err)
	}
	m := Manifest{ID: id, VM: vm, CreatedAt: at, Mode: "full", Spec: []byte(`{}`), Disks: []Disk{d}}
	if err := r.Durable(m.Disks); err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(m); err != nil {
		t.Fatal(err)
	}
	return m
}

// packFiles lists the repository's pack files.
func packFiles(t *testing.T, r *Repo) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(r.Dir(), "packs", "*", "*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// corrupt flips a byte of the repository's file at off.
func corrupt(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// where says in which pack file and at what offset a chunk lies.
func where(t *testing.T, r *Repo, h Hash) (string, loc) {
	t.Helper()
	l, id, ok, err := r.lookup(h)
	if err != nil || !ok {
		t.Fatalf("chunk %s not in the index (%v)", h, err)
	}
	return r.packPath(id), l
}

func TestChunksDedupAndRoundTrip(t *testing.T) {
	r := open(t, filepath.Join(t.TempDir(), "repo"))
	data, h := chunk(t, r)
	w := r.NewSession().Writer()
	n, err := w.Put(h, data)
	if err != nil || n == 0 {
		t.Fatalf("first put wrote %d bytes, %v", n, err)
	}
	if n, err := w.Put(h, data); err != nil || n != 0 {
		t.Fatalf("second put of the same chunk wrote %d bytes, %v", n, err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if n := put(t, r, data); n != 0 {
		t.Fatalf("a stored chunk was stored again (%d bytes)", n)
	}
	got := make([]byte, len(data))
	if err := r.GetChunk(h, got); err != nil || string(got) != string(data) {
		t.Fatalf("get: %v", err)
	}
	zero := make([]byte, r.ChunkSize())
	if Sum(zero) != Zero {
		t.Fatal("a zero chunk does not hash to Zero")
	}
	if n := put(t, r, zero); n != 0 {
		t.Fatal("a zero chunk was stored")
	}
	// A compressible chunk is stored compressed.
	text := make([]byte, r.ChunkSize())
	for i := range text {
		text[i] = byte('a' + i%7)
	}
	if n := put(t, r, text); n == 0 || n > len(text)/10 {
		t.Fatalf("compressible 64 KiB chunk stored as %d bytes", n)
	}
	if len(packFiles(t, r)) != 2 {
		t.Fatalf("packs: %v", packFiles(t, r))
	}
	// Reopening keeps the chunk size and rebuilds the index.
	r2 := open(t, r.Dir())
	if r2.ChunkSize() != DefaultChunkSize || !r2.HasChunk(h) || !r2.HasChunk(Sum(text)) {
		t.Fatal("reopened repository lost its chunks")
	}
	// A directory that is not a repository is refused.
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "x"), nil, 0o600)
	if _, err := Open(other); err == nil {
		t.Fatal("opened a non-empty directory as a repository")
	}
}

// Many chunks from several writers fill several packs; every chunk reads
// back, from this Repo and from one opened afresh (index from trailers).
func TestPackRoundTripAndReopen(t *testing.T) {
	r := open(t, filepath.Join(t.TempDir(), "repo"))
	const n = 700 // ~2.7 packs of incompressible 64 KiB chunks
	data := make([][]byte, n)
	for i := range data {
		data[i], _ = chunk(t, r)
	}
	s := r.NewSession()
	var wg sync.WaitGroup
	var stored atomic.Int64
	var news atomic.Int64
	for k := 0; k < 3; k++ {
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			w := s.Writer()
			// Each writer puts every chunk: the session stores each once.
			for i := range data {
				c := data[(i+k*n/3)%n]
				m, err := w.Put(Sum(c), c)
				if err != nil {
					t.Error(err)
					return
				}
				if m > 0 {
					news.Add(1)
					stored.Add(int64(m))
				}
			}
			if err := w.Close(); err != nil {
				t.Error(err)
			}
		}(k)
	}
	wg.Wait()
	if news.Load() != n || stored.Load() < n*int64(r.ChunkSize()) {
		t.Fatalf("stored %d chunks, %d bytes; want %d chunks", news.Load(), stored.Load(), n)
	}
	packs := packFiles(t, r)
	if len(packs) < 3 {
		t.Fatalf("%d packs for %d chunks", len(packs), n)
	}
	for _, p := range packs {
		if st, _ := os.Stat(p); st.Size()%align != 0 || st.Size() > packSize+align*64 {
			t.Fatalf("pack %s is %d bytes", p, st.Size())
		}
	}
	check := func(r *Repo) {
		t.Helper()
		got := make([]byte, r.ChunkSize())
		for i, c := range data {
			if err := r.GetChunk(Sum(c), got); err != nil || string(got) != string(c) {
				t.Fatalf("chunk %d: %v", i, err)
			}
		}
	}
	check(r)
	r2 := open(t, r.Dir())
	check(r2)
	if n := put(t, r2, data...); n != 0 {
		t.Fatalf("the reopened repository stored known chunks again (%d bytes)", n)
	}
}

func TestDedupAcrossWritersAndSessions(t *testing.T) {
	r := open(t, filepath.Join(t.TempDir(), "repo"))
	a, ha := chunk(t, r)
	b, hb := chunk(t, r)
	s1, s2 := r.NewSession(), r.NewSession()
	w1, w2, w3 := s1.Writer(), s1.Writer(), s2.Writer()
	if n, _ := w1.Put(ha, a); n == 0 {
		t.Fatal("new chunk not stored")
	}
	// In flight in the same session: not written twice.
	if n, _ := w2.Put(ha, a); n != 0 {
		t.Fatal("a chunk in flight in the session was written again")
	}
	// In flight in another session: written again (that backup may fail).
	if n, _ := w3.Put(ha, a); n == 0 {
		t.Fatal("a chunk in flight in another session was trusted")
	}
	// A writer that fails forgets its chunks in flight: a retry stores them.
	if n, _ := w1.Put(hb, b); n == 0 {
		t.Fatal("new chunk not stored")
	}
	w1.Abort()
	if n, _ := w2.Put(hb, b); n == 0 {
		t.Fatal("a chunk an aborted writer held was not written again")
	}
	for _, w := range []*Writer{w2, w3} {
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// Stored: later sessions deduplicate against the index.
	if n := put(t, r, a, b); n != 0 {
		t.Fatalf("stored chunks written again: %d bytes", n)
	}
	got := make([]byte, r.ChunkSize())
	if err := r.GetChunk(ha, got); err != nil || string(got) != string(a) {
		t.Fatal(err)
	}
	if err := r.GetChunk(hb, got); err != nil || string(got) != string(b) {
		t.Fatal(err)
	}
}

// Another process's packs are found: a miss rescans once; a lock rescans
// (and forgets packs another process's prune removed).
func TestRescan(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	r1 := open(t, dir)
	r2 := open(t, dir)
	a, ha := chunk(t, r1)
	put(t, r2, a)
	got := make([]byte, r1.ChunkSize())
	if err := r1.GetChunk(ha, got); err != nil || string(got) != string(a) {
		t.Fatalf("a chunk another process stored: %v", err)
	}
	if _, err := r2.GC(context.Background()); err != nil {
		t.Fatal(err)
	}
	l, err := r1.Lock(context.Background(), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	l.Unlock()
	if r1.HasChunk(ha) {
		t.Fatal("a chunk another process's prune removed is still known")
	}
	if n := put(t, r1, a); n == 0 {
		t.Fatal("a removed chunk was not stored again")
	}
}

func TestCommitListVerifyGC(t *testing.T) {
	r := open(t, filepath.Join(t.TempDir(), "repo"))
	ctx := context.Background()
	a, _ := chunk(t, r)
	b, _ := chunk(t, r)
	c, hc := chunk(t, r)
	zero := make([]byte, r.ChunkSize())
	now := time.Now().UTC()
	backup(t, r, "vm1@1", "vm1", now.Add(-time.Hour), a, b, zero)
	backup(t, r, "vm1@2", "vm1", now, a, c, zero)
	if err := r.Commit(Manifest{ID: "vm1@2"}); err == nil {
		t.Fatal("committed a backup id twice")
	}
	ms, err := r.List()
	if err != nil || len(ms) != 2 || ms[0].ID != "vm1@1" {
		t.Fatalf("list = %+v, %v", ms, err)
	}
	if ms[1].Disks[0].DataBytes != uint64(2*r.ChunkSize()) {
		t.Fatalf("data bytes %d", ms[1].Disks[0].DataBytes)
	}
	idx, err := r.ReadIndex(ms[1].Disks[0])
	if err != nil || len(idx) != 3 || idx[2] != Zero || idx[1] != hc {
		t.Fatalf("index %v, %v", idx, err)
	}
	rep, err := r.Verify(ctx, nil, nil)
	if err != nil || !rep.OK() || rep.ChunksChecked != 3 {
		t.Fatalf("verify of a good repo: %+v, %v", rep, err)
	}

	// Damage one byte of chunk c in its pack: only the second backup is hurt.
	p, l := where(t, r, hc)
	corrupt(t, p, int64(l.off)+int64(l.n)/2)
	rep, err = r.Verify(ctx, nil, nil)
	if err != nil || rep.OK() || len(rep.Damaged) != 1 || rep.Damaged[0].ID != "vm1@2" || rep.Damaged[0].BadChunks != 1 {
		t.Fatalf("verify after damage: %+v, %v", rep, err)
	}
	if err := r.GetChunk(hc, make([]byte, r.ChunkSize())); err == nil {
		t.Fatal("read a damaged chunk without error")
	}

	// A crashed backup leaves a pack, a temp file and an index; GC takes
	// them, and keeps what the remaining backup needs.
	orphan, ho := chunk(t, r)
	put(t, r, orphan)
	os.WriteFile(filepath.Join(r.Dir(), "tmp", "pack-123"), []byte("x"), 0o600)
	r.WriteIndex("vm1@3", "root", Index{ho}, uint64(len(orphan)))
	if err := r.Delete("vm1@2"); err != nil {
		t.Fatal(err)
	}
	st, err := r.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.ChunksKept != 2 || st.ChunksRemoved != 2 || st.PacksRemoved != 2 || st.TempRemoved != 1 || st.IndexesRemoved != 1 || st.BytesRemoved < uint64(2*r.ChunkSize()) {
		t.Fatalf("gc = %+v", st)
	}
	rep, err = r.Verify(ctx, nil, nil)
	if err != nil || !rep.OK() || rep.Backups != 1 {
		t.Fatalf("verify after gc: %+v, %v", rep, err)
	}
	if len(packFiles(t, r)) != 1 {
		t.Fatalf("packs after gc: %v", packFiles(t, r))
	}
}

// A damaged trailer makes a pack unreadable: its chunks are missing and
// verify names the pack and the backups hurt.
func TestVerifyUnreadablePack(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	r := open(t, dir)
	a, ha := chunk(t, r)
	backup(t, r, "vm1@1", "vm1", time.Now(), a)
	p, _ := where(t, r, ha)
	ents, _, err := readTrailer(p)
	if err != nil || len(ents) != 1 {
		t.Fatalf("trailer: %v %v", ents, err)
	}
	corrupt(t, p, int64(ents[0].n)+1)
	r2 := open(t, dir)
	rep, err := r2.Verify(context.Background(), nil, nil)
	if err != nil || rep.OK() || len(rep.Damaged) != 1 || len(rep.BadChunks) != 2 {
		t.Fatalf("verify with an unreadable pack: %+v, %v", rep, err)
	}
	// GC keeps an unreadable pack while a live chunk is missing.
	gst, err := r2.GC(context.Background())
	if err != nil || gst.PacksUnreadable != 1 || len(packFiles(t, r2)) != 1 {
		t.Fatalf("gc = %+v, %v", gst, err)
	}
}

// A crash mid-backup: a temp pack, a pack cut short (as a filesystem
// without ordering might leave), a complete pack no manifest references,
// an index dir. Earlier backups stay intact, and GC removes the rest.
func TestCrashMidPack(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	r := open(t, dir)
	a, _ := chunk(t, r)
	backup(t, r, "vm1@1", "vm1", time.Now(), a)
	var more [][]byte
	for i := 0; i < 5; i++ {
		c, _ := chunk(t, r)
		more = append(more, c)
	}
	put(t, r, more...)
	packs := packFiles(t, r)
	if len(packs) != 2 {
		t.Fatalf("packs %v", packs)
	}
	whole, _ := os.ReadFile(packs[1])
	half := filepath.Join(dir, "packs", "00", "00"+newPackID()[2:])
	os.WriteFile(half, whole[:len(whole)/2], 0o600)
	os.WriteFile(filepath.Join(dir, "tmp", "pack-99"), whole[:100], 0o600)
	os.MkdirAll(filepath.Join(dir, "index", "vm1@2"), 0o700)

	r2 := open(t, dir) // as after a restart
	rep, err := r2.Verify(context.Background(), nil, nil)
	if err != nil || len(rep.Damaged) != 0 || rep.ChunksChecked != 1 {
		t.Fatalf("verify after a crash: %+v, %v", rep, err)
	}
	st, err := r2.GC(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.PacksRemoved != 2 || st.ChunksKept != 1 || st.ChunksRemoved != 5 || st.TempRemoved != 1 || st.IndexesRemoved != 1 {
		t.Fatalf("gc = %+v", st)
	}
	if rep, err := r2.Verify(context.Background(), nil, nil); err != nil || !rep.OK() {
		t.Fatalf("verify after gc: %+v, %v", rep, err)
	}
	if len(packFiles(t, r2)) != 1 {
		t.Fatalf("packs after gc: %v", packFiles(t, r2))
	}
}

// GC removes dead packs and repacks those mostly dead; live chunks stay
// readable, here and after reopening.
func TestGCRepack(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	r := open(t, dir)
	ctx := context.Background()
	var cs, ds [][]byte
	for i := 0; i < 40; i++ {
		c, _ := chunk(t, r)
		cs = append(cs, c)
	}
	for i := 0; i < 5; i++ {
		d, _ := chunk(t, r)
		ds = append(ds, d)
	}
	now := time.Now()
	backup(t, r, "vm1@1", "vm1", now.Add(-2*time.Hour), cs...)    // pack 1: 40 chunks
	backup(t, r, "vm1@2", "vm1", now.Add(-time.Hour), cs[:10]...) // nothing new
	backup(t, r, "vm1@3", "vm1", now, append(ds, cs[:30]...)...)  // pack 2: 5 chunks
	keep := backup(t, r, "vm2@1", "vm2", now, cs[35:]...)         // nothing new
	if len(packFiles(t, r)) != 2 {
		t.Fatalf("packs: %v", packFiles(t, r))
	}
	if err := r.Delete("vm1@1", "vm1@3"); err != nil {
		t.Fatal(err)
	}
	// Live: cs[:10] and cs[35:] = 15 of pack 1's 40; nothing of pack 2.
	st, err := r.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.PacksRemoved != 2 || st.PacksRepacked != 1 || st.PacksWritten != 1 || st.ChunksKept != 15 || st.ChunksRemoved != 30 ||
		st.BytesRemoved < uint64(30*r.ChunkSize()) {
		t.Fatalf("gc = %+v", st)
	}
	if len(packFiles(t, r)) != 1 {
		t.Fatalf("packs after gc: %v", packFiles(t, r))
	}
	check := func(r *Repo) {
		t.Helper()
		got := make([]byte, r.ChunkSize())
		for _, c := range append(cs[:10:10], cs[35:]...) {
			if err := r.GetChunk(Sum(c), got); err != nil || string(got) != string(c) {
				t.Fatalf("live chunk after repack: %v", err)
			}
		}
		if rep, err := r.Verify(ctx, nil, nil); err != nil || !rep.OK() || rep.ChunksChecked != 15 {
			t.Fatalf("verify after repack: %+v, %v", rep, err)
		}
	}
	check(r)
	check(open(t, dir))
	// A second GC finds nothing to do.
	if st, err := r.GC(ctx); err != nil || st.PacksRemoved != 0 || st.ChunksKept != 15 {
		t.Fatalf("second gc = %+v, %v", st, err)
	}
	_ = keep
}

// A version 1 repository (one file per chunk) is upgraded in place: its
// chunks read, deduplicate and are collected as before; new ones go to packs.
func TestVersion1(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	r := open(t, dir)
	a, ha := chunk(t, r)
	b, hb := chunk(t, r)
	backup(t, r, "vm1@1", "vm1", time.Now().Add(-time.Hour), a)
	backup(t, r, "vm1@2", "vm1", time.Now(), b)
	r.Close()
	// Turn it into what version 1 wrote: chunk files, no packs.
	for _, c := range [][]byte{a, b} {
		h := Sum(c)
		p := filepath.Join(dir, "chunks", h.String()[:2], h.String())
		os.MkdirAll(filepath.Dir(p), 0o700)
		enc, _ := zstd.NewWriter(nil)
		os.WriteFile(p, enc.EncodeAll(c, nil), 0o600)
	}
	os.RemoveAll(filepath.Join(dir, "packs"))
	os.WriteFile(filepath.Join(dir, configFile), []byte(`{"version":1,"chunkSize":65536}`), 0o600)

	r1 := open(t, dir)
	if cfg, _ := os.ReadFile(filepath.Join(dir, configFile)); !strings.Contains(string(cfg), `"version": 2`) {
		t.Fatalf("config after upgrade: %s", cfg)
	}
	got := make([]byte, r1.ChunkSize())
	if err := r1.GetChunk(ha, got); err != nil || string(got) != string(a) {
		t.Fatalf("version 1 chunk: %v", err)
	}
	if n := put(t, r1, a); n != 0 {
		t.Fatal("a version 1 chunk was stored again")
	}
	c, _ := chunk(t, r1)
	backup(t, r1, "vm1@3", "vm1", time.Now(), a, c)
	ctx := context.Background()
	if rep, err := r1.Verify(ctx, nil, nil); err != nil || !rep.OK() || rep.ChunksChecked != 3 {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
	r1.Delete("vm1@2")
	st, err := r1.GC(ctx)
	if err != nil || st.ChunksRemoved != 1 || st.ChunksKept != 2 {
		t.Fatalf("gc = %+v, %v", st, err)
	}
	if r1.HasChunk(hb) {
		t.Fatal("dead version 1 chunk kept")
	}
	if rep, err := r1.Verify(ctx, nil, nil); err != nil || !rep.OK() {
		t.Fatalf("verify after gc: %+v, %v", rep, err)
	}
	os.WriteFile(filepath.Join(dir, configFile), []byte(`{"version":3,"chunkSize":65536}`), 0o600)
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "version 3") {
		t.Fatalf("open of a version 3 repository: %v", err)
	}
}

func TestLock(t *testing.T) {
	r, err := Open(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s1, err := r.Lock(ctx, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := r.Lock(ctx, false, nil)
	if err != nil {
		t.Fatal("two shared locks conflict")
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	waited := false
	if _, err := r.Lock(short, true, func() { waited = true }); err == nil || !waited {
		t.Fatalf("exclusive lock granted while shared ones are held (waited=%v)", waited)
	}
	s1.Unlock()
	s2.Unlock()
	x, err := r.Lock(ctx, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	x.Unlock()
}

func TestPlan(t *testing.T) {
	loc := time.UTC
	at := func(s string) time.Time { v, _ := time.Parse("2006-01-02 15:04", s); return v }
	ms := []Manifest{
		{ID: "a1", VM: "a", CreatedAt: at("2026-11-02 10:00")}, // Monday, week 45
		{ID: "a2", VM: "a", CreatedAt: at("2026-11-09 10:00")}, // week 46
		{ID: "a3", VM: "a", CreatedAt: at("2026-11-10 09:00")},
		{ID: "a4", VM: "a", CreatedAt: at("2026-11-10 18:00")},
		{ID: "a5", VM: "a", CreatedAt: at("2026-11-11 08:00")},
		{ID: "b1", VM: "b", CreatedAt: at("2026-11-01 08:00")},
	}
	keep := func(p Policy) map[string]bool {
		out := map[string]bool{}
		for _, d := range Plan(ms, p, loc) {
			if d.Keep {
				out[d.ID] = true
			}
		}
		return out
	}
	eq := func(got map[string]bool, want ...string) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("kept %v, want %v", got, want)
		}
		for _, w := range want {
			if !got[w] {
				t.Fatalf("kept %v, want %v", got, want)
			}
		}
	}
	eq(keep(Policy{KeepLast: 2}), "a5", "a4", "b1")
	// Daily: the newest of each of the 2 latest days with backups.
	eq(keep(Policy{KeepDaily: 2}), "a5", "a4", "b1")
	eq(keep(Policy{KeepDaily: 3}), "a5", "a4", "a2", "b1")
	// Weekly: newest of week 46 (a5) and of week 45 (a1).
	eq(keep(Policy{KeepWeekly: 2}), "a5", "a1", "b1")
	eq(keep(Policy{KeepLast: 1, KeepWeekly: 2}), "a5", "a1", "b1")
	if !(Policy{}).Empty() {
		t.Fatal("empty policy not empty")
	}
}

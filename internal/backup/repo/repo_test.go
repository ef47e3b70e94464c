package repo

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func chunk(t *testing.T, r *Repo) ([]byte, Hash) {
	b := make([]byte, r.ChunkSize())
	rand.Read(b)
	return b, Sum(b)
}

// backup stores a one-disk backup made of chunks and commits it.
func backup(t *testing.T, r *Repo, id, vm string, at time.Time, chunks ...[]byte) Manifest {
	t.Helper()
	idx := Index{}
	size := uint64(0)
	for _, c := range chunks {
		h := Sum(c)
		if _, err := r.PutChunk(h, c); err != nil {
			t.Fatal(err)
		}
		idx = append(idx, h)
		size += uint64(len(c))
	}
	d, err := r.WriteIndex(id, "root", idx, size)
	if err != nil {
		t.Fatal(err)
	}
	m := Manifest{ID: id, VM: vm, CreatedAt: at, Mode: "full", Spec: []byte(`{}`), Disks: []Disk{d}}
	if err := r.Durable(idx, m.Disks); err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestChunksDedupAndRoundTrip(t *testing.T) {
	r, err := Open(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	data, h := chunk(t, r)
	n, err := r.PutChunk(h, data)
	if err != nil || n == 0 {
		t.Fatalf("first put wrote %d bytes, %v", n, err)
	}
	if n, err := r.PutChunk(h, data); err != nil || n != 0 {
		t.Fatalf("second put of the same chunk wrote %d bytes, %v", n, err)
	}
	got := make([]byte, len(data))
	if err := r.GetChunk(h, got); err != nil || string(got) != string(data) {
		t.Fatalf("get: %v", err)
	}
	zero := make([]byte, r.ChunkSize())
	if Sum(zero) != Zero {
		t.Fatal("a zero chunk does not hash to Zero")
	}
	if n, _ := r.PutChunk(Zero, zero); n != 0 {
		t.Fatal("a zero chunk was stored")
	}
	// A compressible chunk is stored compressed.
	text := make([]byte, r.ChunkSize())
	for i := range text {
		text[i] = byte('a' + i%7)
	}
	if n, _ := r.PutChunk(Sum(text), text); n == 0 || n > len(text)/10 {
		t.Fatalf("compressible 64 KiB chunk stored as %d bytes", n)
	}
	// Reopening keeps the chunk size.
	r2, err := Open(r.Dir())
	if err != nil || r2.ChunkSize() != DefaultChunkSize {
		t.Fatalf("reopen: %v", err)
	}
	// A directory that is not a repository is refused.
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "x"), nil, 0o600)
	if _, err := Open(other); err == nil {
		t.Fatal("opened a non-empty directory as a repository")
	}
}

func TestCommitListVerifyGC(t *testing.T) {
	r, err := Open(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
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

	// Damage chunk c: only the second backup is hurt.
	if err := os.WriteFile(r.chunkPath(hc), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err = r.Verify(ctx, nil, nil)
	if err != nil || rep.OK() || len(rep.Damaged) != 1 || rep.Damaged[0].ID != "vm1@2" || rep.Damaged[0].BadChunks != 1 {
		t.Fatalf("verify after damage: %+v, %v", rep, err)
	}
	if err := r.GetChunk(hc, make([]byte, r.ChunkSize())); err == nil {
		t.Fatal("read a damaged chunk without error")
	}

	// A crashed backup leaves a chunk, a temp file and an index; GC takes
	// them, and keeps what the remaining backup needs.
	orphan, ho := chunk(t, r)
	r.PutChunk(ho, orphan)
	os.WriteFile(filepath.Join(r.Dir(), "tmp", "chunk-123"), []byte("x"), 0o600)
	r.WriteIndex("vm1@3", "root", Index{ho}, uint64(len(orphan)))
	if err := r.Delete("vm1@2"); err != nil {
		t.Fatal(err)
	}
	st, err := r.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.ChunksKept != 2 || st.ChunksRemoved != 2 || st.TempRemoved != 1 || st.IndexesRemoved != 1 {
		t.Fatalf("gc = %+v", st)
	}
	rep, err = r.Verify(ctx, nil, nil)
	if err != nil || !rep.OK() || rep.Backups != 1 {
		t.Fatalf("verify after gc: %+v, %v", rep, err)
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

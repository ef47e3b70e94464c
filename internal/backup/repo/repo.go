// Package repo is godwit's backup repository: a directory of
// content-addressed, zstd-compressed, fixed-size chunks (SHA-256 of the
// plain bytes), deduplicated across backups and VMs and stored many to a
// pack file, and of backup manifests that list, per disk, the chunk of
// every offset. Every backup is logically full: restoring one needs only
// its own manifest.
//
// Layout, version 2 (docs/backup.md has the why):
//
//	godwit-repo.json           version and chunk size
//	lock                       flock: backups, verify, restore share it; prune holds it alone
//	packs/ab/<packid>          zstd frames back to back, a trailer (hash, offset, length per chunk), a footer
//	chunks/ab/abcdef...        version 1 only: one zstd frame per chunk, named by its plain SHA-256
//	index/<backup>/<disk>.idx  zstd of the disk's chunk hashes, 32 bytes per chunk
//	backups/<backup>.json      the manifest, written last: a backup exists once it does
//	tmp/                       files being written; renamed into place when complete
//
// The Repo keeps an in-memory index chunk -> (pack, offset, length), built
// at Open from the packs' trailers and refreshed when a lock is taken.
//
// Writes are atomic: a pack is written whole to an unnamed file (O_TMPFILE,
// O_DIRECT), fsynced, linked under its name and its directory fsynced
// before its chunks enter the index; index files appear by rename and are
// made durable (Durable) before the manifest is renamed into place; nothing
// a manifest references is ever rewritten (prune's repacking copies live
// chunks to new packs, durable before the old pack goes). A crash leaves at
// most unreferenced packs and temp files, which prune removes.
//
// The package knows nothing about libvirt, VMs or NBD.
package repo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// DefaultChunkSize is 64 KiB: QEMU's dirty bitmaps have a 64 KiB
// granularity, so a changed cluster is one changed chunk (see docs/backup.md).
const DefaultChunkSize = 64 << 10

const (
	configFile = "godwit-repo.json"
	version    = 2
)

// Hash is a chunk's SHA-256. The zero Hash stands for a chunk of zeroes,
// which is never stored.
type Hash [32]byte

// Zero is the Hash of an all-zero chunk.
var Zero Hash

func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// ParseHash reads a hex hash.
func ParseHash(s string) (Hash, error) {
	var h Hash
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(h) {
		return h, fmt.Errorf("not a SHA-256: %q", s)
	}
	copy(h[:], b)
	return h, nil
}

// Sum hashes a chunk; all-zero data gives Zero.
func Sum(data []byte) Hash {
	if isZero(data) {
		return Zero
	}
	return sha256.Sum256(data)
}

func isZero(b []byte) bool {
	for len(b) >= 8 {
		if b[0]|b[1]|b[2]|b[3]|b[4]|b[5]|b[6]|b[7] != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

type config struct {
	Version   int       `json:"version"`
	ChunkSize int       `json:"chunkSize"`
	Created   time.Time `json:"created"`
}

// Repo is an open repository. Its methods are safe for concurrent use.
type Repo struct {
	dir       string
	chunkSize int
	enc       sync.Pool
	bufs      sync.Pool // *[]byte for compressed chunks
	dec       *zstd.Decoder
	noTmpfile atomic.Bool
	noDirect  atomic.Bool
	// loose: the repository was made by version 1 and may hold chunk
	// files under chunks/, read (and collected) beside the packs.
	loose bool

	// scanMu serialises pack scans; mu guards the rest.
	scanMu  sync.Mutex
	mu      sync.Mutex
	idx     map[Hash]loc      // chunk -> where it lies
	packs   []packInfo        // by pack number
	byID    map[string]uint32 // pack id -> number
	pending map[Hash]*Session // chunks buffered by a writer, not yet in a pack
	bad     map[string]string // unreadable packs: id -> why
	gen     uint64            // packs added
	scans   uint64            // scans finished

	beforeWrite atomic.Pointer[func(kind, path string) error]
}

// BeforeWrite sets f to be asked before each file the repository writes:
// kind is "pack", "index" or "manifest", path where it goes. An error f
// returns fails that write as the filesystem would (syscall.ENOSPC: the
// disk is full); f may also block, as a process frozen there. Tests use
// it; nil (the default) asks nothing.
func (r *Repo) BeforeWrite(f func(kind, path string) error) {
	if f == nil {
		r.beforeWrite.Store(nil)
		return
	}
	r.beforeWrite.Store(&f)
}

// mayWrite asks the BeforeWrite hook, if any.
func (r *Repo) mayWrite(kind, path string) error {
	if f := r.beforeWrite.Load(); f != nil {
		return (*f)(kind, path)
	}
	return nil
}

// Open opens the repository at dir, making it when it does not exist, and
// builds its chunk index from the packs' trailers. A version 1 repository
// (one file per chunk) is upgraded in place to version 2: its chunk files
// stay and are read as before, new chunks go to packs.
func Open(dir string) (*Repo, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("backup repository %s: %w", dir, err)
	}
	cfgPath := filepath.Join(dir, configFile)
	var cfg config
	b, err := os.ReadFile(cfgPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		entries, _ := os.ReadDir(dir)
		if len(entries) > 0 {
			return nil, fmt.Errorf("backup repository %s: the directory is not empty and holds no %s (not a godwit repository)", dir, configFile)
		}
		cfg = config{Version: version, ChunkSize: DefaultChunkSize, Created: time.Now().UTC()}
		if err := makeDirs(dir); err != nil {
			return nil, err
		}
		b, _ := json.MarshalIndent(cfg, "", "  ")
		if err := writeAtomic(filepath.Join(dir, "tmp"), cfgPath, b); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("backup repository %s: %w", dir, err)
	default:
		if err := json.Unmarshal(b, &cfg); err != nil {
			return nil, fmt.Errorf("backup repository %s: %s: %w", dir, configFile, err)
		}
		if (cfg.Version != 1 && cfg.Version != version) || cfg.ChunkSize <= 0 {
			return nil, fmt.Errorf("backup repository %s: version %d, chunk size %d: not one this godwit reads (it reads versions 1 and %d)", dir, cfg.Version, cfg.ChunkSize, version)
		}
		if cfg.Version == 1 {
			if err := makeDirs(dir); err != nil {
				return nil, err
			}
			cfg.Version = version
			b, _ := json.MarshalIndent(cfg, "", "  ")
			if err := writeAtomic(filepath.Join(dir, "tmp"), cfgPath, b); err != nil {
				return nil, fmt.Errorf("backup repository %s: upgrade to version %d: %w", dir, version, err)
			}
		}
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0))
	if err != nil {
		return nil, err
	}
	r := &Repo{dir: dir, chunkSize: cfg.ChunkSize, dec: dec,
		idx: map[Hash]loc{}, byID: map[string]uint32{}, pending: map[Hash]*Session{}}
	if st, err := os.Stat(filepath.Join(dir, "chunks")); err == nil && st.IsDir() {
		r.loose = true
	}
	r.bufs.New = func() any { b := make([]byte, 0, cfg.ChunkSize+1024); return &b }
	r.enc.New = func() any {
		// No frame checksum: every chunk is checked against its SHA-256
		// on reading, and the checksum cost a third of compressing.
		e, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(false))
		return e
	}
	if err := r.scanPacks(); err != nil {
		dec.Close()
		return nil, err
	}
	return r, nil
}

// makeDirs makes a repository's directories (those of version 2).
func makeDirs(dir string) error {
	for _, sub := range []string{"packs", "index", "backups", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return err
		}
	}
	for i := 0; i < 256; i++ {
		if err := os.MkdirAll(filepath.Join(dir, "packs", fmt.Sprintf("%02x", i)), 0o700); err != nil {
			return err
		}
	}
	return nil
}

// Dir is the repository's directory.
func (r *Repo) Dir() string { return r.dir }

// ChunkSize is the size of every chunk but a disk's last.
func (r *Repo) ChunkSize() int { return r.chunkSize }

// Close releases the decoder.
func (r *Repo) Close() { r.dec.Close() }

func (r *Repo) chunkPath(h Hash) string {
	s := h.String()
	return filepath.Join(r.dir, "chunks", s[:2], s)
}

// HasChunk reports whether a chunk is stored.
func (r *Repo) HasChunk(h Hash) bool {
	if h == Zero {
		return true
	}
	r.mu.Lock()
	_, ok := r.idx[h]
	r.mu.Unlock()
	return ok || (r.loose && r.hasLoose(h))
}

// hasLoose reports whether a version 1 chunk file holds h (an empty file,
// as a crash may leave, does not count).
func (r *Repo) hasLoose(h Hash) bool {
	st, err := os.Stat(r.chunkPath(h))
	return err == nil && st.Size() > 0
}

// ErrDamaged marks a chunk that is missing or does not hash to its name.
var ErrDamaged = errors.New("damaged")

// GetChunk reads a chunk into dst (len(dst) bytes: the chunk's size) and
// checks its hash.
func (r *Repo) GetChunk(h Hash, dst []byte) error {
	if h == Zero {
		clear(dst)
		return nil
	}
	buf := r.bufs.Get().(*[]byte)
	defer r.bufs.Put(buf)
	comp, err := r.readChunk(h, *buf)
	if err != nil {
		return err
	}
	*buf = comp[:0]
	plain, err := r.decode(h, comp, dst[:0])
	if err != nil {
		return err
	}
	if len(plain) != len(dst) {
		return errMismatch(h)
	}
	if &plain[0] != &dst[0] {
		copy(dst, plain)
	}
	return nil
}

// decode decompresses a chunk's frame (appending to buf) and checks the
// result against the chunk's hash.
func (r *Repo) decode(h Hash, comp, buf []byte) ([]byte, error) {
	plain, err := r.dec.DecodeAll(comp, buf)
	if err != nil {
		return nil, fmt.Errorf("chunk %s does not decompress (%v): %w", h, err, ErrDamaged)
	}
	if sha256.Sum256(plain) != [32]byte(h) {
		return nil, errMismatch(h)
	}
	return plain, nil
}

func errMismatch(h Hash) error {
	return fmt.Errorf("chunk %s does not match its hash: %w", h, ErrDamaged)
}

// readChunk reads a chunk's compressed frame: from its pack, else from a
// version 1 chunk file.
func (r *Repo) readChunk(h Hash, buf []byte) ([]byte, error) {
	l, id, ok, err := r.lookup(h)
	if err != nil {
		return nil, err
	}
	if ok {
		comp, err := r.readFrame(id, l, buf)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("chunk %s is missing (pack %s is gone): %w", h, id, ErrDamaged)
		}
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("chunk %s lies past the end of pack %s: %w", h, id, ErrDamaged)
		}
		return comp, err
	}
	return r.readLoose(h)
}

// readLoose reads a version 1 chunk file.
func (r *Repo) readLoose(h Hash) ([]byte, error) {
	if r.loose {
		comp, err := os.ReadFile(r.chunkPath(h))
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			return comp, err
		}
	}
	return nil, fmt.Errorf("chunk %s is missing: %w", h, ErrDamaged)
}

// Sync flushes the repository's filesystem (every chunk written so far).
func (r *Repo) Sync() error {
	f, err := os.Open(r.dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("sync backup repository: %w", err)
	}
	return nil
}

func syncfs(fd int) error { return unix.Syncfs(fd) }

// writeAtomic writes b to path through a temp file in tmpDir, fsyncs it,
// renames it into place and fsyncs the directory.
func writeAtomic(tmpDir, path string, b []byte) error {
	f, err := os.CreateTemp(tmpDir, "w-")
	if err != nil {
		return err
	}
	_, werr := f.Write(b)
	if werr == nil {
		werr = f.Sync()
	}
	if err := errors.Join(werr, f.Close()); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return err
	}
	return syncDir(filepath.Dir(path))
}

// Lock is a held repository lock.
type Lock struct{ f *os.File }

// Unlock releases it.
func (l *Lock) Unlock() {
	if l != nil && l.f != nil {
		_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
		l.f.Close()
		l.f = nil
	}
}

// Lock takes the repository lock: shared (backups, verify, restore run side
// by side) or exclusive (prune). It waits for ctx, calling waiting once
// when it has to wait. The kernel drops the lock of a process that dies.
func (r *Repo) Lock(ctx context.Context, exclusive bool, waiting func()) (*Lock, error) {
	f, err := os.OpenFile(filepath.Join(r.dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	told := false
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			// Another process may have written or pruned packs
			// while the lock was not held.
			l := &Lock{f}
			if err := r.scanPacks(); err != nil {
				l.Unlock()
				return nil, err
			}
			return l, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock backup repository: %w", err)
		}
		if !told && waiting != nil {
			waiting()
			told = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for the backup repository lock: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Disk is one disk of a backup.
type Disk struct {
	Name      string `json:"name"`
	Target    string `json:"target"`
	Size      uint64 `json:"size"`
	ChunkSize int    `json:"chunkSize"`
	Chunks    int    `json:"chunks"`
	// Index is the index file, relative to the repository.
	Index       string `json:"index"`
	IndexSHA256 string `json:"indexSha256"`
	// DataBytes counts the bytes of non-zero chunks.
	DataBytes uint64 `json:"dataBytes"`
}

// Stats say what one backup cost.
type Stats struct {
	BytesRead    uint64  `json:"bytesRead"`
	BytesStored  uint64  `json:"bytesStored"`
	ChunksNew    int     `json:"chunksNew"`
	ChunksReused int     `json:"chunksReused"`
	Seconds      float64 `json:"seconds"`
	// CommitSeconds is the part of Seconds spent making the backup durable.
	CommitSeconds float64 `json:"commitSeconds,omitempty"`
}

// Manifest is one backup: what it holds and how it was made.
type Manifest struct {
	ID        string    `json:"id"`
	VM        string    `json:"vm"`
	CreatedAt time.Time `json:"createdAt"`
	// Mode is "full" or "incremental" (how it was read; either restores alone).
	Mode       string `json:"mode"`
	Parent     string `json:"parent,omitempty"`
	Checkpoint string `json:"checkpoint,omitempty"`
	// Note says why a backup is full when an incremental was possible.
	Note  string          `json:"note,omitempty"`
	Host  string          `json:"host,omitempty"`
	Spec  json.RawMessage `json:"spec"`
	Disks []Disk          `json:"disks"`
	Stats Stats           `json:"stats"`
}

func (r *Repo) manifestPath(id string) string {
	return filepath.Join(r.dir, "backups", id+".json")
}

// ValidID checks a backup id: it becomes a file name.
func ValidID(id string) error {
	if id == "" || len(id) > 128 || strings.ContainsAny(id, "/\\\x00") || strings.HasPrefix(id, ".") {
		return fmt.Errorf("backup id %q is not valid", id)
	}
	return nil
}

// Exists reports whether a backup is committed.
func (r *Repo) Exists(id string) bool {
	_, err := os.Stat(r.manifestPath(id))
	return err == nil
}

// ErrNotFound: no backup of that id.
var ErrNotFound = errors.New("no such backup")

// Manifest reads one backup's manifest.
func (r *Repo) Manifest(id string) (Manifest, error) {
	var m Manifest
	if err := ValidID(id); err != nil {
		return m, fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	b, err := os.ReadFile(r.manifestPath(id))
	if errors.Is(err, fs.ErrNotExist) {
		return m, fmt.Errorf("backup %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("backup %s: manifest: %w", id, err)
	}
	return m, nil
}

// List returns every committed backup, oldest first.
func (r *Repo) List() ([]Manifest, error) {
	entries, err := os.ReadDir(filepath.Join(r.dir, "backups"))
	if err != nil {
		return nil, err
	}
	var out []Manifest
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || e.IsDir() {
			continue
		}
		m, err := r.Manifest(id)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Index is a disk's chunk list being built or read.
type Index []Hash

// WriteIndex stores a disk's index for backup id and returns its Disk
// entry fields (Index, IndexSHA256, Chunks, DataBytes).
func (r *Repo) WriteIndex(id, disk string, idx Index, size uint64) (Disk, error) {
	raw := make([]byte, 0, len(idx)*32)
	var data uint64
	for i, h := range idx {
		raw = append(raw, h[:]...)
		if h != Zero {
			data += uint64(ChunkLen(i, r.chunkSize, size))
		}
	}
	enc := r.enc.Get().(*zstd.Encoder)
	comp := enc.EncodeAll(raw, nil)
	r.enc.Put(enc)
	rel := filepath.Join("index", id, disk+".idx")
	if err := r.mayWrite("index", filepath.Join(r.dir, rel)); err != nil {
		return Disk{}, err
	}
	if err := os.MkdirAll(filepath.Join(r.dir, "index", id), 0o700); err != nil {
		return Disk{}, err
	}
	f, err := os.CreateTemp(filepath.Join(r.dir, "tmp"), "idx-")
	if err != nil {
		return Disk{}, err
	}
	_, werr := f.Write(comp)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(f.Name())
		return Disk{}, err
	}
	if err := os.Rename(f.Name(), filepath.Join(r.dir, rel)); err != nil {
		os.Remove(f.Name())
		return Disk{}, err
	}
	sum := sha256.Sum256(comp)
	return Disk{Name: disk, Size: size, ChunkSize: r.chunkSize, Chunks: len(idx), Index: rel,
		IndexSHA256: hex.EncodeToString(sum[:]), DataBytes: data}, nil
}

// ReadIndex reads and checks a disk's index.
func (r *Repo) ReadIndex(d Disk) (Index, error) {
	comp, err := os.ReadFile(filepath.Join(r.dir, d.Index))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("index %s is missing: %w", d.Index, ErrDamaged)
	}
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(comp)
	if hex.EncodeToString(sum[:]) != d.IndexSHA256 {
		return nil, fmt.Errorf("index %s does not match its hash: %w", d.Index, ErrDamaged)
	}
	raw, err := r.dec.DecodeAll(comp, nil)
	if err != nil || len(raw) != d.Chunks*32 {
		return nil, fmt.Errorf("index %s is malformed: %w", d.Index, ErrDamaged)
	}
	idx := make(Index, d.Chunks)
	for i := range idx {
		copy(idx[i][:], raw[i*32:])
	}
	return idx, nil
}

// Durable makes a backup's index files durable (each fsynced, then their
// directories) before its manifest is committed. Its chunks are durable
// already: a pack is fsynced before it is named and its directory fsynced
// after, and only then do its chunks enter the index that deduplicates.
func (r *Repo) Durable(disks []Disk) error {
	dirs := map[string]bool{}
	var files []string
	for _, d := range disks {
		p := filepath.Join(r.dir, d.Index)
		files = append(files, p)
		dirs[filepath.Dir(p)] = true
		dirs[filepath.Join(r.dir, "index")] = true
	}
	for d := range dirs {
		files = append(files, d)
	}
	for _, p := range files {
		f, err := os.Open(p)
		if err == nil {
			err = f.Sync()
			f.Close()
		}
		if err != nil {
			return fmt.Errorf("sync backup repository: %w", err)
		}
	}
	return nil
}

// Commit makes a backup exist by writing its manifest atomically. Call it
// last, after Durable.
func (r *Repo) Commit(m Manifest) error {
	if err := ValidID(m.ID); err != nil {
		return err
	}
	if r.Exists(m.ID) {
		return fmt.Errorf("backup %s exists already", m.ID)
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := r.mayWrite("manifest", r.manifestPath(m.ID)); err != nil {
		return err
	}
	return writeAtomic(filepath.Join(r.dir, "tmp"), r.manifestPath(m.ID), b)
}

// ChunkLen is the length of chunk i of a disk of size bytes.
func ChunkLen(i, chunkSize int, size uint64) int {
	off := uint64(i) * uint64(chunkSize)
	if off+uint64(chunkSize) > size {
		return int(size - off)
	}
	return chunkSize
}

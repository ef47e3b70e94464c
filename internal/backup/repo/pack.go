package repo

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"unsafe"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// A pack file holds many chunks: their zstd frames back to back, then a
// trailer of one entry per chunk (SHA-256, offset, length), zero padding
// up to a 4 KiB multiple, and a fixed footer at the very end:
//
//	frames | trailer (entrySize each) | zeroes | footer (footerSize)
//
//	footer: magic (8) | entries uint32 | 0 uint32 | trailer offset uint64 | SHA-256 of the trailer (32)
//
// All integers are little-endian. A pack is self-describing: its last
// footerSize bytes lead to its trailer, so the repository's chunk index is
// rebuilt from two small reads per pack.
const (
	packMagic  = "GWPACK\x00\x01"
	footerSize = 56
	entrySize  = 44
	// packSize bounds a pack's frames: 8 MiB is ~128 incompressible
	// 64 KiB chunks, which makes the per-pack costs (an fsync, a link, a
	// directory fsync, a trailer read at open) small against the data (a
	// full 2 GiB backup writes ~260 packs), and keeps a backup's buffers
	// small: six writers, each filling one buffer while the other is
	// written, hold 6 x 2 x 8 MiB. It also bounds what prune copies to
	// reclaim a pack that is mostly dead. (16 MiB packs, double-buffered,
	// measured no faster and take twice the memory.)
	packSize = 8 << 20
	// maxPackEntries bounds a pack's trailer (176 KiB) when chunks compress
	// well.
	maxPackEntries = 4096
	// align is the O_DIRECT alignment of the pack buffer and its length.
	align = 4096
)

// entry is one chunk in a pack.
type entry struct {
	h   Hash
	off uint64
	n   uint32
}

// loc is where the index finds a chunk: pack number (into Repo.packs),
// offset and length of its frame.
type loc struct {
	pack uint32
	n    uint32
	off  uint64
}

// packInfo is one known pack.
type packInfo struct {
	id   string
	size int64
	gone bool
	gen  uint64 // the add counter when it was added
}

func (r *Repo) packPath(id string) string {
	return filepath.Join(r.dir, "packs", id[:2], id)
}

func newPackID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

func validPackID(s string) bool {
	if len(s) != 32 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// appendTrailer appends the trailer, padding and footer to frames (which
// must have room: see newPackBuf) and returns the whole pack.
func appendTrailer(frames []byte, ents []entry) []byte {
	toff := uint64(len(frames))
	b := frames
	for _, e := range ents {
		b = append(b, e.h[:]...)
		b = binary.LittleEndian.AppendUint64(b, e.off)
		b = binary.LittleEndian.AppendUint32(b, e.n)
	}
	sum := sha256.Sum256(b[toff:])
	for (len(b)+footerSize)%align != 0 {
		b = append(b, 0)
	}
	b = append(b, packMagic...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(ents)))
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = binary.LittleEndian.AppendUint64(b, toff)
	b = append(b, sum[:]...)
	return b
}

// readTrailer reads a pack's entries from its footer and trailer.
func readTrailer(path string) ([]entry, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	size := st.Size()
	if size < footerSize {
		return nil, size, errors.New("shorter than its footer")
	}
	foot := make([]byte, footerSize)
	if _, err := f.ReadAt(foot, size-footerSize); err != nil {
		return nil, size, err
	}
	if string(foot[:8]) != packMagic {
		return nil, size, errors.New("no pack footer at its end")
	}
	count := uint64(binary.LittleEndian.Uint32(foot[8:]))
	toff := binary.LittleEndian.Uint64(foot[16:])
	if toff > uint64(size) || count*entrySize > uint64(size)-footerSize-toff {
		return nil, size, errors.New("its footer points outside the file")
	}
	tr := make([]byte, count*entrySize)
	if _, err := f.ReadAt(tr, int64(toff)); err != nil && !errors.Is(err, io.EOF) {
		return nil, size, err
	}
	if sha256.Sum256(tr) != [32]byte(foot[24:56]) {
		return nil, size, errors.New("its trailer does not match its checksum")
	}
	ents := make([]entry, count)
	for i := range ents {
		e := tr[i*entrySize:]
		copy(ents[i].h[:], e[:32])
		ents[i].off = binary.LittleEndian.Uint64(e[32:])
		ents[i].n = binary.LittleEndian.Uint32(e[40:])
		if ents[i].off+uint64(ents[i].n) > toff {
			return nil, size, fmt.Errorf("entry %d lies outside the frames", i)
		}
	}
	return ents, size, nil
}

// addPackLocked records a pack and its entries in the index; with
// overwrite, its entries replace the index's (repacking moves chunks).
// Hold r.mu.
func (r *Repo) addPackLocked(id string, size int64, ents []entry, overwrite bool) {
	no, ok := r.byID[id]
	if !ok {
		r.gen++
		no = uint32(len(r.packs))
		r.packs = append(r.packs, packInfo{id: id, size: size, gen: r.gen})
		r.byID[id] = no
	}
	for _, e := range ents {
		if _, ok := r.idx[e.h]; ok && !overwrite {
			continue
		}
		r.idx[e.h] = loc{pack: no, off: e.off, n: e.n}
	}
}

// dropPacksLocked forgets packs and the index entries that point into
// them. Hold r.mu.
func (r *Repo) dropPacksLocked(nos map[uint32]bool) {
	if len(nos) == 0 {
		return
	}
	for no := range nos {
		r.packs[no].gone = true
		delete(r.byID, r.packs[no].id)
	}
	for h, l := range r.idx {
		if nos[l.pack] {
			delete(r.idx, h)
		}
	}
}

// scanPacks brings the index up to date with the packs on disk: it reads
// the trailers of packs it does not know (written by another process) and
// forgets packs that are gone (removed by another process's prune).
func (r *Repo) scanPacks() error {
	r.scanMu.Lock()
	defer r.scanMu.Unlock()
	r.mu.Lock()
	startGen := r.gen
	r.mu.Unlock()
	type found struct {
		id   string
		size int64
		ents []entry
	}
	var add []found
	seen := map[string]bool{}
	bad := map[string]string{}
	for i := 0; i < 256; i++ {
		dir := filepath.Join(r.dir, "packs", fmt.Sprintf("%02x", i))
		des, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("backup repository: %w", err)
		}
		for _, de := range des {
			id := de.Name()
			if !validPackID(id) || id[:2] != filepath.Base(dir) {
				continue
			}
			seen[id] = true
			r.mu.Lock()
			_, known := r.byID[id]
			r.mu.Unlock()
			if known {
				continue
			}
			ents, size, err := readTrailer(filepath.Join(dir, id))
			if err != nil {
				if !errors.Is(err, fs.ErrNotExist) {
					bad[id] = err.Error()
				}
				continue
			}
			add = append(add, found{id, size, ents})
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	gone := map[uint32]bool{}
	for no, p := range r.packs {
		// A pack added while this scan ran may be missing from the
		// directories it read already: only older ones can be gone.
		if !p.gone && p.gen <= startGen && !seen[p.id] {
			gone[uint32(no)] = true
		}
	}
	r.dropPacksLocked(gone)
	for _, f := range add {
		r.addPackLocked(f.id, f.size, f.ents, false)
	}
	r.bad = bad
	r.scans++
	return nil
}

// lookup finds a chunk in the index; on a miss it rescans the packs once
// (another process may have written the chunk since) unless a scan ran
// since the miss.
func (r *Repo) lookup(h Hash) (loc, string, bool, error) {
	r.mu.Lock()
	l, ok := r.idx[h]
	scans := r.scans
	var id string
	if ok {
		id = r.packs[l.pack].id
	}
	r.mu.Unlock()
	if ok {
		return l, id, true, nil
	}
	r.mu.Lock()
	rescan := r.scans == scans
	r.mu.Unlock()
	if rescan {
		if err := r.scanPacks(); err != nil {
			return loc{}, "", false, err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if l, ok = r.idx[h]; ok {
		id = r.packs[l.pack].id
	}
	return l, id, ok, nil
}

// readFrame reads a chunk's compressed frame from its pack.
func (r *Repo) readFrame(id string, l loc, buf []byte) ([]byte, error) {
	f, err := os.Open(r.packPath(id))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if cap(buf) < int(l.n) {
		buf = make([]byte, l.n)
	}
	buf = buf[:l.n]
	if _, err := f.ReadAt(buf, int64(l.off)); err != nil {
		return nil, err
	}
	return buf, nil
}

// Session is one backup's chunk writes. Its writers deduplicate against
// the repository and against each other's chunks in flight; chunks in
// flight in another session are written again rather than trusted (that
// backup may fail and never store them).
type Session struct {
	r *Repo
}

// NewSession starts a backup's writes.
func (r *Repo) NewSession() *Session { return &Session{r: r} }

// Writer appends chunks to packs of its own and writes each pack whole
// once full, in the background while it fills the next one (two buffers).
// It is not safe for concurrent use: give each goroutine one. Close writes
// the last pack; Abort drops it.
type Writer struct {
	s      *Session
	repack bool
	mem    []byte // aligned pack buffer being filled
	buf    []byte // mem[:frames so far]
	ents   []entry
	spare  []byte  // the other buffer, once a pack was handed off
	spareE []entry // the other entry list
	// inflight says when the pack being written in the background is
	// done (nil when none is).
	inflight chan flushResult
	err      error
	// Packs and Bytes count the packs this writer wrote and their size.
	Packs int
	Bytes uint64
}

type flushResult struct {
	err  error
	size int
}

var packBufs sync.Pool

// newPackBuf returns a 4 KiB-aligned buffer with room for a full pack:
// frames up to packSize plus one chunk's worst case, the largest trailer,
// padding and footer.
func newPackBuf() []byte {
	if b, ok := packBufs.Get().(*[]byte); ok {
		return *b
	}
	n := packSize + 1<<20 + maxPackEntries*entrySize + footerSize + align
	raw := make([]byte, n+align)
	skip := (align - int(uintptr(unsafe.Pointer(&raw[0]))%align)) % align
	return raw[skip : skip+n : skip+n]
}

// Writer makes a writer for one goroutine of the session.
func (s *Session) Writer() *Writer {
	mem := newPackBuf()
	return &Writer{s: s, mem: mem, buf: mem[:0]}
}

// frameMax bounds a chunk's zstd frame (its raw-block worst case and then
// some).
func frameMax(n int) int { return n + n/128 + 1024 }

// Put stores a chunk of hash h unless the repository has it or the session
// is writing it, and returns the compressed bytes it added (0 when
// deduplicated). The chunk is durable once the writer wrote its pack
// (when full, or at Close).
func (w *Writer) Put(h Hash, data []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if h == Zero {
		return 0, nil
	}
	r := w.s.r
	if r.loose && r.hasLoose(h) {
		return 0, nil
	}
	r.mu.Lock()
	_, have := r.idx[h]
	owner, inFlight := r.pending[h]
	if inFlight && owner == w.s {
		have = true
	}
	if !have && !inFlight {
		r.pending[h] = w.s
	}
	r.mu.Unlock()
	if have {
		return 0, nil
	}
	if len(w.ents) >= maxPackEntries || len(w.buf)+frameMax(len(data)) > packSize {
		if err := w.flush(false); err != nil {
			return 0, err
		}
	}
	if frameMax(len(data)) > cap(w.buf)-len(w.buf)-maxPackEntries*entrySize-footerSize-align {
		return 0, w.fail(fmt.Errorf("write chunk %s: %d bytes do not fit a pack", h, len(data)))
	}
	start := len(w.buf)
	enc := r.enc.Get().(*zstd.Encoder)
	w.buf = enc.EncodeAll(data, w.buf)
	r.enc.Put(enc)
	n := len(w.buf) - start
	w.ents = append(w.ents, entry{h: h, off: uint64(start), n: uint32(n)})
	return n, nil
}

// putFrame appends a chunk's compressed frame as it is (repacking).
func (w *Writer) putFrame(h Hash, frame []byte) error {
	if w.err != nil {
		return w.err
	}
	if len(w.ents) >= maxPackEntries || len(w.buf)+len(frame) > packSize {
		if err := w.flush(false); err != nil {
			return err
		}
	}
	start := len(w.buf)
	w.buf = append(w.buf, frame...)
	w.ents = append(w.ents, entry{h: h, off: uint64(start), n: uint32(len(frame))})
	return nil
}

// fail forgets the writer's chunks in flight (a later backup writes them)
// and makes every later call fail with err.
func (w *Writer) fail(err error) error {
	if w.err == nil {
		w.err = err
	}
	w.forget(w.ents)
	w.ents = w.ents[:0]
	w.buf = w.mem[:0]
	return w.err
}

// forget drops the session's claim on chunks that were not stored.
func (w *Writer) forget(ents []entry) {
	w.s.r.mu.Lock()
	w.unclaimLocked(ents)
	w.s.r.mu.Unlock()
}

// unclaimLocked drops the session's claim on chunks: stored, they are in
// the index now; not stored, a later backup writes them. Hold r.mu.
func (w *Writer) unclaimLocked(ents []entry) {
	for _, e := range ents {
		if w.s.r.pending[e.h] == w.s {
			delete(w.s.r.pending, e.h)
		}
	}
}

// wait waits for the pack being written in the background.
func (w *Writer) wait() error {
	if w.inflight == nil {
		return w.err
	}
	res := <-w.inflight
	w.inflight = nil
	if res.err != nil {
		return w.fail(res.err)
	}
	w.Packs++
	w.Bytes += uint64(res.size)
	return w.err
}

// flush hands the buffered chunks to a goroutine that writes them as one
// pack, durable before it is named, and adds them to the index; the
// writer goes on filling its other buffer. With sync, it waits for that.
func (w *Writer) flush(sync bool) error {
	if err := w.wait(); err != nil {
		return err
	}
	if len(w.ents) == 0 {
		return nil
	}
	r := w.s.r
	id := newPackID()
	body := appendTrailer(w.buf, w.ents)
	if &body[0] != &w.mem[0] {
		return w.fail(errors.New("write pack: the pack buffer overflowed"))
	}
	ents := w.ents
	done := make(chan flushResult, 1)
	go func() {
		if err := r.writePack(id, body); err != nil {
			w.forget(ents)
			done <- flushResult{err: fmt.Errorf("write pack %s: %w", id, err)}
			return
		}
		r.mu.Lock()
		r.addPackLocked(id, int64(len(body)), ents, w.repack)
		w.unclaimLocked(ents)
		r.mu.Unlock()
		done <- flushResult{size: len(body)}
	}()
	w.inflight = done
	if w.spare == nil {
		w.spare = newPackBuf()
	}
	w.mem, w.spare = w.spare, w.mem
	w.ents, w.spareE = w.spareE[:0], ents
	w.buf = w.mem[:0]
	if sync {
		return w.wait()
	}
	return nil
}

// Close writes the last pack and releases the buffers.
func (w *Writer) Close() error {
	err := w.flush(true)
	if err == nil {
		err = w.err
	}
	w.release()
	return err
}

// Abort drops what the writer buffered (its chunks are forgotten: a later
// backup writes them).
func (w *Writer) Abort() {
	w.wait()
	w.fail(errors.New("writer aborted"))
	w.release()
}

func (w *Writer) release() {
	for _, m := range [][]byte{w.mem, w.spare} {
		if m != nil {
			packBufs.Put(&m)
		}
	}
	w.mem, w.spare, w.buf = nil, nil, nil
	if w.err == nil {
		w.err = errors.New("writer closed")
	}
}

// writePack writes a whole pack: an unnamed file (O_TMPFILE, written with
// O_DIRECT past the page cache), fsynced, then linked under its name and
// its directory fsynced; without O_TMPFILE, through a temp file renamed
// into place. A crash leaves no partial pack under packs/.
func (r *Repo) writePack(id string, body []byte) error {
	dir := filepath.Join(r.dir, "packs", id[:2])
	final := filepath.Join(dir, id)
	if err := r.mayWrite("pack", final); err != nil {
		return err
	}
	if !r.noTmpfile.Load() {
		err := r.writePackTmpfile(dir, final, body)
		if !errors.Is(err, errNoTmpfile) {
			if err == nil {
				err = syncDir(dir)
			}
			return err
		}
		r.noTmpfile.Store(true)
	}
	return writeAtomic(filepath.Join(r.dir, "tmp"), final, body)
}

var errNoTmpfile = errors.New("no O_TMPFILE")

func (r *Repo) writePackTmpfile(dir, final string, body []byte) error {
	open := func(direct bool) (int, error) {
		flags := unix.O_TMPFILE | unix.O_WRONLY | unix.O_CLOEXEC
		if direct {
			flags |= unix.O_DIRECT
		}
		fd, err := unix.Open(dir, flags, 0o600)
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) {
			return -1, errNoTmpfile
		}
		return fd, err
	}
	direct := !r.noDirect.Load()
	fd, err := open(direct)
	if direct && errors.Is(err, unix.EINVAL) {
		// A filesystem without O_DIRECT (tmpfs before 6.6), or one
		// without O_TMPFILE.
		r.noDirect.Store(true)
		direct = false
		fd, err = open(false)
	}
	if errors.Is(err, unix.EINVAL) {
		return errNoTmpfile
	}
	if err != nil {
		return err
	}
	defer func() { unix.Close(fd) }()
	err = writeAll(fd, body)
	if direct && errors.Is(err, unix.EINVAL) {
		// The device wants a bigger alignment: write through the cache.
		r.noDirect.Store(true)
		unix.Close(fd)
		if fd, err = open(false); err != nil {
			return err
		}
		err = writeAll(fd, body)
	}
	if err != nil {
		return err
	}
	if err := unix.Fsync(fd); err != nil {
		return err
	}
	return unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), unix.AT_FDCWD, final, unix.AT_SYMLINK_FOLLOW)
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// packStat is one pack's share of live chunks, for GC.
type packStat struct {
	no         uint32
	id         string
	size       int64
	ents       []entry
	live       []entry
	liveBytes  uint64
	frameBytes uint64
}

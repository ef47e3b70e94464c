package fake

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"libvirt.org/go/libvirtxml"

	"github.com/godwit-project/godwit/internal/hypervisor"
	"github.com/godwit-project/godwit/internal/nbd"
)

// The fake's backups are libvirt's pull mode: BeginBackup freezes each
// exported disk's bytes at that instant and makes a checkpoint, which
// keeps the bytes too: what differs from them later is "dirty", as QEMU's
// bitmaps would say at their 64 KiB granularity. A test reads an export
// through OpenExport, which stands in for the NBD server QEMU runs on the
// job's socket.

// blockSize is the granularity of the fake's extents and dirty bitmaps.
const blockSize = 64 << 10

// checkpoint is a domain checkpoint with the disks' bytes when it was
// made, by target.
type checkpoint struct {
	hypervisor.Checkpoint
	disks  map[string][]byte
	broken bool
}

// backupJob is a running pull-mode backup.
type backupJob struct {
	socket  string
	exports map[string]*export
}

// export is one disk a backup job exports.
type export struct {
	name  string
	size  uint64
	data  []byte // the disk when the job began (short of size: zeroes)
	since []byte // the disk at the incremental's checkpoint
	incr  bool
	read  uint64 // bytes its readers read, for ReadExport faults
}

// WriteVolume writes data into a volume at off, as the guest writing its
// disk would.
func (f *Fake) WriteVolume(poolName, name string, off uint64, data []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, err := f.pool("write volume in", poolName)
	if err != nil {
		return err
	}
	v, ok := p.volumes[name]
	if !ok {
		return errNoVolume("write volume", poolName, name)
	}
	if off+uint64(len(data)) > v.Capacity {
		return &Error{Op: "write volume " + poolName + "/" + name, Msg: "write past the end of the volume"}
	}
	key := poolName + "/" + name
	old := f.data[key]
	// A new slice: exports and checkpoints keep the old bytes.
	b := make([]byte, max(uint64(len(old)), off+uint64(len(data))))
	copy(b, old)
	copy(b[off:], data)
	f.data[key] = b
	return nil
}

// BreakCheckpoints marks every checkpoint of a domain broken, as when
// QEMU stopped without saving its bitmaps: an incremental backup from
// them fails with hypervisor.ErrCheckpointBroken.
func (f *Fake) BreakCheckpoints(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if d, ok := f.domains[name]; ok {
		for _, c := range d.checkpoints {
			c.broken = true
		}
	}
}

// BeginBackup starts a pull-mode backup from backupXML and makes the
// checkpoint of checkpointXML at the same instant.
func (f *Fake) BeginBackup(ctx context.Context, name, backupXML, checkpointXML string) error {
	var bx libvirtxml.DomainBackup
	perr := bx.Unmarshal(backupXML)
	var cx libvirtxml.DomainCheckpoint
	if perr == nil && checkpointXML != "" {
		perr = cx.Unmarshal(checkpointXML)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	op := "begin backup of " + name
	d, err := f.domainFor(ctx, "BeginBackup", name, "begin backup of", name)
	switch {
	case err != nil:
		return err
	case perr != nil:
		return &Error{Op: op, Msg: "XML error: " + perr.Error()}
	case !d.State.Active():
		return invalid("begin backup of", name, "domain is not running")
	case d.backup != nil || d.out != nil:
		return invalid("begin backup of", name, "another job (a backup or a migration) is active on the domain")
	case bx.Pull == nil || bx.Pull.Server == nil || bx.Pull.Server.UNIX == nil || bx.Pull.Disks == nil:
		return &Error{Op: op, Msg: "unsupported configuration: the fake exports pull-mode backups on a unix socket only", Kind: hypervisor.ErrUnsupported}
	}
	var since *checkpoint
	if bx.Incremental != "" {
		since = d.checkpoint(bx.Incremental)
		switch {
		case since == nil:
			return &Error{Op: op, Msg: fmt.Sprintf("Domain checkpoint not found: no domain checkpoint with matching name '%s'", bx.Incremental), Kind: hypervisor.ErrNotFound}
		case since.broken:
			return &Error{Op: op, Msg: fmt.Sprintf("checkpoint inconsistent: missing or broken bitmap 'godwit' for checkpoint '%s'", bx.Incremental), Kind: hypervisor.ErrCheckpointBroken}
		}
	}
	var cp *checkpoint
	if checkpointXML != "" {
		if d.checkpoint(cx.Name) != nil {
			return &Error{Op: op, Msg: fmt.Sprintf("operation failed: domain checkpoint '%s' already exists", cx.Name), Kind: hypervisor.ErrExists}
		}
		cp = &checkpoint{Checkpoint: hypervisor.Checkpoint{Name: cx.Name, Created: time.Now().Unix()}, disks: map[string][]byte{}}
		if n := len(d.checkpoints); n > 0 {
			cp.Parent = d.checkpoints[n-1].Name
		}
	}
	job := &backupJob{socket: bx.Pull.Server.UNIX.Socket, exports: map[string]*export{}}
	paths := diskPaths(d.liveXML)
	for _, pd := range bx.Pull.Disks.Disks {
		if pd.Backup == "no" {
			continue
		}
		poolName, v := f.volumeAt(paths[pd.Name])
		if v == nil {
			return &Error{Op: op, Msg: fmt.Sprintf("invalid argument: disk '%s' has no volume the fake knows", pd.Name)}
		}
		e := &export{name: firstOf(pd.ExportName, pd.Name), size: v.Capacity, data: f.data[poolName+"/"+v.Name]}
		if since != nil && pd.BackupMode != "full" {
			e.since, e.incr = since.disks[pd.Name], true
		}
		job.exports[e.name] = e
		if cp != nil {
			cp.disks[pd.Name] = e.data
		}
	}
	if cp != nil {
		d.checkpoints = append(d.checkpoints, cp)
	}
	d.backup = job
	return nil
}

func (d *domain) checkpoint(name string) *checkpoint {
	for _, c := range d.checkpoints {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// ActiveJob says whether the domain runs a job, and whether a backup.
func (f *Fake) ActiveJob(ctx context.Context, name string) (active, backup bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.domainFor(ctx, "ActiveJob", name, "get job of", name)
	if err != nil {
		return false, false, err
	}
	return d.backup != nil || d.out != nil, d.backup != nil, nil
}

// Checkpoints lists a domain's checkpoints, oldest first.
func (f *Fake) Checkpoints(ctx context.Context, name string) ([]hypervisor.Checkpoint, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.domainFor(ctx, "Checkpoints", name, "list checkpoints of domain", name)
	if err != nil {
		return nil, err
	}
	out := make([]hypervisor.Checkpoint, len(d.checkpoints))
	for i, c := range d.checkpoints {
		out[i] = c.Checkpoint
	}
	return out, nil
}

// DeleteCheckpoint deletes one checkpoint; its children take its parent.
func (f *Fake) DeleteCheckpoint(ctx context.Context, name, cpName string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.domainFor(ctx, "DeleteCheckpoint", name+"/"+cpName, "delete checkpoint "+cpName+" of", name)
	if err != nil {
		return err
	}
	for i, c := range d.checkpoints {
		if c.Name != cpName {
			continue
		}
		for _, o := range d.checkpoints {
			if o.Parent == c.Name {
				o.Parent = c.Parent
			}
		}
		d.checkpoints = append(d.checkpoints[:i], d.checkpoints[i+1:]...)
		return nil
	}
	return &Error{Op: "delete checkpoint " + cpName + " of " + name, Msg: fmt.Sprintf("Domain checkpoint not found: no domain checkpoint with matching name '%s'", cpName), Kind: hypervisor.ErrNotFound}
}

// StartPaused boots a defined domain with its vCPUs paused.
func (f *Fake) StartPaused(ctx context.Context, name string) error {
	return f.start(ctx, "StartPaused", name, hypervisor.StatePaused)
}

// Export is one disk of a running backup job, read as QEMU's NBD server
// would serve it: what OpenExport returns. It is not safe for concurrent
// use; open one per reader.
type Export struct {
	f        *Fake
	ctx      context.Context
	dom      *domain
	job      *backupJob
	e        *export
	contexts map[string]bool
	closed   bool
}

// OpenExport connects to the export named export of the backup job
// serving socket, with the meta contexts asked for (base:allocation, and
// with an incremental job qemu:dirty-bitmap:backup-TARGET): the fake's
// stand-in for nbd.Dial. ctx bounds the reads, as nbd.Dial's does.
func (f *Fake) OpenExport(ctx context.Context, socket, export string, contexts ...string) (*Export, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(ctx, "OpenExport", export); err != nil {
		return nil, err
	}
	for _, d := range f.domains {
		if d.backup == nil || d.backup.socket != socket {
			continue
		}
		e, ok := d.backup.exports[export]
		if !ok {
			return nil, fmt.Errorf("nbd: export %q on %s: open export refused: export unknown", export, socket)
		}
		x := &Export{f: f, ctx: ctx, dom: d, job: d.backup, e: e, contexts: map[string]bool{}}
		for _, c := range contexts {
			if c != nbd.BaseAllocation && !(e.incr && strings.HasPrefix(c, "qemu:dirty-bitmap:")) {
				return nil, fmt.Errorf("nbd: export %q on %s: the server does not offer meta context %q", export, socket, c)
			}
			x.contexts[c] = true
		}
		return x, nil
	}
	return nil, fmt.Errorf("nbd: connect %s: no backup job serves it: connection refused", socket)
}

// Size is the export's size in bytes.
func (x *Export) Size() uint64 { return x.e.size }

// Close closes the connection.
func (x *Export) Close() error {
	x.closed = true
	return nil
}

// live checks the job still serves the export. Callers hold f.mu.
func (x *Export) live(op string) error {
	if x.closed || x.dom.backup != x.job {
		return fmt.Errorf("nbd: %s: the server closed the connection (the backup job ended): EOF", op)
	}
	return nil
}

// Extents lists the export's extents in meta context name over [off,
// off+length), at 64 KiB granularity: holes that read as zeroes in
// base:allocation, what changed since the checkpoint in a dirty bitmap.
func (x *Export) Extents(name string, off, length uint64) ([]nbd.Extent, error) {
	x.f.mu.Lock()
	defer x.f.mu.Unlock()
	if err := x.live("block status"); err != nil {
		return nil, err
	}
	if !x.contexts[name] {
		return nil, fmt.Errorf("nbd: meta context %q was not negotiated", name)
	}
	flags := func(b []byte, at uint64) uint32 {
		if name == nbd.BaseAllocation {
			if isZero(block(b, at)) {
				return nbd.FlagHole | nbd.FlagZero
			}
			return 0
		}
		if !bytes.Equal(block(x.e.data, at), block(x.e.since, at)) {
			return nbd.FlagDirty
		}
		return 0
	}
	end := min(off+length, x.e.size)
	var out []nbd.Extent
	for at := off - off%blockSize; at < end; at += blockSize {
		lo, hi := max(at, off), min(at+blockSize, end)
		fl := flags(x.e.data, at)
		if k := len(out); k > 0 && out[k-1].Flags == fl {
			out[k-1].Length += hi - lo
			continue
		}
		out = append(out, nbd.Extent{Offset: lo, Length: hi - lo, Flags: fl})
	}
	return out, nil
}

// block is the 64 KiB block at off of b, trimmed to b (nil past it).
func block(b []byte, off uint64) []byte {
	if off >= uint64(len(b)) {
		return nil
	}
	return bytes.TrimRight(b[off:min(off+blockSize, uint64(len(b)))], "\x00")
}

func isZero(b []byte) bool { return len(bytes.TrimRight(b, "\x00")) == 0 }

// ReadAt reads len(dst) bytes at off. A ReadExport fault with Bytes
// strikes the read that reaches Bytes of the export (all its readers
// counted); Hang blocks that read until OpenExport's ctx ends.
func (x *Export) ReadAt(dst []byte, off uint64) error {
	f := x.f
	f.mu.Lock()
	defer f.mu.Unlock()
	call := "ReadExport " + x.e.name
	if err := f.enter(x.ctx, "ReadExport", x.e.name); err != nil {
		return err
	}
	if err := x.live(fmt.Sprintf("read %d bytes at %d", len(dst), off)); err != nil {
		return err
	}
	if off+uint64(len(dst)) > x.e.size {
		return fmt.Errorf("nbd: read %d bytes at %d: server error 22 (EINVAL)", len(dst), off)
	}
	x.e.read += uint64(len(dst))
	if ft := f.takeFault("ReadExport", x.e.name, true, x.e.read); ft != nil {
		if ft.Action != Hang {
			return f.strike(ft, call)
		}
		if err := f.hang(x.ctx, call); err != nil {
			return err
		}
		if err := x.live("read"); err != nil {
			return err
		}
	}
	clear(dst)
	if off < uint64(len(x.e.data)) {
		copy(dst, x.e.data[off:])
	}
	return nil
}

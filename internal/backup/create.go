package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"libvirt.org/go/libvirtxml"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/backup/repo"
	"github.com/godwit-project/godwit/internal/hypervisor"
	"github.com/godwit-project/godwit/internal/nbd"
	"github.com/godwit-project/godwit/internal/ops"
)

// CheckpointPrefix starts the name of every checkpoint godwit makes.
const CheckpointPrefix = "godwit-"

// readers is how many NBD connections read one disk at once (QEMU serves
// several reads at once); each reads its next run while one goroutine a
// core hashes and compresses what was read.
const readers = 6

// maxRead is the most one NBD read asks for (2 MiB reads from 6
// connections beat 4 MiB from 4 on QEMU's backup export).
const maxRead = 2 << 20

// CreateOptions tune Create.
type CreateOptions struct {
	Full bool
}

// Create backs a VM up in an operation. A running VM keeps running (the
// backup is its disks at the instant the job began); a stopped one is
// started paused for the backup, so that libvirt can export its disks and
// make a checkpoint, and destroyed again (no guest code runs).
func (s *Service) Create(ctx context.Context, vmName string, opts CreateOptions) (api.Operation, error) {
	if _, err := s.Repo(); err != nil {
		return api.Operation{}, err
	}
	v, release, err := s.vms.HoldSettled(ctx, vmName, "backup.create", "back up")
	if err != nil {
		return api.Operation{}, err
	}
	if len(v.Disks) == 0 {
		release()
		return api.Operation{}, api.Conflict("vm %s has no disks to back up", vmName)
	}
	op := s.ops.Start("backup.create", target(vmName), func(ctx context.Context, o *ops.Op) error {
		defer release()
		b, err := s.create(ctx, o, v, opts)
		if err != nil {
			return err
		}
		o.SetResult(b)
		return nil
	})
	s.vms.Relabel(vmName, "backup.create", "operation "+op.ID+" (backup.create)")
	return op, nil
}

// plan is what one backup will do.
type plan struct {
	id, checkpoint string
	parent         *repo.Manifest
	note           string
	dir            string // per-backup work dir: NBD socket, scratch files
}

func (s *Service) create(ctx context.Context, o *ops.Op, v api.VM, opts CreateOptions) (api.Backup, error) {
	start := s.clock()
	r, err := s.Repo()
	if err != nil {
		return api.Backup{}, err
	}
	lock, err := shareRepo(ctx, r, o)
	if err != nil {
		return api.Backup{}, err
	}
	defer lock.Unlock()
	undo := context.Background()

	if v.State == api.VMStopped {
		o.Progress("starting the VM paused to export its disks", 0, 0, "")
		if err := s.hv.StartPaused(ctx, v.Name); err != nil {
			return api.Backup{}, hypervisor.APIErrorf("start vm "+v.Name+" paused for its backup", err)
		}
		defer func() {
			if err := s.hv.Destroy(undo, v.Name); err != nil && !errors.Is(err, hypervisor.ErrInvalidState) {
				s.log.Error("stop the VM started paused for a backup", "vm", v.Name, "err", err)
			}
		}()
	}
	// A backup job left by a daemon that died mid-backup blocks new jobs.
	if active, isBackup, err := s.hv.ActiveJob(ctx, v.Name); err != nil {
		return api.Backup{}, hypervisor.APIErrorf("get job of vm "+v.Name, err)
	} else if active && isBackup {
		s.log.Warn("aborting a backup job left behind by an earlier daemon", "vm", v.Name)
		if err := s.hv.AbortJob(ctx, v.Name); err != nil {
			return api.Backup{}, hypervisor.APIErrorf("abort the stale backup job of vm "+v.Name, err)
		}
	} else if active {
		return api.Backup{}, api.Conflict("vm %s has a libvirt job running (a migration, a save?); try again once it ended", v.Name)
	}

	p, err := s.plan(ctx, r, v, opts)
	if err != nil {
		return api.Backup{}, err
	}
	if err := s.prepareWorkDir(ctx, v.Name, p.dir); err != nil {
		return api.Backup{}, err
	}
	defer os.RemoveAll(p.dir)

	incremental := p.parent != nil
	o.Progress("beginning the backup job", 0, 0, "")
	err = s.begin(ctx, v, p, incremental)
	if incremental && errors.Is(err, hypervisor.ErrCheckpointBroken) {
		// QEMU stopped without saving its bitmaps (a crash, a kill): the
		// checkpoint can no longer say what changed.
		p.note = fmt.Sprintf("checkpoint %s of backup %s is broken (QEMU stopped without saving its dirty bitmaps): full backup", p.parent.Checkpoint, p.parent.ID)
		s.log.Warn("falling back to a full backup", "vm", v.Name, "reason", p.note)
		p.parent, incremental = nil, false
		err = s.begin(ctx, v, p, false)
	}
	if err != nil {
		return api.Backup{}, hypervisor.APIErrorf("begin the backup of vm "+v.Name, err)
	}
	jobDone := false
	defer func() {
		if !jobDone {
			if err := s.hv.AbortJob(undo, v.Name); err != nil {
				s.log.Warn("end backup job", "vm", v.Name, "err", err)
			}
		}
	}()

	m := repo.Manifest{ID: p.id, VM: v.Name, CreatedAt: start.UTC(), Mode: "full", Checkpoint: p.checkpoint, Note: p.note, Host: s.cfg.Host}
	if incremental {
		m.Mode, m.Parent = "incremental", p.parent.ID
	}
	spec := *v.Spec
	if m.Spec, err = json.Marshal(spec); err != nil {
		return api.Backup{}, err
	}
	sock := filepath.Join(p.dir, "nbd.sock")
	var st repo.Stats
	sess := r.NewSession() // the backup's chunk writes, deduplicated as one
	idxs := make([]repo.Index, len(v.Disks))
	for i, d := range v.Disks {
		var parentIdx repo.Index
		if incremental && hasBitmap(d) {
			pd := p.parent.Disks[i]
			if parentIdx, err = r.ReadIndex(pd); err != nil {
				return api.Backup{}, fmt.Errorf("read the index of backup %s, disk %s (run godwit backup verify): %w", p.parent.ID, pd.Name, err)
			}
		}
		idx, err := s.readDisk(ctx, o, r, sess, sock, d, parentIdx, &st)
		if err != nil {
			return api.Backup{}, fmt.Errorf("back up disk %s of vm %s: %w", d.Name, v.Name, err)
		}
		idxs[i] = idx
	}
	if err := s.hv.AbortJob(ctx, v.Name); err != nil {
		return api.Backup{}, hypervisor.APIErrorf("end the backup job of vm "+v.Name, err)
	}
	jobDone = true
	readDone := s.clock()

	o.Progress("committing the backup", 0, 0, "")
	for i, d := range v.Disks {
		rd, err := r.WriteIndex(p.id, d.Name, idxs[i], uint64(d.Size))
		if err != nil {
			return api.Backup{}, err
		}
		rd.Target = d.Target
		m.Disks = append(m.Disks, rd)
	}
	// The stats go into the manifest, so the commit's own time is
	// measured up to the sync that precedes the manifest's write.
	if err := r.Durable(m.Disks); err != nil {
		return api.Backup{}, err
	}
	now := s.clock()
	st.Seconds = now.Sub(start).Seconds()
	st.CommitSeconds = now.Sub(readDone).Seconds()
	m.Stats = st
	if err := r.Commit(m); err != nil {
		return api.Backup{}, fmt.Errorf("commit backup %s: %w", p.id, err)
	}
	if p.checkpoint != "" {
		s.dropOldCheckpoints(undo, v.Name, p.checkpoint)
	}
	s.log.Info("backup done", "vm", v.Name, "backup", p.id, "mode", m.Mode, "read", st.BytesRead, "stored", st.BytesStored,
		"seconds", st.Seconds, "commitSeconds", st.CommitSeconds)
	return view(m, false), nil
}

// plan names the backup and decides full or incremental.
func (s *Service) plan(ctx context.Context, r *repo.Repo, v api.VM, opts CreateOptions) (plan, error) {
	cps, err := s.hv.Checkpoints(ctx, v.Name)
	if err != nil {
		return plan{}, hypervisor.APIErrorf("list checkpoints of vm "+v.Name, err)
	}
	cpExists := map[string]bool{}
	for _, c := range cps {
		cpExists[c.Name] = true
	}
	now := s.clock().UTC()
	stamp := now.Format("20060102-150405")
	p := plan{id: v.Name + "@" + stamp, checkpoint: CheckpointPrefix + stamp}
	// A backup cut off by a crash left its checkpoint but no manifest.
	for n := 2; r.Exists(p.id) || cpExists[p.checkpoint]; n++ {
		p.id = fmt.Sprintf("%s@%s-%d", v.Name, stamp, n)
		p.checkpoint = fmt.Sprintf("%s%s-%d", CheckpointPrefix, stamp, n)
	}
	// One work dir per VM: its backups run one at a time, so what a
	// daemon that died mid-backup left there goes with the next backup
	// (once it ended the job left running).
	p.dir = filepath.Join(s.cfg.WorkDir, "vm-"+v.Name)
	bitmaps := 0
	for _, d := range v.Disks {
		if hasBitmap(d) {
			bitmaps++
		}
	}
	if bitmaps == 0 {
		p.checkpoint = ""
		p.note = "raw disks cannot record changes (no dirty bitmaps): every backup is full"
		return p, nil
	}

	ms, err := r.List()
	if err != nil {
		return p, err
	}
	var last *repo.Manifest
	for i := len(ms) - 1; i >= 0; i-- {
		if ms[i].VM == v.Name && ms[i].Checkpoint != "" {
			last = &ms[i]
			break
		}
	}
	switch {
	case opts.Full:
		p.note = "full backup asked for"
		return p, nil
	case last == nil:
		p.note = "first backup of this VM"
		return p, nil
	}
	if !cpExists[last.Checkpoint] {
		p.note = fmt.Sprintf("checkpoint %s of backup %s is gone (the VM was redefined, restored or its disk moved): full backup", last.Checkpoint, last.ID)
		s.log.Warn("falling back to a full backup", "vm", v.Name, "reason", p.note)
		return p, nil
	}
	if why := disksDiffer(last.Disks, v.Disks); why != "" {
		p.note = fmt.Sprintf("%s since backup %s: full backup", why, last.ID)
		return p, nil
	}
	p.parent = last
	return p, nil
}

func disksDiffer(old []repo.Disk, now []api.VMDisk) string {
	if len(old) != len(now) {
		return "the VM's disks changed"
	}
	for i := range old {
		if old[i].Name != now[i].Name || old[i].Target != now[i].Target {
			return "the VM's disks changed"
		}
		if old[i].Size != uint64(now[i].Size) {
			return fmt.Sprintf("disk %s was resized", now[i].Name)
		}
	}
	return ""
}

var dacLabelRE = regexp.MustCompile(`<seclabel[^>]*model='dac'[^>]*>\s*<label>\+?(\d+):\+?(\d+)</label>`)

// prepareWorkDir makes the backup's work dir, owned by the user QEMU runs
// as (from the live domain's DAC label): QEMU binds the NBD socket there.
func (s *Service) prepareWorkDir(ctx context.Context, vmName, dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o711); err != nil {
		return err
	}
	_ = os.RemoveAll(dir) // left by a daemon that died mid-backup
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	xml, err := s.hv.XML(ctx, vmName, false)
	if err != nil {
		return hypervisor.APIErrorf("get XML of vm "+vmName, err)
	}
	if m := dacLabelRE.FindStringSubmatch(xml); m != nil {
		uid, _ := strconv.Atoi(m[1])
		gid, _ := strconv.Atoi(m[2])
		if err := os.Chown(dir, uid, gid); err != nil {
			return err
		}
	}
	return nil
}

// begin starts libvirt's pull-mode backup: every disk exported over NBD
// on a unix socket, with a new checkpoint; incremental from the parent's
// checkpoint when asked.
func (s *Service) begin(ctx context.Context, v api.VM, p plan, incremental bool) error {
	pull := &libvirtxml.DomainBackupPull{
		Server: &libvirtxml.DomainBackupPullServer{UNIX: &libvirtxml.DomainBackupPullServerUNIX{Socket: filepath.Join(p.dir, "nbd.sock")}},
		Disks:  &libvirtxml.DomainBackupPullDisks{},
	}
	cp := libvirtxml.DomainCheckpoint{Name: p.checkpoint, Description: "godwit backup " + p.id, Disks: &libvirtxml.DomainCheckpointDisks{}}
	for _, d := range v.Disks {
		pd := libvirtxml.DomainBackupPullDisk{
			Name: d.Target, Backup: "yes", ExportName: d.Target,
			Scratch: &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: filepath.Join(p.dir, "scratch-"+d.Target+".qcow2")}},
		}
		mode := "bitmap"
		if !hasBitmap(d) {
			// A raw disk has no bitmap: it is read whole every time.
			mode = "no"
			if incremental {
				pd.BackupMode = "full"
			}
		}
		pull.Disks.Disks = append(pull.Disks.Disks, pd)
		cp.Disks.Disks = append(cp.Disks.Disks, libvirtxml.DomainCheckpointDisk{Name: d.Target, Checkpoint: mode})
	}
	bx := libvirtxml.DomainBackup{Pull: pull}
	if incremental {
		bx.Incremental = p.parent.Checkpoint
	}
	bdoc, err := bx.Marshal()
	if err != nil {
		return err
	}
	cdoc := ""
	if p.checkpoint != "" {
		if cdoc, err = cp.Marshal(); err != nil {
			return err
		}
	}
	return s.hv.BeginBackup(ctx, v.Name, bdoc, cdoc)
}

// hasBitmap reports whether a disk can hold a dirty bitmap (qcow2 can, raw
// cannot).
func hasBitmap(d api.VMDisk) bool { return d.Format == "" || d.Format == "qcow2" }

// dropOldCheckpoints deletes the VM's older godwit checkpoints once a
// backup with a newer one is committed: only the newest is needed.
func (s *Service) dropOldCheckpoints(ctx context.Context, vmName, keep string) {
	cps, err := s.hv.Checkpoints(ctx, vmName)
	if err != nil {
		s.log.Warn("list checkpoints", "vm", vmName, "err", err)
		return
	}
	for _, c := range cps {
		if c.Name == keep || !strings.HasPrefix(c.Name, CheckpointPrefix) {
			continue
		}
		if err := s.hv.DeleteCheckpoint(ctx, vmName, c.Name); err != nil {
			s.log.Warn("delete an old checkpoint", "vm", vmName, "checkpoint", c.Name, "err", err)
		}
	}
}

// readDisk reads one exported disk into chunks: with a parent index only
// the chunks the dirty bitmap marks, else every chunk that holds data.
func (s *Service) readDisk(ctx context.Context, o *ops.Op, r *repo.Repo, sess *repo.Session, sock string, d api.VMDisk, parent repo.Index, st *repo.Stats) (repo.Index, error) {
	bitmap := "qemu:dirty-bitmap:backup-" + d.Target
	contexts := []string{nbd.BaseAllocation}
	if parent != nil {
		contexts = append(contexts, bitmap)
	}
	c, err := s.cfg.OpenDisk(ctx, sock, d.Target, contexts...)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	size := c.Size()
	cs := uint64(r.ChunkSize())
	n := int((size + cs - 1) / cs)
	if parent != nil && len(parent) != n {
		return nil, fmt.Errorf("the parent backup has %d chunks for this disk, the disk %d", len(parent), n)
	}
	alloc, err := c.Extents(nbd.BaseAllocation, 0, size)
	if err != nil {
		return nil, err
	}
	hasData := make([]bool, n)
	mark(hasData, alloc, cs, func(f uint32) bool { return f&nbd.FlagZero == 0 })
	idx := make(repo.Index, n)
	need := hasData
	if parent != nil {
		copy(idx, parent)
		dirtyExt, err := c.Extents(bitmap, 0, size)
		if err != nil {
			return nil, err
		}
		dirty := make([]bool, n)
		mark(dirty, dirtyExt, cs, func(f uint32) bool { return f&nbd.FlagDirty != 0 })
		need = make([]bool, n)
		for i := range dirty {
			switch {
			case dirty[i] && hasData[i]:
				need[i] = true
			case dirty[i]:
				idx[i] = repo.Zero // the guest zeroed or discarded it
			}
		}
	}
	runs := runsOf(n, maxRead/int(cs), func(i int) bool { return need[i] })
	var total int64
	for i := range need {
		if need[i] {
			total += int64(repo.ChunkLen(i, int(cs), size))
		}
	}
	msg := fmt.Sprintf("reading disk %s", d.Name)
	if parent != nil {
		msg = fmt.Sprintf("reading the changed blocks of disk %s", d.Name)
	}
	o.Progress(msg, 0, total, "bytes")

	var done atomic.Int64
	var mu sync.Mutex // guards st
	open := func(ctx context.Context, r int) (reader, error) {
		conn := c
		if r > 0 {
			var err error
			if conn, err = s.cfg.OpenDisk(ctx, sock, d.Target); err != nil {
				return reader{}, err
			}
		}
		read := func(rn run, buf []byte) error { return conn.ReadAt(buf, uint64(rn.first)*cs) }
		return reader{read: read, close: func() {
			if conn != c {
				conn.Close()
			}
		}}, nil
	}
	length := func(rn run) int { return int(min(uint64(rn.count)*cs, size-uint64(rn.first)*cs)) }
	// One sink a core hashes and compresses what the readers read.
	err = pipeline(ctx, readers, runtime.GOMAXPROCS(0), runs, maxRead, length, open, func(ctx context.Context, w int) (sink, error) {
		// Each sink appends its new chunks to packs of its own,
		// written whole (O_DIRECT, fsynced) as each fills; the last one
		// when the disk is read.
		pw := sess.Writer()
		var read, stored uint64
		wrote, reused := 0, 0
		do := func(rn run, data []byte) error {
			read += uint64(len(data))
			for k := 0; k < rn.count; k++ {
				chunk := data[k*int(cs) : min((k+1)*int(cs), len(data))]
				h := repo.Sum(chunk)
				n, err := pw.Put(h, chunk)
				if err != nil {
					return err
				}
				if n > 0 {
					stored += uint64(n)
					wrote++
				} else {
					reused++
				}
				idx[rn.first+k] = h
			}
			o.Progress(msg, done.Add(int64(len(data))), total, "bytes")
			return nil
		}
		end := func(ok bool) error {
			var err error
			if ok {
				err = pw.Close()
			} else {
				pw.Abort()
			}
			mu.Lock()
			st.BytesRead += read
			st.BytesStored += stored
			st.ChunksNew += wrote
			st.ChunksReused += reused
			mu.Unlock()
			return err
		}
		return sink{do, end}, nil
	})
	if cerr := ctx.Err(); cerr != nil {
		return nil, cerr
	}
	if err != nil {
		return nil, err
	}
	return idx, nil
}

// mark sets the chunks that any extent passing keep overlaps.
func mark(chunks []bool, ext []nbd.Extent, cs uint64, keep func(uint32) bool) {
	for _, e := range ext {
		if !keep(e.Flags) || e.Length == 0 {
			continue
		}
		first := e.Offset / cs
		last := (e.Offset + e.Length - 1) / cs
		for i := first; i <= last && i < uint64(len(chunks)); i++ {
			chunks[i] = true
		}
	}
}

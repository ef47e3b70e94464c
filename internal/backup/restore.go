package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/backup/repo"
	"github.com/godwit-project/godwit/internal/nbd"
	"github.com/godwit-project/godwit/internal/ops"
	"github.com/godwit-project/godwit/internal/revert"
	"github.com/godwit-project/godwit/internal/vm"
)

// RestoreOptions tune Restore.
type RestoreOptions = api.RestoreRequest

// Restore recreates a VM from a backup in an operation: a new VM from the
// backed-up spec (renamed with As), with blank volumes of the disks' sizes,
// into which the backup's chunks are written; with To, that VM is then moved
// (cold) to the peer host. A failure removes the VM.
func (s *Service) Restore(ctx context.Context, id string, opts RestoreOptions) (api.Operation, error) {
	if opts.To != "" && s.cfg.Migrate == nil {
		return api.Operation{}, api.BadRequest("to: this daemon cannot move VMs to other hosts (no migrations)")
	}
	if opts.To != "" && opts.Start {
		return api.Operation{}, api.BadRequest("start: with to, start the VM on %s once restored", opts.To)
	}
	m, err := s.manifest(id)
	if err != nil {
		return api.Operation{}, err
	}
	var spec api.VMSpec
	if err := json.Unmarshal(m.Spec, &spec); err != nil {
		return api.Operation{}, fmt.Errorf("backup %s: spec: %w", m.ID, err)
	}
	spec.Name = m.VM
	if opts.As != "" {
		spec.Name = opts.As
	}
	if err := vm.ValidateName(spec.Name); err != nil {
		return api.Operation{}, api.BadRequest("as: %v", err)
	}
	// The backup is logically full: every disk comes back as a new
	// standalone volume of the size it had, whatever image it was an
	// overlay on or existing volume it was.
	if len(spec.Disks) != len(m.Disks) {
		return api.Operation{}, fmt.Errorf("backup %s: its spec has %d disks but it holds %d", m.ID, len(spec.Disks), len(m.Disks))
	}
	for i := range spec.Disks {
		if spec.Disks[i].Name != m.Disks[i].Name {
			return api.Operation{}, fmt.Errorf("backup %s: disk %d is %s in the spec but %s in the backup", m.ID, i, spec.Disks[i].Name, m.Disks[i].Name)
		}
		spec.Disks[i].Image, spec.Disks[i].Clone, spec.Disks[i].Volume = "", "", ""
		spec.Disks[i].Size = api.Size(m.Disks[i].Size)
	}
	if _, err := s.vms.Get(ctx, spec.Name); err == nil {
		return api.Operation{}, api.Conflict("vm %s exists; restore with --as NEWNAME, or delete it first", spec.Name)
	} else if api.Status(err) != 404 {
		return api.Operation{}, err
	}
	return s.ops.Start("backup.restore", target(spec.Name), func(ctx context.Context, o *ops.Op) error {
		res, err := s.restore(ctx, o, m, spec, opts)
		if err != nil {
			return err
		}
		o.SetResult(res)
		return nil
	}), nil
}

func (s *Service) restore(ctx context.Context, o *ops.Op, m repo.Manifest, spec api.VMSpec, opts RestoreOptions) (api.RestoreResult, error) {
	res := api.RestoreResult{VM: spec.Name, Backup: m.ID}
	r, err := s.Repo()
	if err != nil {
		return res, err
	}
	lock, err := shareRepo(ctx, r, o)
	if err != nil {
		return res, err
	}
	defer lock.Unlock()
	idxs := make([]repo.Index, len(m.Disks))
	var total int64
	for i, d := range m.Disks {
		if idxs[i], err = r.ReadIndex(d); err != nil {
			return res, fmt.Errorf("backup %s, disk %s: %w", m.ID, d.Name, err)
		}
		total += int64(d.DataBytes)
	}

	o.Progress("creating vm "+spec.Name, 0, 0, "")
	cop, err := s.vms.Create(ctx, spec, vm.CreateOptions{})
	if err != nil {
		return res, err
	}
	if cop, err = s.ops.Wait(ctx, cop.ID); err != nil {
		return res, err
	}
	if err := cop.Err(); err != nil {
		return res, fmt.Errorf("create vm %s: %w", spec.Name, err)
	}
	rv := revert.New()
	defer rv.Fail()
	rv.Add(func() {
		undo, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		dop, err := s.vms.Delete(undo, spec.Name, vm.DeleteOptions{Force: true})
		if err == nil {
			_, err = s.ops.Wait(undo, dop.ID)
		}
		if err != nil {
			s.log.Error("revert restore: delete vm", "vm", spec.Name, "err", err)
		}
	})
	v, release, err := s.vms.Hold(ctx, spec.Name, "operation "+o.ID()+" (backup.restore)")
	if err != nil {
		return res, err
	}
	var written atomic.Int64
	for i, d := range m.Disks {
		if v.Disks[i].Name != d.Name || v.Disks[i].Path == "" {
			release()
			return res, fmt.Errorf("restored vm %s: disk %d is not %s", spec.Name, i, d.Name)
		}
		err := s.writeDisk(ctx, r, v.Disks[i].Path, d, idxs[i], func(n int) {
			o.Progress("writing disk "+d.Name, written.Add(int64(n)), total, "bytes")
		})
		if err != nil {
			release()
			return res, fmt.Errorf("write disk %s of vm %s: %w", d.Name, spec.Name, err)
		}
	}
	release()
	res.BytesWritten = api.Size(written.Load())
	if opts.To != "" {
		// Restored here, then moved cold (definition and disks) to the
		// peer; a failed move leaves nothing here (the revert deletes the
		// local VM) and nothing there (the migration undoes itself).
		o.Progress("moving vm "+spec.Name+" to "+opts.To, 0, 0, "")
		mop, err := s.cfg.Migrate(ctx, spec.Name, api.MigrateRequest{To: opts.To})
		if err == nil {
			mop, err = s.ops.Wait(ctx, mop.ID)
		}
		if err == nil {
			err = mop.Err()
		}
		if err != nil {
			return res, fmt.Errorf("move the restored vm %s to %s: %w", spec.Name, opts.To, err)
		}
		res.Host = opts.To
	}
	if opts.Start {
		o.Progress("starting vm "+spec.Name, 0, 0, "")
		sop, err := s.vms.Start(ctx, spec.Name)
		if err == nil {
			sop, err = s.ops.Wait(ctx, sop.ID)
		}
		if err == nil {
			err = sop.Err()
		}
		if err != nil {
			return res, fmt.Errorf("start the restored vm %s: %w", spec.Name, err)
		}
	}
	rv.Success()
	s.log.Info("backup restored", "backup", m.ID, "vm", spec.Name, "bytes", res.BytesWritten)
	return res, nil
}

// writeDisk writes a backed-up disk into a fresh qcow2 volume through
// qemu-nbd. Zero chunks are skipped: a fresh volume reads as zeroes.
func (s *Service) writeDisk(ctx context.Context, r *repo.Repo, path string, d repo.Disk, idx repo.Index, progress func(int)) error {
	dir, err := os.MkdirTemp(s.cfg.WorkDir, "restore-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "nbd.sock")
	cmd := exec.Command("qemu-nbd", "-f", "qcow2", "-k", sock, "-x", "disk", "-e", fmt.Sprint(readers+1), "--cache=none", path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out := &limitedBuffer{max: 4096}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start qemu-nbd: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Signal(syscall.SIGTERM)
			<-exited
		}
	}()
	var main *nbd.Conn
	deadline := time.Now().Add(30 * time.Second)
	for main == nil {
		if c, derr := net.Dial("unix", sock); derr == nil {
			c.Close()
			if main, err = nbd.Dial(ctx, sock, "disk"); err != nil {
				_ = cmd.Process.Signal(syscall.SIGTERM)
				return err
			}
			break
		}
		select {
		case err := <-exited:
			exited <- err
			return fmt.Errorf("qemu-nbd on %s exited: %v: %s", path, err, out.String())
		case <-ctx.Done():
			_ = cmd.Process.Signal(syscall.SIGTERM)
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			return fmt.Errorf("qemu-nbd on %s did not listen within 30s: %s", path, out.String())
		}
	}
	// Closing the last connection makes qemu-nbd exit.
	defer main.Close()
	if main.Size() < d.Size {
		return fmt.Errorf("the volume holds %d bytes, the disk %d", main.Size(), d.Size)
	}
	cs := d.ChunkSize
	runs := runsOf(len(idx), maxRead/cs, func(i int) bool { return idx[i] != repo.Zero })
	err = parallel(ctx, readers, runs, func(ctx context.Context, _ int) (worker, error) {
		conn, err := nbd.Dial(ctx, sock, "disk")
		if err != nil {
			return worker{}, err
		}
		buf := make([]byte, maxRead)
		do := func(rn run) error {
			l := 0
			for k := 0; k < rn.count; k++ {
				n := repo.ChunkLen(rn.first+k, cs, d.Size)
				if err := r.GetChunk(idx[rn.first+k], buf[l:l+n]); err != nil {
					return err
				}
				l += n
			}
			if err := conn.WriteAt(buf[:l], uint64(rn.first)*uint64(cs)); err != nil {
				return err
			}
			progress(l)
			return nil
		}
		end := func(ok bool) error {
			defer conn.Close()
			if ok {
				return conn.Flush()
			}
			return nil
		}
		return worker{do, end}, nil
	})
	if err != nil {
		if errors.Is(err, repo.ErrDamaged) {
			return fmt.Errorf("%w (godwit backup verify lists the damage)", err)
		}
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return main.Flush()
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	mu  sync.Mutex
	b   []byte
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := l.max - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}

package migrate

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/hypervisor"
	"github.com/godwit-project/godwit/internal/ops"
)

// runFiles is an offline or cold move: the memory state (offline) and the
// disks that are not shared travel as files between the daemons, each
// checked by SHA-256. Offline: the VM is saved here and restored there;
// on any failure it is restored here.
func (s *Service) runFiles(ctx context.Context, o *ops.Op, mv *move, rep *api.MigrationReport) error {
	start := time.Now()
	name := mv.m.Name
	offline := mv.req.Mode == api.MigrateOffline
	paused := mv.dom.State == hypervisor.StatePaused
	statePath := s.workPath(mv.id, "saved")
	restoreHere := func(cause error) error {
		if !offline {
			return cause
		}
		if err := s.hv.Restore(context.Background(), statePath, "", paused); err != nil {
			return fmt.Errorf("%v; and restoring vm %s here failed too (its state is in %s): %w", cause, name, statePath, err)
		}
		os.Remove(statePath)
		return fmt.Errorf("vm %s was restored and runs on %s again: %w", name, s.cfg.Self, cause)
	}
	// The inactive definition: what the destination defines (and, for an
	// offline move, restores with); saving does not change it.
	xml, err := s.hv.XML(ctx, name, true)
	if err != nil {
		return err
	}
	mv.offer.XML = xml
	prepare := func() error {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		_, err := mv.peer.MigrationPrepare(pctx, mv.offer)
		return err
	}
	if offline {
		// The destination prepares while the memory is saved here: neither
		// needs the other, and both take seconds.
		o.Progress("saving the memory state", 0, 0, "")
		prepared := make(chan error, 1)
		go func() { prepared <- prepare() }()
		serr := s.hv.Save(ctx, name, statePath)
		perr := <-prepared
		switch {
		case serr != nil && perr != nil:
			s.prepareFailed(mv, perr)
			return fmt.Errorf("save vm %s: %w", name, serr)
		case serr != nil:
			s.cancelThere(mv)
			return fmt.Errorf("save vm %s: %w", name, serr)
		case perr != nil:
			s.prepareFailed(mv, perr)
			return restoreHere(fmt.Errorf("prepare on %s: %w", mv.req.To, perr))
		}
	} else if err := prepare(); err != nil {
		s.prepareFailed(mv, err)
		return fmt.Errorf("prepare on %s: %w", mv.req.To, err)
	}
	files, err := s.filesToSend(ctx, mv, offline, statePath)
	if err != nil {
		s.cancelThere(mv)
		return restoreHere(err)
	}
	defer func() {
		for _, f := range files {
			if f.temp {
				os.Remove(f.path)
			}
		}
	}()
	var total, sent int64
	for _, f := range files {
		total += f.size
	}
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			s.cancelThere(mv)
			return restoreHere(err)
		}
		if err := s.send(ctx, o, mv, f, &sent, total); err != nil {
			s.cancelThere(mv)
			return restoreHere(err)
		}
	}
	o.Progress("starting on "+mv.req.To, sent, total, "bytes")
	fctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeouts.finish(false))
	snaps, _ := s.hv.SnapshotXMLs(ctx, name)
	_, err = mv.peer.MigrationFinish(fctx, mv.id, api.FinishRequest{Paused: paused, Snapshots: snaps})
	cancel()
	if err != nil {
		return restoreHere(fmt.Errorf("finish on %s: %w", mv.req.To, err))
	}
	// It runs (or is defined) there: remove it here.
	if err := s.hv.Undefine(context.Background(), name); err != nil {
		s.log.Error("undefine a VM that moved", "vm", name, "err", err)
	}
	os.Remove(statePath)
	rep.TotalMs = uint64(time.Since(start).Milliseconds())
	if offline {
		rep.DowntimeMs = rep.TotalMs
	}
	for _, f := range files {
		if f.file == "state" {
			rep.MemoryBytes += uint64(f.size)
		} else {
			rep.DiskBytes += uint64(f.size)
		}
	}
	rep.Bytes = rep.MemoryBytes + rep.DiskBytes
	return nil
}

type fileToSend struct {
	file string // state or disk-NAME
	path string
	size int64
	temp bool
}

// filesToSend lists the state file and the disks that are not shared. A
// disk on a backing image is flattened first: the destination may not have
// the image.
func (s *Service) filesToSend(ctx context.Context, mv *move, offline bool, statePath string) ([]fileToSend, error) {
	var out []fileToSend
	if offline {
		out = append(out, fileToSend{file: "state", path: statePath})
	}
	_, copied := mv.copied()
	for _, d := range copied {
		f := fileToSend{file: "disk-" + d.Name, path: d.Path}
		for _, vd := range mv.m.Disks {
			if vd.Name == d.Name && vd.Backing != "" {
				flat := s.workPath(mv.id, "flat-"+d.Name)
				if out, err := exec.CommandContext(ctx, "qemu-img", "convert", "-O", "qcow2", d.Path, flat).CombinedOutput(); err != nil {
					return nil, fmt.Errorf("flatten disk %s: %v: %s", d.Name, err, strings.TrimSpace(string(out)))
				}
				f.path, f.temp = flat, true
			}
		}
		out = append(out, f)
	}
	for i := range out {
		st, err := os.Stat(out[i].path)
		if err != nil {
			return nil, err
		}
		out[i].size = st.Size()
	}
	return out, nil
}

// send streams one file to the destination with byte progress.
func (s *Service) send(ctx context.Context, o *ops.Op, mv *move, f fileToSend, sent *int64, total int64) error {
	r, err := os.Open(f.path)
	if err != nil {
		return err
	}
	defer r.Close()
	what := "copying the memory state"
	if f.file != "state" {
		what = "copying " + strings.TrimPrefix(f.file, "disk-")
	}
	pr := &progressReader{r: r, on: func(n int64) {
		*sent += n
		o.Progress(what, *sent, total, "bytes")
	}}
	sum, err := mv.peer.MigrationUpload(ctx, mv.id, f.file, pr)
	if err != nil {
		return fmt.Errorf("%s to %s: %w", what, mv.req.To, err)
	}
	s.log.Debug("file sent", "vm", mv.m.Name, "file", f.file, "bytes", f.size, "sha256", sum)
	return nil
}

type progressReader struct {
	r    io.Reader
	on   func(int64)
	last time.Time
	acc  int64
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.acc += int64(n)
	if time.Since(p.last) > 200*time.Millisecond || err != nil {
		p.on(p.acc)
		p.acc, p.last = 0, time.Now()
	}
	return n, err
}

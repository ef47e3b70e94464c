package migrate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"libvirt.org/go/libvirtxml"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
	"github.com/godwit-project/godwit/internal/hypervisor"
	"github.com/godwit-project/godwit/internal/ops"
	"github.com/godwit-project/godwit/internal/pki"
	"github.com/godwit-project/godwit/internal/vm"
)

// Defaults of a migration request.
const (
	// DefaultMaxDowntime is tighter than QEMU's 300 ms: a guest that cannot
	// make it under the auto policy ends in postcopy anyway.
	DefaultMaxDowntime     = 100 * time.Millisecond
	DefaultTimeout         = 10 * time.Minute
	DefaultProgressTimeout = time.Minute
	DefaultPostcopyAfter   = 20 * time.Second
)

// move is one migration as the source runs it.
type move struct {
	id     string
	m      vm.Moving
	dom    hypervisor.Domain
	req    api.MigrateRequest
	offer  api.MigrationOffer
	peer   *client.Client
	probes []string
	// out is the move's recovery record; undecided is set when the move
	// ends not knowing where the VM runs (the record then stays for
	// Recover).
	out       outgoing
	undecided bool
	// transfer is how an offline move goes (api.TransferStream or
	// api.TransferFiles), transferNote why it sends files unasked.
	transfer, transferNote string
	// paused: the move paused the VM here (an offline stream), so a
	// failure resumes it.
	paused bool
	// tidy, once set, ends the source's side of a move whose VM already
	// runs there (Confirm, then the copied disks and the record) after the
	// operation ended; it says whether it did (the VM's name is then free).
	tidy func() bool
	// leaving shows the VM's domain here again (handOver hid it).
	leaving func()
}

// Migrate checks a move (here and, in a preflight, on the destination) and
// starts it as an operation. Problems found before anything moves come
// back at once: 400 for a bad request, 409 with every problem.
func (s *Service) Migrate(ctx context.Context, name string, req api.MigrateRequest) (api.Operation, error) {
	mv, unlock, err := s.plan(ctx, name, req)
	if err != nil {
		return api.Operation{}, err
	}
	op := s.ops.Start("vm.migrate", "vm/"+name, func(ctx context.Context, o *ops.Op) error {
		defer func() {
			if mv.tidy == nil {
				unlock()
			}
		}()
		defer mv.peer.Close()
		defer mv.removeProbes()
		rep, err := s.run(ctx, o, mv)
		if err == nil {
			o.SetResult(rep)
		}
		if mv.tidy != nil {
			// The VM runs there and is no longer shown here; the name
			// stays held until its domain here is gone.
			go func() {
				if mv.tidy() {
					unlock()
				}
			}()
		}
		return err
	})
	return op, nil
}

// plan validates the request, holds the VM and runs the preflight.
func (s *Service) plan(ctx context.Context, name string, req api.MigrateRequest) (*move, func(), error) {
	if err := checkRequest(&req, s.cfg.Self); err != nil {
		return nil, nil, err
	}
	peer, err := s.peers.Client(ctx, req.To)
	if err != nil {
		return nil, nil, err
	}
	planned := false
	defer func() {
		if !planned {
			peer.Close()
		}
	}()
	if req.TLS {
		if req.Mode == api.MigrateOffline || req.Mode == api.MigrateCold {
			return nil, nil, api.BadRequest("tls: an offline stream always uses QEMU's TLS, and files (offline or cold) go over the daemons' TLS channel; --tls is for live migration streams")
		}
		if err := pki.QEMUTLSReady(s.cfg.QEMUTLSDir); err != nil {
			return nil, nil, api.Conflict("tls: %s on %s (the daemon writes it when started with --listen; see qemuTLSDir)", err, s.cfg.Self)
		}
	}
	m, dom, unlock, err := s.vms.HoldForMove(ctx, name, "migration to "+req.To)
	if err != nil {
		return nil, nil, err
	}
	ok := false
	defer func() {
		if !ok {
			unlock()
		}
	}()
	running := dom.State == hypervisor.StateRunning || dom.State == hypervisor.StatePaused
	if req.Mode == "" {
		req.Mode = api.MigrateCold
		if dom.State.Active() {
			req.Mode = api.MigrateLive
		}
	}
	switch {
	case (req.Mode == api.MigrateLive || req.Mode == api.MigrateOffline) && !running:
		return nil, nil, api.Conflict("vm %s is %s; a %s migration moves a running VM (use --cold for a stopped one)", name, dom.State, req.Mode)
	case req.Mode == api.MigrateCold && dom.State.Active():
		return nil, nil, api.Conflict("vm %s is %s; a cold migration moves a shut-off VM (stop it, or migrate it live)", name, dom.State)
	}
	snaps, err := s.hv.SnapshotXMLs(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	mv := &move{id: newID(), m: m, dom: dom, req: req, peer: peer}
	if req.Mode == api.MigrateOffline {
		mv.transfer, mv.transferNote, err = s.chooseTransfer(req.Transfer, len(snaps))
		if err != nil {
			return nil, nil, err
		}
	} else if req.Transfer != "" {
		return nil, nil, api.BadRequest("transfer: %s is for offline moves; this one is %s", req.Transfer, req.Mode)
	}
	if err := s.makeOffer(ctx, mv); err != nil {
		mv.removeProbes()
		return nil, nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	ans, err := peer.MigrationPreflight(pctx, mv.offer)
	if err != nil {
		mv.removeProbes()
		if api.Status(err) != 0 {
			return nil, nil, api.StatusErrorf(api.Status(err), "preflight on %s: %v", req.To, err)
		}
		return nil, nil, api.StatusErrorf(502, "cannot reach %s for the preflight: %v", req.To, err)
	}
	if len(ans.Problems) > 0 {
		mv.removeProbes()
		return nil, nil, api.Conflict("vm %s cannot move to %s: %s", name, req.To, joinProblems(ans.Problems))
	}
	if len(ans.Disks) != len(mv.offer.Disks) {
		mv.removeProbes()
		return nil, nil, fmt.Errorf("preflight on %s answered for %d disks, not %d", req.To, len(ans.Disks), len(mv.offer.Disks))
	}
	mv.offer.Disks = ans.Disks
	if ans.NoStream != "" && mv.transfer == api.TransferStream {
		if req.Transfer == api.TransferStream {
			mv.removeProbes()
			return nil, nil, api.Conflict("transfer: vm %s cannot stream to %s: %s (try --transfer files)", name, req.To, ans.NoStream)
		}
		mv.transfer, mv.transferNote = api.TransferFiles, ans.NoStream
		mv.offer.Transfer, mv.offer.TLS = api.TransferFiles, false
	}
	if err := snapshotsMove(name, req.Mode, snaps, mv.offer.Disks, m.Disks); err != nil {
		mv.removeProbes()
		return nil, nil, err
	}
	ok, planned = true, true
	return mv, unlock, nil
}

// snapshotsMove refuses a move that would strand the VM's snapshots: their
// metadata always moves, but their data lives in the disk files. libvirt
// will not migrate a VM with internal snapshots live at all. On shared
// storage the files stay; a live disk copy carries only the current state;
// an offline or cold copy sends whole files, which holds internal snapshots
// but not external ones (overlay chains) or disks flattened off an image.
func snapshotsMove(vmName, mode string, snaps []string, disks []api.MigrationDisk, vmDisks []api.VMDisk) error {
	if len(snaps) == 0 {
		return nil
	}
	if mode == api.MigrateLive {
		for _, x := range snaps {
			var ds libvirtxml.DomainSnapshot
			if err := ds.Unmarshal(x); err != nil {
				return err
			}
			if ds.Disks == nil || len(ds.Disks.Disks) == 0 || ds.Disks.Disks[0].Snapshot != "external" {
				return api.Conflict("vm %s has internal snapshots (%s), and libvirt does not migrate such a VM live: migrate it --offline (its snapshots move with it), or delete them", vmName, ds.Name)
			}
		}
	}
	var copied []string
	for _, d := range disks {
		if !d.Shared {
			copied = append(copied, d.Name)
		}
	}
	if len(copied) == 0 {
		return nil
	}
	for _, x := range snaps {
		var ds libvirtxml.DomainSnapshot
		if err := ds.Unmarshal(x); err != nil {
			return err
		}
		if ds.Disks != nil {
			for _, d := range ds.Disks.Disks {
				if d.Snapshot == "external" {
					return api.Conflict("vm %s has external snapshots (overlay chains, snapshot %s); they can move only with shared storage", vmName, ds.Name)
				}
			}
		}
	}
	if mode == api.MigrateLive {
		return api.Conflict("vm %s has %d snapshot(s), which a live disk copy cannot carry (it copies the current state only): migrate it --offline (whole disk files move), put its disks on shared storage, or delete the snapshots", vmName, len(snaps))
	}
	for _, d := range vmDisks {
		if d.Backing != "" && slices.Contains(copied, d.Name) {
			return api.Conflict("vm %s has snapshots and disk %s is an overlay on %s: copying it flattens it and loses the snapshots", vmName, d.Name, d.Backing)
		}
	}
	return nil
}

// chooseTransfer decides how an offline move goes: asked (""
// means stream, falling back to files), what this host can do and what
// libvirt can carry. note says why it sends files unasked. Whether the
// destination can receive a stream its preflight says (NoStream).
func (s *Service) chooseTransfer(asked string, snapshots int) (transfer, note string, err error) {
	if asked == api.TransferFiles {
		return api.TransferFiles, "", nil
	}
	why := ""
	switch {
	case snapshots > 0:
		// libvirt refuses to migrate a domain with snapshots, and an NBD
		// copy would carry the current state only: files move whole.
		why = fmt.Sprintf("the VM has %d snapshot(s), which libvirt's migration cannot carry", snapshots)
	default:
		if err := pki.QEMUTLSReady(s.cfg.QEMUTLSDir); err != nil {
			why = fmt.Sprintf("QEMU TLS is not set up on %s: %v", s.cfg.Self, err)
		}
	}
	switch {
	case why == "":
		return api.TransferStream, "", nil
	case asked == api.TransferStream:
		return "", "", api.Conflict("transfer: cannot stream: %s (try --transfer files)", why)
	}
	return api.TransferFiles, why, nil
}

func joinProblems(p []string) string {
	out := ""
	for i, s := range p {
		if i > 0 {
			out += "; "
		}
		out += s
	}
	return out
}

func checkRequest(r *api.MigrateRequest, self string) error {
	switch {
	case r.To == "":
		return api.BadRequest("to: missing (the destination host)")
	case r.To == self:
		return api.BadRequest("to: %s is this host", r.To)
	}
	switch r.Mode {
	case "", api.MigrateLive, api.MigrateOffline, api.MigrateCold:
	default:
		return api.BadRequest("mode: %q is not live, offline or cold", r.Mode)
	}
	switch r.Transfer {
	case "", api.TransferStream, api.TransferFiles:
	default:
		return api.BadRequest("transfer: %q is not stream or files", r.Transfer)
	}
	if r.Policy == "" {
		r.Policy = api.PolicyAuto
	}
	switch r.Policy {
	case api.PolicyAuto, api.PolicyPrecopy, api.PolicyPostcopy:
	default:
		return api.BadRequest("policy: %q is not auto, precopy or postcopy", r.Policy)
	}
	for field, v := range map[string]int{"maxDowntimeMs": r.MaxDowntimeMs, "bandwidthMiB": r.BandwidthMiB, "parallel": r.Parallel,
		"timeoutSeconds": r.TimeoutSeconds, "progressTimeoutSeconds": r.ProgressTimeoutSeconds, "postcopyAfterSeconds": r.PostcopyAfterSeconds} {
		if v < 0 {
			return api.BadRequest("%s: %d is negative", field, v)
		}
	}
	if r.Parallel > 64 {
		return api.BadRequest("parallel: %d connections is more than 64", r.Parallel)
	}
	if r.MaxDowntimeMs > 0 && r.MaxDowntimeMs < 10 {
		return api.BadRequest("maxDowntimeMs: %d ms is below 10 ms, which QEMU cannot hold", r.MaxDowntimeMs)
	}
	return nil
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// makeOffer describes the VM for the destination and writes a probe file
// next to each disk, so the destination can tell which disks it sees too.
func (s *Service) makeOffer(ctx context.Context, mv *move) error {
	m := mv.m
	xml, err := s.hv.XML(ctx, m.Name, true)
	if err != nil {
		return err
	}
	virtType := "qemu"
	if containsTypeKVM(xml) {
		virtType = "kvm"
	}
	cpuXML, err := s.liveCPU(ctx, m.Name)
	if err != nil {
		return err
	}
	mv.offer = api.MigrationOffer{ID: mv.id, Mode: mv.req.Mode, VM: m.Name, UUID: m.UUID, Spec: m.Spec,
		CreatedAt: m.CreatedAt, VirtType: virtType, NICs: m.NICs, Boot: m.Boot, Seed: m.Seed, CPUXML: cpuXML, TLS: mv.req.TLS,
		Adopted: m.Adopted, Kept: m.Kept, Transfer: mv.transfer}
	if mv.transfer == api.TransferStream {
		mv.offer.TLS = true // an offline stream always goes over QEMU's TLS
	}
	for _, d := range m.Disks {
		md := api.MigrationDisk{Name: d.Name, Target: d.Target, Size: d.Size, Path: d.Path, Pool: d.Pool, Volume: d.Volume}
		if s.cfg.Shared != nil && d.Pool != "" {
			md.DeclaredShared, _ = s.cfg.Shared.IsShared(ctx, d.Pool)
		}
		probe := filepath.Join(filepath.Dir(d.Path), ".godwit-probe-"+mv.id+"-"+d.Name)
		value := newID() + newID()
		if err := os.WriteFile(probe, []byte(value), 0o644); err == nil {
			md.Probe, md.ProbeValue = probe, value
			mv.probes = append(mv.probes, probe)
		}
		mv.offer.Disks = append(mv.offer.Disks, md)
	}
	return nil
}

// liveCPU is the CPU the running guest sees (host-model expanded to a
// model and features), for the destination to compare with its own; ""
// for a guest with QEMU's default CPU (TCG) or one that is not running.
func (s *Service) liveCPU(ctx context.Context, name string) (string, error) {
	x, err := s.hv.XML(ctx, name, false)
	if err != nil {
		return "", err
	}
	return cpuOf(x)
}

func cpuOf(x string) (string, error) {
	var d libvirtxml.Domain
	if err := d.Unmarshal(x); err != nil {
		return "", err
	}
	if d.CPU == nil || d.CPU.Model == nil || d.CPU.Model.Value == "" {
		return "", nil
	}
	cpu := *d.CPU
	cpu.Mode = "" // compare the model and features, not how they were chosen
	return cpu.Marshal()
}

func containsTypeKVM(xml string) bool {
	for _, p := range []string{`<domain type='kvm'`, `<domain type="kvm"`} {
		if len(xml) >= len(p) && xml[:len(p)] == p {
			return true
		}
	}
	return false
}

func (mv *move) removeProbes() {
	for _, p := range mv.probes {
		os.Remove(p)
	}
	mv.probes = nil
}

func (mv *move) copied() (shared, copied []api.MigrationDisk) {
	for _, d := range mv.offer.Disks {
		if d.Shared {
			shared = append(shared, d)
		} else {
			copied = append(copied, d)
		}
	}
	return shared, copied
}

// run moves the VM; on any error the VM is left running here.
func (s *Service) run(ctx context.Context, o *ops.Op, mv *move) (api.MigrationReport, error) {
	shared, copied := mv.copied()
	rep := api.MigrationReport{VM: mv.m.Name, From: s.cfg.Self, To: mv.req.To, Mode: mv.req.Mode,
		SharedDisks: len(shared), CopiedDisks: len(copied), Transfer: mv.transfer, TransferNote: mv.transferNote}
	if mv.transferNote != "" {
		o.Progress("sending files: "+mv.transferNote, 0, 0, "")
		s.log.Info("offline move sends files, not a stream", "vm", mv.m.Name, "to", mv.req.To, "why", mv.transferNote)
	}
	mv.out = outgoing{ID: mv.id, VM: mv.m.Name, To: mv.req.To, Mode: mv.req.Mode, Phase: "started", Started: time.Now().UTC(),
		WasPaused: mv.dom.State == hypervisor.StatePaused}
	for _, d := range mv.m.Disks {
		for _, c := range copied {
			if c.Name == d.Name {
				mv.out.Copied = append(mv.out.Copied, d)
			}
		}
	}
	s.setActive(mv.id, true)
	defer func() {
		if mv.tidy == nil {
			s.setActive(mv.id, false)
		}
	}()
	// The record comes first: a move a restart could not finish or undo
	// does not start.
	if err := s.putOut(ctx, mv.out); err != nil {
		return rep, fmt.Errorf("vm %s did not move (nothing did): %w", mv.m.Name, err)
	}
	defer func() {
		if !mv.undecided && mv.tidy == nil {
			s.dropRecord(outBucket, mv.id)
		}
	}()

	var err error
	switch {
	case mv.req.Mode == api.MigrateLive:
		rep.Policy = mv.req.Policy
		err = s.runStream(ctx, o, mv, &rep)
	case mv.transfer == api.TransferStream:
		err = s.runStream(ctx, o, mv, &rep)
	default:
		err = s.runFiles(ctx, o, mv, &rep)
	}
	if err != nil {
		return rep, err
	}
	if mv.tidy == nil {
		s.movedAway(context.Background(), mv.out)
	}
	s.log.Info("vm migrated", "vm", rep.VM, "to", rep.To, "mode", rep.Mode, "totalMs", rep.TotalMs, "downtimeMs", rep.DowntimeMs, "bytes", rep.Bytes)
	return rep, nil
}

// runStream is libvirt's v3 protocol, split: Begin3 here, Prepare3 there,
// Perform3 here (watched by the policy monitor), Finish3 there, Confirm3
// here. A live move streams a running guest. An offline stream pauses it
// here right before Perform3 (Begin and Prepare run while it runs), sends
// its memory once and its disks by NBD, all over QEMU's TLS, and Finish3
// resumes it there (or leaves it paused if it was): nothing of the guest
// changes while its memory and disks are copied.
func (s *Service) runStream(ctx context.Context, o *ops.Op, mv *move, rep *api.MigrationReport) error {
	start := time.Now()
	_, copied := mv.copied()
	offline := mv.req.Mode == api.MigrateOffline
	wasPaused := mv.dom.State == hypervisor.StatePaused
	// No MigratePersistDest: libvirt's Finish would write the persistent
	// definition there before it resumes the guest, inside the downtime.
	// The destination defines it right after Finish instead (dest.go).
	flags := hypervisor.MigrateUndefineSource
	switch {
	case !offline:
		flags |= hypervisor.MigrateLive
	case wasPaused:
		flags |= hypervisor.MigratePaused
	}
	params := hypervisor.MigrateParams{BandwidthMiB: uint64(mv.req.BandwidthMiB)}
	if len(copied) > 0 {
		flags |= hypervisor.MigrateNonSharedDisk
		for _, d := range copied {
			params.MigrateDisks = append(params.MigrateDisks, d.Target)
		}
	}
	if len(copied) < len(mv.offer.Disks) {
		// The destination sees these disks at the same path; libvirt cannot
		// tell a shared directory on a local filesystem from a local one.
		flags |= hypervisor.MigrateUnsafe
	}
	switch {
	case offline: // one pass of a paused guest: nothing to converge
	case mv.req.Policy == api.PolicyAuto:
		flags |= hypervisor.MigrateAutoConverge | hypervisor.MigratePostcopy
	case mv.req.Policy == api.PolicyPostcopy:
		flags |= hypervisor.MigratePostcopy
	}
	if mv.req.Parallel > 1 {
		flags |= hypervisor.MigrateParallel
		params.Parallel = mv.req.Parallel
	}
	if mv.offer.TLS {
		flags |= hypervisor.MigrateTLS
	}
	srcFlags := flags | hypervisor.MigrateChangeProtection

	// Snapshots do not travel with a live migration: carry their metadata.
	snaps, err := s.hv.SnapshotXMLs(ctx, mv.m.Name)
	if err != nil {
		return fmt.Errorf("read snapshots of vm %s: %w", mv.m.Name, err)
	}
	sess, err := s.hv.OpenSession(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if mv.tidy == nil {
			sess.Close()
		}
	}()
	o.Progress("begin", 0, 0, "")
	cookie, xml, err := sess.Begin(ctx, mv.m.Name, params, srcFlags)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	s.log.Debug("migration begun", "vm", mv.m.Name, "ms", time.Since(start).Milliseconds())
	begun := time.Now()
	mv.offer.XML, mv.offer.Cookie, mv.offer.Flags = xml, cookie, flags
	mv.offer.BandwidthMiB, mv.offer.Parallel = params.BandwidthMiB, params.Parallel
	o.Progress("prepare on "+mv.req.To, 0, 0, "")
	prep, err := mv.peer.MigrationPrepare(ctx, mv.offer)
	if err != nil {
		s.prepareFailed(mv, err)
		return fmt.Errorf("prepare on %s: %w", mv.req.To, err)
	}
	params.URI = prep.URI
	s.log.Debug("migration prepared", "vm", mv.m.Name, "ms", time.Since(start).Milliseconds())
	prepared := time.Now()

	// From Perform on the VM may end up there: a restart must ask.
	if err := s.setPhase(ctx, mv, "performing"); err != nil {
		s.cancelThere(mv)
		return fmt.Errorf("vm %s did not move: %w", mv.m.Name, err)
	}
	var pausedAt time.Time
	if offline {
		pausedAt = time.Now()
		if !wasPaused {
			o.Progress("pausing the guest", 0, 0, "")
			if err := s.hv.Suspend(ctx, mv.m.Name); err != nil {
				s.cancelThere(mv)
				return fmt.Errorf("pause vm %s: %w", mv.m.Name, err)
			}
			mv.paused = true
		}
	}
	mon := s.startMonitor(ctx, o, mv, flags)
	// Perform is not bound to ctx: a cancel aborts the job (monitor), and
	// Perform then returns.
	cookie, perr := sess.Perform(context.Background(), mv.m.Name, params, prep.Cookie, srcFlags)
	performed := time.Now()
	s.log.Debug("migration performed", "vm", mv.m.Name, "ms", time.Since(start).Milliseconds())
	res := mon.stop()
	s.log.Debug("perform returned", "vm", mv.m.Name, "monitorStopMs", time.Since(performed).Milliseconds())
	rep.Iterations, rep.Postcopy, rep.AutoConverge = res.last.Iteration, res.postcopy, res.maxThrottle
	if perr != nil {
		s.cancelThere(mv)
		if err := s.unpause(mv); err != nil {
			return fmt.Errorf("the migration failed (%v), and resuming vm %s on %s failed too: %w", perr, mv.m.Name, s.cfg.Self, err)
		}
		if res.reason != nil {
			return res.reason
		}
		return fmt.Errorf("the migration failed; vm %s %s %s: %w", mv.m.Name, mv.stays(), s.cfg.Self, perr)
	}
	// The guest is paused now: nothing may stand between here and Finish
	// on the destination, which resumes it (this is the downtime).
	fctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeouts.finish(true))
	fin, ferr := mv.peer.MigrationFinish(fctx, mv.id, api.FinishRequest{Cookie: cookie, Snapshots: snaps})
	cancel()
	rep.Phases = &api.MigrationPhases{
		BeginMs: ms(begun.Sub(start)), PrepareMs: ms(prepared.Sub(begun)), PerformMs: ms(performed.Sub(prepared)),
		FinishMs: ms(time.Since(performed)), DestFinishMs: fin.Finish3Ms, DestHandlerMs: fin.HandlerMs,
	}
	src, _ := s.hv.JobStats(context.Background(), mv.m.Name, true)
	// The move is done when the guest runs there; Confirm below only
	// tidies up here (the source QEMU takes a while to exit).
	rep.TotalMs = uint64(time.Since(start).Milliseconds())
	s.log.Debug("finish answered", "vm", mv.m.Name, "sincePerformMs", time.Since(performed).Milliseconds())
	if offline {
		rep.DowntimeMs = ms(time.Since(pausedAt))
	}
	if ferr != nil {
		return s.afterFailedFinish(ctx, mv, sess, params, srcFlags, ferr)
	}
	switch {
	case offline && s.handOver(mv):
		// Confirm (libvirt ending the source QEMU) runs after the
		// operation ended: the VM runs there and is gone from here.
		cookie := fin.Cookie
		mv.tidy = func() bool {
			defer sess.Close()
			return s.tidyUp(mv, func() error {
				return sess.Confirm(context.Background(), mv.m.Name, params, cookie, srcFlags, false)
			})
		}
	default:
		confirming := time.Now()
		if err := sess.Confirm(context.Background(), mv.m.Name, params, fin.Cookie, srcFlags, false); err != nil {
			// The VM runs there; only the source's bookkeeping failed.
			s.log.Error("confirm after a migration", "vm", mv.m.Name, "err", err)
			s.dropSourceDomain(mv.m.Name)
		}
		rep.Phases.ConfirmMs = ms(time.Since(confirming))
	}
	if fin.Warning != "" {
		rep.Warning = fin.Warning
		s.log.Error("a migrated VM runs there, with a warning", "vm", mv.m.Name, "to", mv.req.To, "warning", fin.Warning)
	}
	if !offline {
		rep.DowntimeMs = max(fin.DowntimeMs, src.DowntimeMs)
	}
	if res.postcopy && rep.DowntimeMs == 0 {
		rep.DowntimeMs = res.postcopyPause
	}
	rep.MemoryBytes = max(src.MemProcessed, res.last.MemProcessed, fin.MemoryBytes)
	rep.DiskBytes = max(src.DiskProcessed, res.diskBytes, fin.DiskBytes)
	rep.Bytes = max(src.DataProcessed, res.last.DataProcessed, fin.Bytes, rep.MemoryBytes+rep.DiskBytes)
	o.Progress("done", int64(rep.Bytes), int64(rep.Bytes), "bytes")
	return nil
}

// afterFailedFinish decides, when Finish on the destination did not answer
// cleanly, where the VM runs. A clean refusal means it did not start there:
// resume it here. No answer at all means it may run there: ask until the
// destination says, or the move is cancelled. It runs there (godwit's and
// running): end the move here. It is not there, or its incoming domain was
// never finished and the destination undoes it when told: resume it here.
// Otherwise it stays paused here rather than running twice, and the move's
// record stays for Recover to settle.
func (s *Service) afterFailedFinish(ctx context.Context, mv *move, sess hypervisor.Session, p hypervisor.MigrateParams, flags uint32, ferr error) error {
	resume := func() error {
		err := sess.Confirm(context.Background(), mv.m.Name, p, nil, flags, true)
		if err == nil {
			err = s.unpause(mv)
		}
		if err != nil {
			return fmt.Errorf("finish on %s failed (%v), and resuming vm %s here failed too: %w", mv.req.To, ferr, mv.m.Name, err)
		}
		return fmt.Errorf("finish on %s failed; vm %s %s %s: %w", mv.req.To, mv.m.Name, mv.stays(), s.cfg.Self, ferr)
	}
	if api.Status(ferr) != 0 {
		return resume()
	}
	where, why := s.askWhere(ctx, mv)
	switch where {
	case runsThere:
		s.log.Warn("finish did not answer, but the VM runs on the destination", "vm", mv.m.Name, "to", mv.req.To)
		if err := sess.Confirm(context.Background(), mv.m.Name, p, nil, flags, false); err != nil {
			s.dropSourceDomain(mv.m.Name)
		}
		return nil
	case notThere:
		return resume()
	}
	mv.undecided = true
	if err := s.setPhase(context.Background(), mv, "finish unanswered"); err != nil {
		s.log.Error("record that a migration's Finish went unanswered", "vm", mv.m.Name, "err", err)
	}
	return fmt.Errorf("finish on %s did not answer and %s: it stays paused on %s so that it never runs twice; godwit settles it when this daemon next starts and %s answers, or check %s, then resume it here (godwit vm resume) if it is not there: %w",
		mv.req.To, why, s.cfg.Self, mv.req.To, mv.req.To, ferr)
}

// Where a VM is, as the destination of its move says.
const (
	unknown = iota
	runsThere
	notThere
)

// askWhere asks the destination where the VM of a move is until it says,
// AskFor passes or ctx ends; why says which, when it never said.
func (s *Service) askWhere(ctx context.Context, mv *move) (where int, why string) {
	giveUp := time.NewTimer(s.cfg.Timeouts.AskFor)
	defer giveUp.Stop()
	for {
		if where := s.whereIs(ctx, mv.peer, mv.id, mv.m.Name); where != unknown {
			return where, ""
		}
		select {
		case <-ctx.Done():
			return unknown, "the move was cancelled while asking whether vm " + mv.m.Name + " runs there"
		case <-giveUp.C:
			return unknown, mv.req.To + " cannot be asked whether vm " + mv.m.Name + " runs there"
		case <-time.After(s.cfg.Timeouts.AskEvery):
		}
	}
}

// whereIs asks the destination of move id once whether its VM runs
// there. An incoming domain there that Finish never finished counts as
// not there once the destination agrees to undo it.
func (s *Service) whereIs(ctx context.Context, peer *client.Client, id, vm string) int {
	cctx, cancel := context.WithTimeout(ctx, s.cfg.Timeouts.Ask)
	defer cancel()
	v, err := peer.GetVM(cctx, vm)
	switch {
	case err == nil && v.Managed && v.State == api.VMRunning:
		return runsThere
	case api.Status(err) == http.StatusNotFound:
		return notThere
	case err == nil && !v.Managed:
		// Finish never ran there, or runs now (then it refuses: 409).
		if _, err := peer.MigrationFinish(cctx, id, api.FinishRequest{Cancelled: true}); err == nil {
			return notThere
		}
	}
	return unknown
}

// stays says how a failed move leaves the VM here: running, or paused as
// it was before the move.
func (mv *move) stays() string {
	if mv.dom.State == hypervisor.StatePaused {
		return "stays paused, as it was, on"
	}
	return "keeps running on"
}

// unpause resumes a VM the move paused here (an offline stream) once the
// move failed; a VM paused before the move stays so. libvirt may have
// resumed it already: it restores the state the domain had at Begin,
// before the move paused it.
func (s *Service) unpause(mv *move) error {
	if !mv.paused {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := s.hv.Lookup(ctx, mv.m.Name)
	if err != nil {
		return err
	}
	if d.State != hypervisor.StatePaused {
		mv.paused = false
		return nil
	}
	if err := s.hv.Resume(ctx, mv.m.Name); err != nil {
		return err
	}
	mv.paused = false
	return nil
}

// prepareFailed tells the destination to undo a Prepare whose answer was
// lost: it may have prepared (a refusal, with a status, undid itself).
func (s *Service) prepareFailed(mv *move, err error) {
	if api.Status(err) == 0 {
		s.cancelThere(mv)
	}
}

// setPhase records how far a move went.
func (s *Service) setPhase(ctx context.Context, mv *move, phase string) error {
	mv.out.Phase = phase
	return s.putOut(ctx, mv.out)
}

// cancelThere tells the destination to undo its side of a move. When it
// cannot be told, it undoes it by itself once the source has been silent
// for its idle timeout.
func (s *Service) cancelThere(mv *move) {
	cctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeouts.Cancel)
	defer cancel()
	if _, err := mv.peer.MigrationFinish(cctx, mv.id, api.FinishRequest{Cancelled: true}); err != nil && api.Status(err) != 404 {
		s.log.Warn("could not cancel the migration on the destination; it cleans up by itself when the source goes silent", "to", mv.req.To, "err", err)
	}
}

// dropSourceDomain removes what is left of a domain that moved.
func (s *Service) dropSourceDomain(name string) {
	ctx := context.Background()
	if d, err := s.hv.Lookup(ctx, name); err == nil {
		if d.State.Active() {
			_ = s.hv.Destroy(ctx, name)
		}
		if d.Persistent {
			_ = s.hv.Undefine(ctx, name)
		}
	}
}

func ms(d time.Duration) uint64 { return uint64(d.Milliseconds()) }

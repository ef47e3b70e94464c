package migrate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/domainxml"
	"github.com/godwit-project/godwit/internal/hypervisor"
	"github.com/godwit-project/godwit/internal/pki"
	"github.com/godwit-project/godwit/internal/revert"
	"github.com/godwit-project/godwit/internal/vm"
)

// moving is the VM of an offer, with its disks as they are here.
func moving(o api.MigrationOffer, disks []api.VMDisk) vm.Moving {
	return vm.Moving{Name: o.VM, UUID: o.UUID, Spec: o.Spec, Disks: disks, NICs: o.NICs,
		ConsoleLogged: logsConsole(o.Spec), CreatedAt: o.CreatedAt, Boot: o.Boot, Seed: o.Seed, Adopted: o.Adopted, Kept: o.Kept,
		Run: o.Mode != api.MigrateCold}
}

// incoming is a move this host is receiving.
type incoming struct {
	mu       sync.Mutex
	arrival  *vm.Arrival
	rec      incomingRecord
	sess     hypervisor.Session
	unlock   func()
	lastSeen time.Time
	done     bool
	stop     chan struct{}
}

// Preflight answers whether a VM can move here, listing every problem.
func (s *Service) Preflight(ctx context.Context, from string, offer api.MigrationOffer) (api.PreflightAnswer, error) {
	if err := checkOffer(offer); err != nil {
		return api.PreflightAnswer{}, err
	}
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if err := s.vms.NameFree(ctx, offer.VM); err != nil {
		if api.Status(err) != 409 {
			return api.PreflightAnswer{}, err
		}
		add("name: %v", err)
	}
	host, err := s.hv.HostInfo(ctx)
	if err != nil {
		return api.PreflightAnswer{}, err
	}
	if offer.Mode != api.MigrateCold && uint64(offer.Spec.Memory) > host.FreeBytes {
		add("memory: the VM needs %s, %s has %s free", offer.Spec.Memory.Human(), s.cfg.Self, api.Size(host.FreeBytes).Human())
	}
	if !slices.Contains(host.VirtTypes, offer.VirtType) {
		add("accelerator: the VM is a %q domain, which %s's libvirt does not offer (%s)", offer.VirtType, s.cfg.Self, strings.Join(host.VirtTypes, ", "))
	}
	if offer.CPUXML != "" {
		if r, err := s.hv.CompareCPU(ctx, offer.VirtType, offer.CPUXML); err != nil {
			add("cpu: cannot compare the VM's CPU with %s's: %v", s.cfg.Self, err)
		} else if r == 0 {
			add("cpu: the VM's CPU model does not run on %s's CPU", s.cfg.Self)
		}
	}
	problems = append(problems, s.vms.CheckArrival(ctx, moving(offer, nil))...)
	noStream := ""
	if offer.TLS {
		switch err := pki.QEMUTLSReady(s.cfg.QEMUTLSDir); {
		case err != nil && offer.Transfer == api.TransferStream:
			noStream = fmt.Sprintf("QEMU TLS is not set up on %s: %v", s.cfg.Self, err)
		case err != nil:
			add("tls: %v on %s", err, s.cfg.Self)
		}
	}
	boot := offer.Boot
	if boot == nil {
		boot = offer.Spec.Boot
	}
	if b := boot; b != nil {
		for field, p := range map[string]string{"boot.kernel": b.Kernel, "boot.initrd": b.Initrd} {
			if p == "" {
				continue
			}
			if _, err := os.Stat(p); err != nil {
				add("%s: %s is not on %s (a direct-boot kernel must exist at the same path on both hosts)", field, p, s.cfg.Self)
			}
		}
	}
	disks, need, err := s.placeDisks(ctx, offer)
	if err != nil {
		return api.PreflightAnswer{}, err
	}
	for _, d := range disks {
		if d.DeclaredShared && !d.Shared {
			add("disk %s: pool %s is declared shared, but %s does not see %s (is the shared filesystem mounted there?)", d.Name, d.Pool, s.cfg.Self, d.Path)
		}
		if d.Shared {
			continue
		}
		if _, err := s.hv.VolumeInfo(ctx, d.DestPool, d.DestVolume); err == nil {
			add("disk %s: volume %s/%s already exists on %s", d.Name, d.DestPool, d.DestVolume, s.cfg.Self)
		} else if !errors.Is(err, hypervisor.ErrNotFound) {
			return api.PreflightAnswer{}, err
		}
	}
	if need > 0 {
		pool, err := s.hv.PoolInfo(ctx, s.vms.Pool())
		if err != nil {
			return api.PreflightAnswer{}, err
		}
		if need > pool.Available {
			add("disks: copying them needs %s, pool %s on %s has %s available", api.Size(need).Human(), pool.Name, s.cfg.Self, api.Size(pool.Available).Human())
		}
	}
	return api.PreflightAnswer{Problems: problems, Disks: disks, NoStream: noStream}, nil
}

func checkOffer(o api.MigrationOffer) error {
	if o.ID == "" || strings.ContainsAny(o.ID, "/.") {
		return api.BadRequest("id: missing or malformed")
	}
	if err := vm.ValidateName(o.VM); err != nil {
		return err
	}
	switch o.Mode {
	case api.MigrateLive, api.MigrateOffline, api.MigrateCold:
	default:
		return api.BadRequest("mode: %q is not live, offline or cold", o.Mode)
	}
	switch o.Transfer {
	case "", api.TransferStream, api.TransferFiles:
	default:
		return api.BadRequest("transfer: %q is not stream or files", o.Transfer)
	}
	return nil
}

// streamed says whether a move goes by libvirt's migration protocol (a
// live move, an offline stream) rather than as files.
func streamed(o api.MigrationOffer) bool {
	return o.Mode == api.MigrateLive || (o.Mode == api.MigrateOffline && o.Transfer == api.TransferStream)
}

// placeDisks decides, per disk, whether it is shared (the source's probe
// file reads back here) or must be copied, and where a copy goes. need is
// the room the copies take.
func (s *Service) placeDisks(ctx context.Context, offer api.MigrationOffer) ([]api.MigrationDisk, uint64, error) {
	pool, err := s.hv.PoolInfo(ctx, s.vms.Pool())
	if err != nil {
		return nil, 0, err
	}
	var need uint64
	out := make([]api.MigrationDisk, len(offer.Disks))
	for i, d := range offer.Disks {
		d.Shared = false
		if d.Probe != "" && d.ProbeValue != "" && filepath.IsAbs(d.Probe) {
			if b, err := os.ReadFile(d.Probe); err == nil && string(b) == d.ProbeValue {
				d.Shared = true
			}
		}
		if d.Shared {
			// A shared pool has the same name and path on every host.
			d.DestPath, d.DestPool, d.DestVolume = d.Path, d.Pool, d.Volume
		} else {
			d.DestPool = pool.Name
			d.DestVolume = vm.VolumeName(offer.VM, d.Name)
			d.DestPath = filepath.Join(pool.Path, d.DestVolume)
			need += uint64(d.Size)
		}
		out[i] = d
	}
	return out, need, nil
}

// destFlags are the flags of the destination's phases.
func destFlags(f uint32) uint32 {
	return f &^ (hypervisor.MigrateAbortOnError | hypervisor.MigrateAutoConverge | hypervisor.MigrateChangeProtection)
}

// Prepare makes this host ready to receive a VM: it reserves the name,
// creates the volumes the disks are copied into, and (live) runs Prepare3
// on a connection kept for the rest of the move.
func (s *Service) Prepare(ctx context.Context, from string, offer api.MigrationOffer) (api.PrepareAnswer, error) {
	if err := checkOffer(offer); err != nil {
		return api.PrepareAnswer{}, err
	}
	s.mu.Lock()
	_, dup := s.incoming[offer.ID]
	s.mu.Unlock()
	if dup {
		return api.PrepareAnswer{}, api.Conflict("migration %s is already prepared", offer.ID)
	}
	unlock, err := s.vms.ReserveIncoming(ctx, offer.VM, "incoming migration "+offer.ID+" from "+from)
	if err != nil {
		return api.PrepareAnswer{}, err
	}
	r := revert.New()
	defer r.Fail()
	r.Add(unlock)
	in := &incoming{unlock: unlock, lastSeen: time.Now(), stop: make(chan struct{}),
		rec: incomingRecord{Offer: offer, From: from, Phase: "prepared", Started: time.Now().UTC()}}

	// Re-check where each disk goes; the source's view came from preflight.
	disks, _, err := s.placeDisks(ctx, offer)
	if err != nil {
		return api.PrepareAnswer{}, err
	}
	for i, d := range disks {
		if d.Shared != offer.Disks[i].Shared {
			return api.PrepareAnswer{}, api.Conflict("disk %s: shared storage changed since the preflight", d.Name)
		}
	}
	in.rec.Offer.Disks = disks
	// The record comes before any side effect, and lists every volume
	// Prepare is about to make: a crash in between leaves a record that
	// undoes them all (the undo skips those never made). A record that
	// cannot be written stops the move here.
	for _, d := range disks {
		if !d.Shared {
			in.rec.Created = append(in.rec.Created, api.VMDisk{Name: d.Name, Target: d.Target, Pool: d.DestPool, Volume: d.DestVolume, Path: d.DestPath, Size: d.Size})
		}
	}
	if err := s.putIn(ctx, in.rec); err != nil {
		return api.PrepareAnswer{}, err
	}
	r.Add(func() { s.dropRecord(inBucket, offer.ID) })
	for i, vd := range in.rec.Created {
		info, err := s.hv.CreateVolume(ctx, vd.Pool, hypervisor.Volume{Name: vd.Volume, Capacity: uint64(vd.Size), Format: "qcow2"})
		if err != nil {
			return api.PrepareAnswer{}, fmt.Errorf("create volume for disk %s: %w", vd.Name, err)
		}
		in.rec.Created[i].Path = info.Path
		r.Add(func() { _ = s.hv.DeleteVolume(context.Background(), vd.Pool, vd.Volume) })
	}
	in.arrival, err = s.vms.PrepareArrival(ctx, moving(offer, nil), true)
	if err != nil {
		return api.PrepareAnswer{}, err
	}
	r.Add(func() { s.vms.AbandonArrival(in.arrival) })
	console := ""
	if logsConsole(offer.Spec) {
		console = s.vms.ConsolePath(offer.VM)
	}
	nets := map[string]string{}
	for _, n := range offer.NICs {
		nets[n.Libvirt] = in.arrival.Libvirt[n.Network]
	}
	owner := s.vms.Owner()
	if offer.Adopted {
		owner = "" // an adopted domain's metadata is its own
	}
	in.rec.XML, err = rewriteXML(offer.XML, rewrite{disks: disks, nets: nets, seedFrom: offer.Seed, seedTo: in.arrival.Seed,
		console: console, owner: owner, boot: in.arrival.BootFiles})
	if err != nil {
		return api.PrepareAnswer{}, err
	}
	if err := s.putIn(ctx, in.rec); err != nil {
		return api.PrepareAnswer{}, err
	}

	var ans api.PrepareAnswer
	if streamed(offer) {
		host := s.listenHost()
		if host == "" {
			return api.PrepareAnswer{}, api.Conflict("%s has no peer URL to receive a migration on (--listen/--advertise)", s.cfg.Self)
		}
		sess, err := s.hv.OpenSession(ctx)
		if err != nil {
			return api.PrepareAnswer{}, err
		}
		r.Add(func() { _ = sess.Close() })
		p := hypervisor.MigrateParams{URI: "tcp://" + host, ListenAddress: host, DestXML: in.rec.XML,
			BandwidthMiB: offer.BandwidthMiB, Parallel: offer.Parallel}
		cookie, uri, err := sess.Prepare(ctx, p, offer.Cookie, destFlags(offer.Flags))
		if err != nil {
			return api.PrepareAnswer{}, err
		}
		in.sess = sess
		ans = api.PrepareAnswer{Cookie: cookie, URI: uri}
	}
	s.mu.Lock()
	s.incoming[offer.ID] = in
	s.mu.Unlock()
	go s.watch(offer.ID, in)
	r.Success()
	s.log.Info("incoming migration prepared", "id", offer.ID, "vm", offer.VM, "from", from, "mode", offer.Mode)
	return ans, nil
}

func logsConsole(spec api.VMSpec) bool { return vm.ConsoleLogged(spec) }

// watch abandons an incoming move the source stopped talking about (a dead
// link or a dead source daemon): nothing of it may stay here.
func (s *Service) watch(id string, in *incoming) {
	t := time.NewTicker(min(time.Second, s.cfg.IdleTimeout/4))
	defer t.Stop()
	for {
		select {
		case <-in.stop:
			return
		case <-t.C:
		}
		in.mu.Lock()
		idle := time.Since(in.lastSeen)
		done := in.done
		in.mu.Unlock()
		if done {
			return
		}
		if in.sess != nil && !in.sess.Alive() {
			// libvirtd went away (or dropped us): the incoming domain is
			// lost to this move; the source must stop sending.
			s.log.Warn("the libvirt connection of an incoming migration broke; undoing it", "id", id, "vm", in.rec.Offer.VM)
			s.abandon(id, in)
			return
		}
		if idle > s.cfg.IdleTimeout {
			s.log.Warn("abandoning an incoming migration: the source went silent", "id", id, "vm", in.rec.Offer.VM, "from", in.rec.From, "silentFor", idle.Round(time.Second))
			s.abandon(id, in)
			return
		}
	}
}

func (s *Service) get(from, id string) (*incoming, error) {
	s.mu.Lock()
	in := s.incoming[id]
	s.mu.Unlock()
	if in == nil {
		return nil, api.NotFound("no incoming migration %s (it ended, or was abandoned)", id)
	}
	if in.rec.From != from {
		return nil, api.StatusErrorf(403, "migration %s belongs to %s", id, in.rec.From)
	}
	return in, nil
}

// Keepalive notes the source is still at it.
func (s *Service) Keepalive(from, id string) error {
	in, err := s.get(from, id)
	if err != nil {
		return err
	}
	in.mu.Lock()
	in.lastSeen = time.Now()
	in.mu.Unlock()
	return nil
}

// Upload receives a file of an offline or cold move: "state" (the saved
// memory) or "disk-NAME". It checks the SHA-256 the source sent, which sum
// returns once the body has been read (it comes in a trailer).
func (s *Service) Upload(ctx context.Context, from, id, file string, sum func() string, body io.Reader) error {
	in, err := s.get(from, id)
	if err != nil {
		return err
	}
	var path string
	switch {
	case file == "state":
		path = s.workPath(id, "state")
	case strings.HasPrefix(file, "disk-"):
		for _, d := range in.rec.Created {
			if "disk-"+d.Name == file {
				path = d.Path
			}
		}
		if path == "" {
			return api.BadRequest("file: %s is not a disk this move copies", file)
		}
	default:
		return api.BadRequest("file: %q is not state or disk-NAME", file)
	}
	tmp := path + ".part"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	h := sha256.New()
	stopKeepalive := s.keepAlive(in)
	_, err = io.Copy(io.MultiWriter(f, h), body)
	stopKeepalive()
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("receive %s: %w", file, err)
	}
	want := sum()
	if len(want) != 64 {
		os.Remove(tmp)
		return api.BadRequest("%s: the source sent no SHA-256 (%s, as a header or a trailer), or a malformed one: %q", file, api.HeaderSHA256, want)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		os.Remove(tmp)
		return api.BadRequest("%s: checksum mismatch: received %s, the source sent %s", file, got, want)
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	in.mu.Lock()
	if file == "state" {
		in.rec.Files = append(in.rec.Files, path)
	}
	in.mu.Unlock()
	return s.putIn(ctx, in.rec)
}

// keepAlive marks the move alive while a long upload runs.
func (s *Service) keepAlive(in *incoming) func() {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				in.mu.Lock()
				in.lastSeen = time.Now()
				in.mu.Unlock()
			}
		}
	}()
	return func() { close(done) }
}

// Finish ends an incoming move: Finish3 (live), restore (offline) or
// define (cold), then the VM is recorded here. Cancelled undoes it.
func (s *Service) Finish(ctx context.Context, from, id string, req api.FinishRequest) (api.FinishAnswer, error) {
	arrived := time.Now()
	in, err := s.get(from, id)
	if err != nil {
		return api.FinishAnswer{}, err
	}
	in.mu.Lock()
	if in.done {
		in.mu.Unlock()
		return api.FinishAnswer{}, api.Conflict("migration %s already ended", id)
	}
	in.done = true
	in.mu.Unlock()
	close(in.stop)
	offer := in.rec.Offer
	// Finishing can outlast the caller's request; it must not be cut.
	ctx = context.WithoutCancel(ctx)

	if req.Cancelled {
		if in.sess != nil {
			// libvirt answers "domain not found" here: expected.
			_, _ = in.sess.Finish(ctx, hypervisor.MigrateParams{DestXML: in.rec.XML, DestName: offer.VM}, req.Cookie, destFlags(offer.Flags), true)
		}
		s.cleanUp(ctx, id, in)
		s.log.Info("incoming migration cancelled by the source", "id", id, "vm", offer.VM)
		return api.FinishAnswer{}, nil
	}

	// No store write here: the guest is paused until Finish3 resumes it.
	// Recover tells a finished move by the domain's state, not a record.
	var ans api.FinishAnswer
	switch {
	case streamed(offer):
		t0 := time.Now()
		defer func() { s.log.Debug("finish3 took", "vm", offer.VM, "ms", time.Since(t0).Milliseconds()) }()
		cookie, err := in.sess.Finish(ctx, hypervisor.MigrateParams{DestXML: in.rec.XML, DestName: offer.VM}, req.Cookie, destFlags(offer.Flags), false)
		ans.Finish3Ms = uint64(time.Since(t0).Milliseconds())
		if err != nil {
			s.cleanUp(ctx, id, in)
			return api.FinishAnswer{}, fmt.Errorf("finish on %s: %w", s.cfg.Self, err)
		}
		ans.Cookie = cookie
		// The guest runs here now, as a transient domain: the source does
		// not ask libvirt to persist it (its Finish would write that
		// definition before resuming the guest, and it would be the
		// source's, owned by the source daemon). Define it from the XML
		// this host rewrote, which the guest runs with. Should that fail,
		// the VM still runs here only; the record stays so that this
		// daemon's next start defines it (Recover), and the source's
		// report says so.
		if err := s.persist(ctx, offer.VM, in.rec.XML); err != nil {
			ans.Warning = fmt.Sprintf("vm %s runs on %s, but its persistent definition could not be written there (%v): it is transient (libvirt forgets it once it stops) until godwit on %s defines it at its next start", offer.VM, s.cfg.Self, err, s.cfg.Self)
			s.log.Error("define the migrated VM persistently", "vm", offer.VM, "err", err)
		}
		if st, err := s.hv.JobStats(ctx, offer.VM, true); err == nil {
			ans.DowntimeMs, ans.TotalMs = st.DowntimeMs, st.ElapsedMs
			ans.Bytes, ans.MemoryBytes, ans.DiskBytes = st.DataProcessed, st.MemProcessed, st.DiskProcessed
		}
	case offer.Mode == api.MigrateOffline:
		state := s.workPath(id, "state")
		if _, err := os.Stat(state); err != nil {
			s.cleanUp(ctx, id, in)
			return api.FinishAnswer{}, api.Conflict("the memory state of migration %s never arrived", id)
		}
		// Defined first: a restore alone makes a transient domain, which
		// libvirt forgets once it stops. Restored over the definition, it
		// stays persistent (cleanUp undefines it if the restore fails).
		if _, err := s.hv.Define(ctx, in.rec.XML); err != nil {
			s.cleanUp(ctx, id, in)
			return api.FinishAnswer{}, fmt.Errorf("define on %s: %w", s.cfg.Self, err)
		}
		if err := s.hv.Restore(ctx, state, in.rec.XML, req.Paused); err != nil {
			s.cleanUp(ctx, id, in)
			return api.FinishAnswer{}, fmt.Errorf("restore on %s: %w", s.cfg.Self, err)
		}
	case offer.Mode == api.MigrateCold:
		if _, err := s.hv.Define(ctx, in.rec.XML); err != nil {
			s.cleanUp(ctx, id, in)
			return api.FinishAnswer{}, fmt.Errorf("define on %s: %w", s.cfg.Self, err)
		}
	}
	if err := s.adopt(ctx, in.rec, in.arrival); err != nil {
		// The VM runs here; the record is what failed. Keep the migration
		// record: the janitor adopts it later.
		s.log.Error("record the migrated VM", "vm", offer.VM, "err", err)
		ans.HandlerMs = uint64(time.Since(arrived).Milliseconds())
		return ans, err
	}
	for i, x := range req.Snapshots {
		if err := s.hv.RedefineSnapshot(ctx, offer.VM, x, i == len(req.Snapshots)-1); err != nil {
			s.log.Error("redefine a snapshot of a migrated VM", "vm", offer.VM, "err", err)
		}
	}
	if in.sess != nil {
		_ = in.sess.Close()
	}
	s.finishUp(id, in)
	if ans.Warning != "" {
		// Kept for Recover, which defines the domain at the next start.
		in.rec.Phase = "define"
		if err := s.putIn(ctx, in.rec); err != nil {
			s.log.Error("record a migrated VM left to define", "vm", offer.VM, "err", err)
		}
	}
	s.log.Info("incoming migration finished", "id", id, "vm", offer.VM, "from", from, "mode", offer.Mode)
	ans.HandlerMs = uint64(time.Since(arrived).Milliseconds())
	return ans, nil
}

// persist makes a migrated domain that runs here persistent, defined
// from doc (the XML this host rewrote). A domain that is persistent
// already is redefined too: libvirt's definition would be the source's.
func (s *Service) persist(ctx context.Context, name, doc string) error {
	if _, err := s.hv.Define(ctx, doc); err != nil {
		return fmt.Errorf("define vm %s: %w", name, err)
	}
	return nil
}

// adopt records a VM that arrived, with its disks where they now are.
func (s *Service) adopt(ctx context.Context, rec incomingRecord, a *vm.Arrival) error {
	o := rec.Offer
	disks := make([]api.VMDisk, 0, len(o.Disks))
	for _, d := range o.Disks {
		vd := api.VMDisk{Name: d.Name, Target: d.Target, Size: d.Size, Path: d.DestPath}
		vd.Pool, vd.Volume = d.DestPool, d.DestVolume
		disks = append(disks, vd)
	}
	return s.vms.AdoptMoved(ctx, moving(o, disks), a)
}

func ownedBy(domXML, owner string) bool { return domainxml.OwnerOf(domXML) == owner }

// finishUp forgets a move that ended.
func (s *Service) finishUp(id string, in *incoming) {
	s.mu.Lock()
	delete(s.incoming, id)
	s.mu.Unlock()
	for _, f := range in.rec.Files {
		os.Remove(f)
	}
	s.dropRecord(inBucket, id)
	in.unlock()
}

// cleanUp undoes an incoming move: the domain (only while godwit has not
// adopted it), the volumes it made, the files it received. When libvirt
// cannot be reached, the record stays for Recover to finish the job once
// it is back.
func (s *Service) cleanUp(ctx context.Context, id string, in *incoming) {
	if in.sess != nil {
		_ = in.sess.Close() // libvirt destroys an unfinished incoming domain
	}
	s.vms.AbandonArrival(in.arrival)
	if err := s.undoIncoming(ctx, in.rec); err != nil {
		s.log.Warn("could not undo an incoming migration yet; will again when libvirt answers", "id", id, "vm", in.rec.Offer.VM, "err", err)
		in.rec.Phase = "undo"
		if err := s.putIn(ctx, in.rec); err != nil {
			s.log.Error("record an incoming migration left to undo", "id", id, "err", err)
		}
		s.mu.Lock()
		delete(s.incoming, id)
		s.mu.Unlock()
		in.unlock()
		return
	}
	s.finishUp(id, in)
}

// undoIncoming removes what an incoming move made. It fails only when
// libvirt cannot be asked (the caller retries later).
func (s *Service) undoIncoming(ctx context.Context, rec incomingRecord) error {
	name := rec.Offer.VM
	d, err := s.hv.Lookup(ctx, name)
	switch {
	case err == nil:
		if xml, err := s.hv.XML(ctx, name, false); err == nil && ownedBy(xml, s.vms.Owner()) {
			if d.State.Active() {
				_ = s.hv.Destroy(ctx, name)
			}
			if d.Persistent {
				_ = s.hv.Undefine(ctx, name)
			}
		}
	case errors.Is(err, hypervisor.ErrUnavailable):
		return err
	}
	for _, v := range rec.Created {
		if err := s.hv.DeleteVolume(ctx, v.Pool, v.Volume); err != nil && !errors.Is(err, hypervisor.ErrNotFound) {
			if errors.Is(err, hypervisor.ErrUnavailable) {
				return err
			}
			s.log.Error("delete a volume of an undone migration", "volume", v.Pool+"/"+v.Volume, "err", err)
		}
	}
	for _, f := range rec.Files {
		os.Remove(f)
	}
	os.Remove(s.workPath(rec.Offer.ID, "state") + ".part")
	return nil
}

// abandon undoes a move whose source went silent.
func (s *Service) abandon(id string, in *incoming) {
	in.mu.Lock()
	if in.done {
		in.mu.Unlock()
		return
	}
	in.done = true
	in.mu.Unlock()
	s.cleanUp(context.Background(), id, in)
}

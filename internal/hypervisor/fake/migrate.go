package fake

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/url"
	"os"
	"sync"
	"time"

	"libvirt.org/go/libvirtxml"

	"github.com/godwit-project/godwit/internal/hypervisor"
)

// The fake's migrations follow libvirt's v3 protocol on two fakes (or one
// fake to itself): Begin on the source starts an outgoing job; Prepare on
// the destination makes a paused, transient incoming domain listening on
// a URI; Perform on the source streams the migration to that URI (its
// progress is what JobStats reports) and leaves the source paused;
// Finish on the destination resumes the domain there (or, cancelled,
// destroys it); Confirm on the source stops and undefines its domain (or,
// cancelled, resumes it). Each phase checks the cookie of the phase before
// it, so a relay that drops or mixes cookies fails as it would on libvirt.

// migrationKnobs pace the fake's migrations and say what CompareCPU
// answers.
type migrationKnobs struct {
	step uint64        // bytes one tick of Perform's stream moves (0: a tenth of the migration)
	tick time.Duration // how often the stream moves
	cpu  int
}

func defaultMigrationKnobs() migrationKnobs {
	return migrationKnobs{tick: 2 * time.Millisecond, cpu: 1}
}

// SetMigrationPace makes Perform's stream move step bytes every tick
// (step 0: a tenth of the migration each tick; the default ticks every
// 2ms).
func (f *Fake) SetMigrationPace(step uint64, tick time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mig.step, f.mig.tick = step, tick
}

// SetCPUCompare sets what CompareCPU answers: libvirt's 0 (incompatible),
// 1 (identical, the default) or 2 (superset).
func (f *Fake) SetCPUCompare(r int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mig.cpu = r
}

// outgoing is a domain's migration out, from Begin to Confirm.
type outgoing struct {
	sess  *session
	flags uint32
	phase string // begun, performing, performed
	// paused: the domain was paused at Begin; like libvirt, a cancelled
	// migration restores that state.
	paused   bool
	stats    hypervisor.JobStats
	started  time.Time
	abort    chan struct{} // closed when the job is aborted while performing
	aborted  bool
	postcopy bool
	downtime uint64
}

func (o *outgoing) abortLocked() {
	if o.abort != nil && !o.aborted {
		o.aborted = true
		close(o.abort)
	}
}

// incoming is a domain prepared to receive a migration, from Prepare to
// Finish. Its fields are guarded by the destination's mutex.
type incoming struct {
	f        *Fake // the destination
	sess     *session
	name     string
	uri      string
	received bool // Perform moved the whole stream
	gone     bool // the incoming domain went away
	bytes    uint64
}

// wire carries migration streams between fakes, as the network carries
// QEMU's between hosts: Prepare listens on a URI, Perform connects to it.
var wire = struct {
	sync.Mutex
	port int
	open map[string]*incoming
}{port: 49152, open: map[string]*incoming{}}

func listen(host string, in *incoming) string {
	wire.Lock()
	defer wire.Unlock()
	for {
		wire.port++
		if wire.port > 65535 {
			wire.port = 49153
		}
		uri := fmt.Sprintf("tcp://%s:%d", host, wire.port)
		if _, taken := wire.open[uri]; !taken {
			wire.open[uri] = in
			return uri
		}
	}
}

// unlisten ends an incoming domain's side of the wire. Callers hold the
// destination's mutex.
func unlisten(in *incoming) {
	if in == nil {
		return
	}
	in.gone = true
	wire.Lock()
	defer wire.Unlock()
	if wire.open[in.uri] == in {
		delete(wire.open, in.uri)
	}
}

func dial(uri string) *incoming {
	wire.Lock()
	defer wire.Unlock()
	return wire.open[uri]
}

// cookie is what the fake's phases pass each other.
type cookie struct {
	Phase  string `json:"phase"`
	Host   string `json:"host"`
	Domain string `json:"domain"`
}

func (f *Fake) cookie(phase, dom string) []byte {
	b, _ := json.Marshal(cookie{Phase: phase, Host: f.host.Hostname, Domain: dom})
	return b
}

// checkCookie checks that b is the cookie phase made for dom.
func checkCookie(op, dom string, b []byte, phase string) error {
	var c cookie
	if err := json.Unmarshal(b, &c); err != nil || c.Phase != phase || c.Domain != dom {
		return &Error{Op: op + " " + dom, Msg: fmt.Sprintf("internal error: missing or wrong migration cookie (want the %s cookie of %s, got %q)", phase, dom, b)}
	}
	return nil
}

// session is a dedicated connection carrying one side of one migration.
type session struct {
	f      *Fake
	closed bool
	out    *domain // the domain it migrates out (Begin)
	in     *domain // the domain it prepared to receive (Prepare)
}

// OpenSession opens a migration connection.
func (f *Fake) OpenSession(ctx context.Context) (hypervisor.Session, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(ctx, "OpenSession", ""); err != nil {
		return nil, err
	}
	s := &session{f: f}
	f.conn.sessions[s] = true
	return s, nil
}

var _ hypervisor.Session = (*session)(nil)

// enter is Fake.enter for a session's calls; a closed session refuses
// them. Callers hold s.f.mu.
func (s *session) enter(ctx context.Context, method, name string) error {
	if err := s.f.enter(ctx, method, name); err != nil {
		return err
	}
	if s.closed {
		return &Error{Op: method + " " + name, Msg: "internal error: client socket is closed", Kind: hypervisor.ErrUnavailable}
	}
	return nil
}

// Begin starts an outgoing migration of a running domain and returns its
// cookie and XML.
func (s *session) Begin(ctx context.Context, dom string, p hypervisor.MigrateParams, flags uint32) ([]byte, string, error) {
	f := s.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := s.enter(ctx, "Begin", dom); err != nil {
		return nil, "", err
	}
	d, ok := f.domains[dom]
	switch {
	case !ok:
		return nil, "", f.errNoDomain("migration begin", dom)
	case !d.State.Active():
		return nil, "", invalid("migration begin", dom, "domain is not running")
	case d.out != nil || d.backup != nil:
		return nil, "", invalid("migration begin", dom, "another job (a migration or a backup) is active on the domain")
	}
	d.out = &outgoing{sess: s, flags: flags, phase: "begun", paused: d.State == hypervisor.StatePaused}
	s.out = d
	return f.cookie("begin", dom), d.liveXML, nil
}

// Prepare makes the paused incoming domain of p.DestXML and listens for
// the stream.
func (s *session) Prepare(ctx context.Context, p hypervisor.MigrateParams, ck []byte, flags uint32) ([]byte, string, error) {
	f := s.f
	pd, perr := parseXML("migration prepare", p.DestXML)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := s.enter(ctx, "Prepare", pd.Name); err != nil {
		return nil, "", err
	}
	if perr != nil {
		return nil, "", perr
	}
	if err := checkCookie("migration prepare", pd.Name, ck, "begin"); err != nil {
		return nil, "", err
	}
	for _, d := range f.domains {
		if d.Name == pd.Name || (pd.UUID != "" && d.UUID == pd.UUID) {
			return nil, "", &Error{Op: "migration prepare", Kind: hypervisor.ErrExists,
				Msg: fmt.Sprintf("operation failed: domain '%s' already exists with uuid %s", d.Name, d.UUID)}
		}
	}
	if flags&hypervisor.MigrateNonSharedDisk != 0 {
		for _, path := range diskPaths(p.DestXML) {
			if _, v := f.volumeAt(path); v == nil {
				return nil, "", &Error{Op: "migration prepare " + pd.Name,
					Msg: fmt.Sprintf("operation failed: storage source %s does not exist: a disk copy needs its target made first", path)}
			}
		}
	}
	host := f.host.Hostname
	if u, err := url.Parse(p.URI); err == nil && u.Hostname() != "" {
		host = u.Hostname()
	}
	uuid := pd.UUID
	if uuid == "" {
		uuid = newUUID()
	}
	d := &domain{Domain: hypervisor.Domain{Name: pd.Name, UUID: uuid, State: hypervisor.StatePaused, Reason: "incoming migration"},
		xml: p.DestXML, liveXML: p.DestXML, boot: 1}
	in := &incoming{f: f, sess: s, name: pd.Name}
	in.uri = listen(host, in)
	d.in = in
	f.domains[pd.Name] = d
	s.in = d
	return f.cookie("prepare", pd.Name), in.uri, nil
}

// Perform streams the domain to the destination Prepare listens on, at
// the pace SetMigrationPace sets; stream faults strike at their Bytes.
// The source is left paused when the whole stream arrived.
func (s *session) Perform(ctx context.Context, dom string, p hypervisor.MigrateParams, ck []byte, flags uint32) ([]byte, error) {
	f := s.f
	f.mu.Lock()
	st, err := s.startPerform(ctx, dom, p, ck)
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return s.stream(ctx, st)
}

// performing is what Perform's stream needs.
type performing struct {
	dom   string
	d     *domain
	job   *outgoing
	to    *incoming
	step  uint64
	tick  time.Duration
	disks map[string][]byte // by target: the bytes of the disks copied
}

// startPerform checks Perform's call and starts the job. Callers hold
// s.f.mu.
func (s *session) startPerform(ctx context.Context, dom string, p hypervisor.MigrateParams, ck []byte) (*performing, error) {
	f := s.f
	if err := s.enter(ctx, "Perform", dom); err != nil {
		return nil, err
	}
	if err := checkCookie("migration perform", dom, ck, "prepare"); err != nil {
		return nil, err
	}
	d, ok := f.domains[dom]
	if !ok {
		return nil, f.errNoDomain("migration perform", dom)
	}
	if d.out == nil || d.out.sess != s || d.out.phase != "begun" {
		return nil, invalid("migration perform", dom, "no migration of the domain was begun on this connection")
	}
	to := dial(p.URI)
	if to == nil {
		d.out = nil
		return nil, &Error{Op: "migration perform " + dom, Msg: fmt.Sprintf("operation failed: unable to connect to server at '%s': Connection refused", p.URI)}
	}
	var sz sizes
	_ = xml.Unmarshal([]byte(d.liveXML), &sz)
	mem := sz.Memory * 1024
	st := &performing{dom: dom, d: d, job: d.out, to: to, tick: f.mig.tick, disks: map[string][]byte{}}
	var disk uint64
	paths := diskPaths(d.liveXML)
	for _, target := range p.MigrateDisks {
		poolName, v := f.volumeAt(paths[target])
		if v == nil {
			continue
		}
		data := append([]byte(nil), f.data[poolName+"/"+v.Name]...)
		st.disks[target] = data
		disk += max(uint64(len(data)), v.Allocation)
	}
	total := mem + disk
	st.step = f.mig.step
	if st.step == 0 {
		st.step = max(total/10, 1)
	}
	job := d.out
	job.phase, job.abort, job.started = "performing", make(chan struct{}), time.Now()
	job.stats = hypervisor.JobStats{Active: true, Operation: 4, DataTotal: total, DataRemaining: total,
		MemTotal: mem, MemRemaining: mem, DiskTotal: disk, DiskRemaining: disk, Iteration: 1, PageSize: 4096}
	return st, nil
}

// stream moves the migration tick by tick until it is over, aborted or
// broken. It never holds both fakes' mutexes at once.
func (s *session) stream(ctx context.Context, st *performing) ([]byte, error) {
	f := s.f
	t := time.NewTicker(st.tick)
	defer t.Stop()
	stalled := false
	for {
		select {
		case <-t.C:
		case <-st.job.abort:
		case <-ctx.Done():
		}
		st.to.f.mu.Lock()
		gone := st.to.gone
		st.to.f.mu.Unlock()
		f.mu.Lock()
		done, err := s.advance(ctx, st, gone, &stalled)
		f.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if done {
			return s.arrive(st)
		}
	}
}

// advance moves one tick of the stream, or says why it ended. Callers
// hold s.f.mu.
func (s *session) advance(ctx context.Context, st *performing, gone bool, stalled *bool) (bool, error) {
	f, job, call := s.f, st.job, "migration perform "+st.dom
	fail := func(msg string, kind error) (bool, error) {
		f.endOut(st.d, job)
		return false, &Error{Op: call, Msg: msg, Kind: kind}
	}
	switch {
	case f.conn.dead:
		// The close callback aborted the job; the dead caller waits.
		f.endOut(st.d, job)
		return false, f.freeze(call)
	case s.closed:
		return fail("internal error: client socket is closed", hypervisor.ErrUnavailable)
	case job.aborted:
		return fail("operation aborted: migration out job: canceled by client", nil)
	case ctx.Err() != nil:
		f.endOut(st.d, job)
		return false, fmt.Errorf("%s: %w", call, ctx.Err())
	case gone:
		return fail("operation failed: migration out job: unexpectedly failed (the destination closed the stream)", nil)
	case *stalled:
		return false, nil
	}
	processed := job.stats.DataProcessed
	next := min(processed+st.step, job.stats.DataTotal)
	if ft := f.takeFault("Perform", st.dom, true, next); ft != nil {
		next = min(ft.Bytes, job.stats.DataTotal)
		job.setProcessed(next, st)
		if ft.Action == Hang {
			*stalled = true
			return false, nil
		}
		f.endOut(st.d, job)
		return false, f.strike(ft, call)
	}
	job.setProcessed(next, st)
	return next >= job.stats.DataTotal, nil
}

func (o *outgoing) setProcessed(n uint64, st *performing) {
	s := &o.stats
	s.DataProcessed, s.DataRemaining = n, s.DataTotal-n
	// Disks first (the block mirror), then memory.
	s.DiskProcessed = min(n, s.DiskTotal)
	s.DiskRemaining = s.DiskTotal - s.DiskProcessed
	s.MemProcessed = n - s.DiskProcessed
	s.MemRemaining = s.MemTotal - min(s.MemProcessed, s.MemTotal)
	s.MemBps = uint64(float64(st.step) / st.tick.Seconds())
	s.ElapsedMs = uint64(time.Since(o.started).Milliseconds())
}

// arrive hands the whole stream to the destination and pauses the
// source, which waits for Finish there and Confirm here.
func (s *session) arrive(st *performing) ([]byte, error) {
	f, to := s.f, st.to
	to.f.mu.Lock()
	ok := !to.gone
	if ok {
		to.received, to.bytes = true, st.job.stats.DataTotal
		if d := to.f.domains[to.name]; d != nil && d.in == to {
			paths := diskPaths(d.liveXML)
			for target, data := range st.disks {
				if poolName, v := to.f.volumeAt(paths[target]); v != nil {
					to.f.data[poolName+"/"+v.Name] = data
				}
			}
		}
	}
	to.f.mu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	job := st.job
	if !ok || job.aborted || s.closed || st.d.out != job {
		f.endOut(st.d, job)
		return nil, &Error{Op: "migration perform " + st.dom, Msg: "operation failed: migration out job: unexpectedly failed"}
	}
	job.phase = "performed"
	done := job.stats
	done.Active, done.Completed, done.DowntimeMs = false, true, 5
	st.d.completed = &done
	f.setState(st.d, hypervisor.StatePaused, "migration")
	return f.cookie("perform", st.dom), nil
}

// endOut ends an outgoing job that did not complete: the domain runs on
// here. Callers hold f.mu.
func (f *Fake) endOut(d *domain, job *outgoing) {
	if d.out != job {
		return
	}
	d.out = nil
	if d.State == hypervisor.StatePaused && !job.paused {
		f.setState(d, hypervisor.StateRunning, "migration cancelled")
	}
}

// Finish resumes the incoming domain that received the whole stream, or,
// cancelled, destroys it.
func (s *session) Finish(ctx context.Context, p hypervisor.MigrateParams, ck []byte, flags uint32, cancelled bool) ([]byte, error) {
	f := s.f
	name := p.DestName
	if name == "" {
		pd, _ := parseXML("migration finish", p.DestXML)
		name = pd.Name
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := s.enter(ctx, "Finish", name); err != nil {
		return nil, err
	}
	d, ok := f.domains[name]
	if !ok || d.in == nil || d.in.sess != s {
		return nil, f.errNoDomain("migration finish", name)
	}
	in := d.in
	if cancelled {
		f.setState(d, hypervisor.StateShutoff, "failed")
		return nil, nil
	}
	if !in.received {
		f.setState(d, hypervisor.StateShutoff, "failed")
		return nil, &Error{Op: "migration finish " + name, Msg: "operation failed: migration in job: the incoming stream did not complete"}
	}
	if err := checkCookie("migration finish", name, ck, "perform"); err != nil {
		f.setState(d, hypervisor.StateShutoff, "failed")
		return nil, err
	}
	unlisten(in)
	d.in = nil
	if flags&hypervisor.MigratePersistDest != 0 {
		d.Persistent, d.xml = true, firstOf(p.PersistXML, p.DestXML, d.liveXML)
	}
	d.completed = &hypervisor.JobStats{Completed: true, Operation: 5, DowntimeMs: 5, DataTotal: in.bytes, DataProcessed: in.bytes}
	if flags&hypervisor.MigratePaused != 0 {
		f.setState(d, hypervisor.StatePaused, "migrated")
		return f.cookie("finish", name), nil
	}
	f.setState(d, hypervisor.StateRunning, "migrated")
	return f.cookie("finish", name), nil
}

func firstOf(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// Confirm ends the source's side of a performed migration: the domain
// stops here (and is undefined with MigrateUndefineSource) or, cancelled,
// resumes.
func (s *session) Confirm(ctx context.Context, dom string, p hypervisor.MigrateParams, ck []byte, flags uint32, cancelled bool) error {
	f := s.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := s.enter(ctx, "Confirm", dom); err != nil {
		return err
	}
	d, ok := f.domains[dom]
	if !ok {
		return f.errNoDomain("migration confirm", dom)
	}
	if d.out == nil || d.out.sess != s || d.out.phase != "performed" {
		return invalid("migration confirm", dom, "no performed migration of the domain on this connection")
	}
	if len(ck) > 0 && !cancelled {
		if err := checkCookie("migration confirm", dom, ck, "finish"); err != nil {
			return err
		}
	}
	job := d.out
	d.out = nil
	if cancelled {
		if job.paused {
			f.setState(d, hypervisor.StatePaused, "migration cancelled")
		} else {
			f.setState(d, hypervisor.StateRunning, "migration cancelled")
		}
		return nil
	}
	f.setState(d, hypervisor.StateShutoff, "migrated")
	if job.flags&hypervisor.MigrateUndefineSource != 0 && d.Persistent && f.domains[dom] == d {
		delete(f.domains, dom)
		f.emit(d, hypervisor.EventUndefined, "removed")
	}
	return nil
}

// Alive reports whether the session's connection stands.
func (s *session) Alive() bool {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	return !s.closed && !s.f.down && !s.f.conn.dead
}

// Close closes the session; libvirt's close callback undoes what it
// carried (closeSessionLocked).
func (s *session) Close() error {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	s.f.closeSessionLocked(s)
	return nil
}

// closeSessionLocked is libvirt's close callback of a migration
// connection: an incoming domain not finished is destroyed; an outgoing
// job being performed is aborted (the domain runs on); one performed but
// not confirmed ends with its domain left paused, since libvirt cannot
// know whether it runs on the destination. Callers hold f.mu.
func (f *Fake) closeSessionLocked(s *session) {
	if s.closed {
		return
	}
	s.closed = true
	delete(s.f.conn.sessions, s)
	if d := s.in; d != nil && d.in != nil && d.in.sess == s {
		f.setState(d, hypervisor.StateShutoff, "failed")
	}
	if d := s.out; d != nil && d.out != nil && d.out.sess == s {
		if d.out.phase == "performing" {
			d.out.abortLocked()
		} else {
			d.out = nil
		}
	}
}

// JobStats returns the running migration's progress, or the last
// completed job's stats.
func (f *Fake) JobStats(ctx context.Context, dom string, completed bool) (hypervisor.JobStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.domainFor(ctx, "JobStats", dom, "job stats of", dom)
	switch {
	case err != nil:
		return hypervisor.JobStats{}, err
	case completed:
		if d.completed != nil {
			return *d.completed, nil
		}
	case d.out != nil && d.out.phase == "performing":
		st := d.out.stats
		st.ElapsedMs = uint64(time.Since(d.out.started).Milliseconds())
		st.Postcopy = d.out.postcopy
		return st, nil
	case d.backup != nil:
		return hypervisor.JobStats{Active: true, Operation: 8}, nil
	}
	return hypervisor.JobStats{}, nil
}

// AbortJob ends the domain's backup job, or aborts its migration out
// (not once in postcopy).
func (f *Fake) AbortJob(ctx context.Context, dom string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.domainFor(ctx, "AbortJob", dom, "abort job of", dom)
	switch {
	case err != nil:
		return err
	case d.backup != nil:
		d.backup = nil
		return nil
	case d.out != nil && d.out.phase == "performing":
		if d.out.postcopy {
			return invalid("abort job of", dom, "cannot abort migration in post-copy mode")
		}
		d.out.abortLocked()
		return nil
	}
	return invalid("abort job of", dom, "no job is active on the domain")
}

// migrating enters a call about a domain's migration out, running as
// phases says. Callers hold f.mu.
func (f *Fake) migrating(ctx context.Context, method, op, dom string, phases ...string) (*outgoing, error) {
	d, err := f.domainFor(ctx, method, dom, op, dom)
	if err != nil {
		return nil, err
	}
	if d.out != nil {
		for _, p := range phases {
			if d.out.phase == p {
				return d.out, nil
			}
		}
	}
	return nil, invalid(op, dom, "domain is not being migrated")
}

// StartPostcopy switches a running migration that allows it to postcopy.
func (f *Fake) StartPostcopy(ctx context.Context, dom string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	job, err := f.migrating(ctx, "StartPostcopy", "start postcopy of", dom, "performing")
	if err != nil {
		return err
	}
	if job.flags&hypervisor.MigratePostcopy == 0 {
		return invalid("start postcopy of", dom, "switching to post-copy requires migration to be started with VIR_MIGRATE_POSTCOPY")
	}
	job.postcopy = true
	return nil
}

// SetMaxDowntime sets the downtime target of a migration begun or running.
func (f *Fake) SetMaxDowntime(ctx context.Context, dom string, ms uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	job, err := f.migrating(ctx, "SetMaxDowntime", "set max downtime of", dom, "begun", "performing")
	if err != nil {
		return err
	}
	job.downtime = ms
	return nil
}

// CompareCPU answers what SetCPUCompare set.
func (f *Fake) CompareCPU(ctx context.Context, virtType, cpuXML string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(ctx, "CompareCPU", virtType); err != nil {
		return 0, err
	}
	return f.mig.cpu, nil
}

// saved is what Save writes into its state file.
type saved struct {
	XML    string `json:"xml"`
	Paused bool   `json:"paused"`
}

// Save writes a state file (the domain's live XML) to path and stops the
// domain.
func (f *Fake) Save(ctx context.Context, dom, path string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.domainFor(ctx, "Save", dom, "save", dom)
	switch {
	case err != nil:
		return err
	case !d.State.Active():
		return invalid("save", dom, "domain is not running")
	case d.out != nil || d.backup != nil:
		return invalid("save", dom, "another job is active on the domain")
	}
	b, _ := json.Marshal(saved{XML: d.liveXML, Paused: d.State == hypervisor.StatePaused})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return &Error{Op: "save " + dom, Msg: "operation failed: " + err.Error()}
	}
	f.setState(d, hypervisor.StateShutoff, "saved")
	return nil
}

// Restore starts a domain from a state file Save wrote, with doc (when
// set) as its definition: the persistent domain of that name if there is
// one, else a transient one, as libvirt does.
func (f *Fake) Restore(ctx context.Context, path, doc string, paused bool) error {
	var st saved
	b, rerr := os.ReadFile(path)
	if rerr == nil {
		rerr = json.Unmarshal(b, &st)
	}
	if doc == "" {
		doc = st.XML
	}
	p, perr := parseXML("restore from "+path, doc)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(ctx, "Restore", p.Name); err != nil {
		return err
	}
	if rerr != nil {
		return &Error{Op: "restore from " + path, Msg: "operation failed: " + rerr.Error()}
	}
	if perr != nil {
		return perr
	}
	state := hypervisor.StateRunning
	if paused {
		state = hypervisor.StatePaused
	}
	d, ok := f.domains[p.Name]
	if ok && d.State.Active() {
		return invalid("restore from "+path, p.Name, "domain is already active")
	}
	if !ok {
		uuid := p.UUID
		if uuid == "" {
			uuid = newUUID()
		}
		d = &domain{Domain: hypervisor.Domain{Name: p.Name, UUID: uuid, State: hypervisor.StateShutoff}, xml: doc}
		f.domains[p.Name] = d
	}
	d.boot++
	d.liveXML = doc
	f.setState(d, state, "restored")
	return nil
}

// volumeAt finds the volume at path. Callers hold f.mu.
func (f *Fake) volumeAt(path string) (string, *hypervisor.VolumeInfo) {
	if path == "" {
		return "", nil
	}
	for name, p := range f.pools {
		for _, v := range p.volumes {
			if v.Path == path {
				return name, v
			}
		}
	}
	return "", nil
}

// diskPaths maps each disk target of a domain XML to its source file
// (CD-ROMs left out).
func diskPaths(doc string) map[string]string {
	out := map[string]string{}
	var d libvirtxml.Domain
	if d.Unmarshal(doc) != nil || d.Devices == nil {
		return out
	}
	for _, disk := range d.Devices.Disks {
		if disk.Device == "cdrom" || disk.Target == nil || disk.Source == nil || disk.Source.File == nil {
			continue
		}
		out[disk.Target.Dev] = disk.Source.File.File
	}
	return out
}

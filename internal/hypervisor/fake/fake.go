// Package fake is an in-memory hypervisor.Hypervisor for unit tests: it
// keeps domains, pools and volumes in maps and moves domains between states
// the way libvirt's QEMU driver does, returning the same sentinel errors
// (ErrNotFound, ErrExists, ErrInvalidState, ErrUnavailable) where libvirt
// would fail. It implements the whole contract: migration (two fakes
// migrate a domain between each other through libvirt's five phases),
// backups (pull-mode jobs whose exports a test reads through OpenExport),
// checkpoints and snapshots. Tests can set the host's facts, make the
// guest ignore the ACPI power button or take time to shut down, inject a
// fault into any call (fail, hang, or crash libvirtd; for the streaming
// calls, after so many bytes), take "libvirt" down and up again, and kill
// the process that holds a connection.
//
// A Fake is one process's connection to an in-memory libvirtd: New makes
// the libvirtd and a first connection, Connect another one to the same
// libvirtd (a daemon restarted on the same host). Its state and faults
// belong to the libvirtd, shared by every connection to it.
//
// It runs no QEMU and reads no disk images: it checks what libvirt checks
// about states and names, not what QEMU would make of the XML. It never
// replaces the e2e tests on a real libvirtd.
package fake

import (
	"context"
	"crypto/rand"
	"encoding/xml"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/hypervisor"
)

// Fake is one connection to an in-memory libvirtd. The zero value is not
// usable; use New (or Connect).
type Fake struct {
	*libvirtd
	conn *conn
}

// libvirtd is the state every connection shares.
type libvirtd struct {
	mu       sync.Mutex
	host     hypervisor.HostInfo
	domains  map[string]*domain
	pools    map[string]*pool
	guests   map[string]Guest // by domain name
	defGuest Guest
	faults   []*Fault
	// resume is closed (and replaced) by ClearFaults: hung calls go on.
	resume   chan struct{}
	down     bool
	calls    []string
	mon      monitorState
	networks map[string]*network
	leases   map[string][]hypervisor.Lease // by network name
	data     map[string][]byte             // volume bytes, by pool/volume
	conns    []*conn
	mig      migrationKnobs
}

var (
	_ hypervisor.Hypervisor = (*Fake)(nil)
	_ hypervisor.Domains    = (*Fake)(nil)
	_ hypervisor.Storage    = (*Fake)(nil)
	_ hypervisor.Pools      = (*Fake)(nil)
	_ hypervisor.Devices    = (*Fake)(nil)
	_ hypervisor.Host       = (*Fake)(nil)
	_ hypervisor.Stats      = (*Fake)(nil)
	_ hypervisor.Events     = (*Fake)(nil)
	_ hypervisor.Networks   = (*Fake)(nil)
	_ hypervisor.Migrator   = (*Fake)(nil)
	_ hypervisor.Backups    = (*Fake)(nil)
	_ hypervisor.Snapshots  = (*Fake)(nil)
)

type domain struct {
	hypervisor.Domain
	xml     string // persistent (inactive) definition
	liveXML string // the running config, while active
	boot    int    // counts boots, so a delayed shutdown hits only its own boot
	// out and in are the domain's outgoing and incoming migrations.
	out *outgoing
	in  *incoming
	// completed are the stats of its last completed job.
	completed   *hypervisor.JobStats
	backup      *backupJob
	checkpoints []*checkpoint
	snapshots   []*snapshot
}

type pool struct {
	hypervisor.PoolInfo
	volumes map[string]*hypervisor.VolumeInfo
	xml     string // as DefinePool got it
}

// Guest says how the guest OS of a domain reacts to the ACPI power button.
type Guest struct {
	// IgnoreACPI: Shutdown and Reboot are accepted (as libvirt accepts
	// them) but the guest does nothing.
	IgnoreACPI bool
	// ShutdownDelay: the guest powers off this long after Shutdown; 0 is
	// at once.
	ShutdownDelay time.Duration
	// Agent, when set, is what the guest's qemu-guest-agent reports;
	// without it the guest has no agent.
	Agent []hypervisor.Interface
	// AgentDelay is how long the agent takes to answer.
	AgentDelay time.Duration
}

// Error is an error of the fake, shaped like the libvirt implementation's:
// what was being done, libvirt's message, and the sentinel for errors.Is.
type Error struct {
	Op   string
	Msg  string
	Kind error
}

func (e *Error) Error() string { return e.Op + ": " + e.Msg }

// Unwrap returns the sentinel, e.g. hypervisor.ErrNotFound.
func (e *Error) Unwrap() error { return e.Kind }

// New returns a fake host with 4 CPUs, 8 GiB of memory, TCG only, and no
// domains or pools, and a first connection to it.
func New() *Fake {
	d := &libvirtd{
		host: hypervisor.HostInfo{
			Hostname: "fakehost", LibvirtVersion: "9.0.0", QEMUVersion: "7.2.0",
			CPUs: 4, CPUModel: "fake", MemoryBytes: uint64(8 * api.GiB), FreeBytes: uint64(6 * api.GiB),
			VirtTypes: []string{"qemu"}, MaxVCPUs: 255, NUMANodes: 1,
		},
		domains:  map[string]*domain{},
		pools:    map[string]*pool{},
		guests:   map[string]Guest{},
		networks: map[string]*network{},
		leases:   map[string][]hypervisor.Lease{},
		data:     map[string][]byte{},
		resume:   make(chan struct{}),
		mig:      defaultMigrationKnobs(),
	}
	return d.connect()
}

// Connect opens another connection to the same libvirtd, as another
// process (or the same daemon, restarted) would.
func (f *Fake) Connect() *Fake {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.libvirtd.connect()
}

// connect makes a connection. Callers hold mu, or own d alone.
func (d *libvirtd) connect() *Fake {
	c := &conn{killed: make(chan struct{}), thaw: make(chan struct{}), sessions: map[*session]bool{}}
	d.conns = append(d.conns, c)
	return &Fake{libvirtd: d, conn: c}
}

// SetHostInfo replaces what HostInfo reports.
func (f *Fake) SetHostInfo(h hypervisor.HostInfo) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.host = h
}

// SetDown takes "libvirt" down (every call fails with an error wrapping
// hypervisor.ErrUnavailable) or brings it back. Domains and volumes are
// kept, as libvirtd keeps them across a restart; going down ends every
// migration connection and the jobs they carried, as libvirtd's restart
// does.
func (f *Fake) SetDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if down && !f.down {
		f.restartLocked()
	}
	f.down = down
}

// SetGuest sets how the guest of the named domain (existing or not yet)
// reacts to the power button.
func (f *Fake) SetGuest(name string, g Guest) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.guests[name] = g
}

// SetDefaultGuest sets how guests without a SetGuest of their own react.
func (f *Fake) SetDefaultGuest(g Guest) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.defGuest = g
}

// SetState puts a domain in a state at once, as if the guest did it (a
// crash, a power-off from inside). An inactive state of a transient domain
// removes it.
func (f *Fake) SetState(name string, s hypervisor.State, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.domains[name]
	if !ok {
		return f.errNoDomain("set state of", name)
	}
	f.setState(d, s, reason)
	return nil
}

// Calls returns the calls made so far, one "Method name" string each
// (e.g. "Start web1", "CreateVolume godwit/web1-root.qcow2", "List").
func (f *Fake) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// DomainNames returns the names of every domain, sorted.
func (f *Fake) DomainNames() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, 0, len(f.domains))
	for n := range f.domains {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Volumes returns the volumes of a pool, sorted by name (nil for a pool
// that does not exist).
func (f *Fake) Volumes(poolName string) []hypervisor.VolumeInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.pools[poolName]
	if !ok {
		return nil
	}
	out := make([]hypervisor.VolumeInfo, 0, len(p.volumes))
	for _, v := range p.volumes {
		out = append(out, *v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// domainFor enters a call about a domain and finds it; call names the
// call for faults (the domain, or domain/snapshot). Callers hold f.mu.
func (f *Fake) domainFor(ctx context.Context, method, call, op, name string) (*domain, error) {
	if err := f.enter(ctx, method, call); err != nil {
		return nil, err
	}
	d, ok := f.domains[name]
	if !ok {
		return nil, f.errNoDomain(op, name)
	}
	return d, nil
}

func (f *Fake) errNoDomain(op, name string) error {
	return &Error{Op: op + " " + name, Msg: fmt.Sprintf("Domain not found: no domain with matching name '%s'", name), Kind: hypervisor.ErrNotFound}
}

func invalid(op, name, msg string) error {
	return &Error{Op: op + " " + name, Msg: "Requested operation is not valid: " + msg, Kind: hypervisor.ErrInvalidState}
}

func (f *Fake) guest(name string) Guest {
	if g, ok := f.guests[name]; ok {
		return g
	}
	return f.defGuest
}

// setState moves d to s; an inactive transient domain vanishes, as in
// libvirt. Callers hold f.mu.
func (f *Fake) setState(d *domain, s hypervisor.State, reason string) {
	was := d.State
	d.State, d.Reason = s, reason
	switch {
	case s == hypervisor.StateCrashed:
		f.emit(d, hypervisor.EventCrashed, "panicked")
	case !s.Active() && was.Active():
		f.emit(d, hypervisor.EventStopped, stopDetail(reason))
	case s == hypervisor.StatePaused && was != hypervisor.StatePaused:
		f.emit(d, hypervisor.EventSuspended, "paused")
	case s == hypervisor.StateRunning && !was.Active():
		f.emit(d, hypervisor.EventStarted, "booted")
	case s == hypervisor.StateRunning && was == hypervisor.StatePaused:
		f.emit(d, hypervisor.EventResumed, "unpaused")
	}
	if !s.Active() {
		// Its jobs end with its QEMU.
		d.liveXML, d.backup, d.out = "", nil, nil
		unlisten(d.in)
		d.in = nil
		if !d.Persistent {
			delete(f.domains, d.Name)
		}
	}
}

// parsed is what the fake reads of domain XML.
type parsed struct {
	XMLName xml.Name `xml:"domain"`
	Name    string   `xml:"name"`
	UUID    string   `xml:"uuid"`
}

func parseXML(op, doc string) (parsed, error) {
	var p parsed
	if err := xml.Unmarshal([]byte(doc), &p); err != nil {
		return p, &Error{Op: op, Msg: "XML error: " + err.Error()}
	}
	if p.Name == "" {
		return p, &Error{Op: op, Msg: "XML error: missing domain name information"}
	}
	return p, nil
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// Define defines a persistent domain, or redefines one of the same name
// and UUID (a running domain keeps its live config until it stops).
func (f *Fake) Define(ctx context.Context, doc string) (hypervisor.Domain, error) {
	p, perr := parseXML("define domain", doc)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(ctx, "Define", p.Name); err != nil {
		return hypervisor.Domain{}, err
	}
	if perr != nil {
		return hypervisor.Domain{}, perr
	}
	if d, ok := f.domains[p.Name]; ok {
		if p.UUID != "" && !strings.EqualFold(p.UUID, d.UUID) {
			return hypervisor.Domain{}, &Error{Op: "define domain", Kind: hypervisor.ErrExists,
				Msg: fmt.Sprintf("operation failed: domain '%s' already exists with uuid %s", p.Name, d.UUID)}
		}
		d.xml, d.Persistent = doc, true
		f.emit(d, hypervisor.EventDefined, "updated")
		return d.Domain, nil
	}
	for _, d := range f.domains {
		if p.UUID != "" && strings.EqualFold(d.UUID, p.UUID) {
			return hypervisor.Domain{}, &Error{Op: "define domain", Kind: hypervisor.ErrExists,
				Msg: fmt.Sprintf("operation failed: domain '%s' already exists with uuid %s", d.Name, d.UUID)}
		}
	}
	uuid := p.UUID
	if uuid == "" {
		uuid = newUUID()
	}
	d := &domain{Domain: hypervisor.Domain{Name: p.Name, UUID: uuid, State: hypervisor.StateShutoff, Persistent: true}, xml: doc}
	f.domains[p.Name] = d
	f.emit(d, hypervisor.EventDefined, "added")
	return d.Domain, nil
}

// Undefine removes the definition. Like libvirt, undefining a running
// domain makes it transient: it vanishes when it stops.
func (f *Fake) Undefine(ctx context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(ctx, "Undefine", name); err != nil {
		return err
	}
	d, ok := f.domains[name]
	if !ok {
		return f.errNoDomain("undefine domain", name)
	}
	if !d.Persistent {
		return invalid("undefine domain", name, "cannot undefine transient domain")
	}
	if d.State.Active() {
		d.Persistent, d.Autostart = false, false
		return nil
	}
	delete(f.domains, name)
	f.emit(d, hypervisor.EventUndefined, "removed")
	return nil
}

// Start boots a defined, inactive domain.
func (f *Fake) Start(ctx context.Context, name string) error {
	return f.start(ctx, "Start", name, hypervisor.StateRunning)
}

// start boots a domain into state (running, or paused).
func (f *Fake) start(ctx context.Context, method, name string, state hypervisor.State) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(ctx, method, name); err != nil {
		return err
	}
	d, ok := f.domains[name]
	if !ok {
		return f.errNoDomain("start domain", name)
	}
	if d.State.Active() {
		return invalid("start domain", name, "domain is already running")
	}
	if err := f.checkNetworks("start domain", name, d.xml); err != nil {
		return err
	}
	d.boot++
	d.liveXML = d.xml
	d.State, d.Reason = hypervisor.StateRunning, "booted"
	f.emit(d, hypervisor.EventStarted, "booted")
	if state == hypervisor.StatePaused {
		f.setState(d, state, "user")
	}
	return nil
}

// Shutdown presses the power button; what happens depends on the Guest.
// A paused guest does not see the press.
func (f *Fake) Shutdown(ctx context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(ctx, "Shutdown", name); err != nil {
		return err
	}
	d, ok := f.domains[name]
	if !ok {
		return f.errNoDomain("shut down domain", name)
	}
	if !d.State.Active() {
		return invalid("shut down domain", name, "domain is not running")
	}
	g := f.guest(name)
	if g.IgnoreACPI || d.State != hypervisor.StateRunning {
		return nil
	}
	if g.ShutdownDelay <= 0 {
		f.setState(d, hypervisor.StateShutoff, "shut down")
		return nil
	}
	boot := d.boot
	time.AfterFunc(g.ShutdownDelay, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if cur, ok := f.domains[name]; ok && cur == d && d.boot == boot && d.State == hypervisor.StateRunning {
			f.setState(d, hypervisor.StateShutoff, "shut down")
		}
	})
	return nil
}

// Destroy stops an active domain at once.
func (f *Fake) Destroy(ctx context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(ctx, "Destroy", name); err != nil {
		return err
	}
	d, ok := f.domains[name]
	if !ok {
		return f.errNoDomain("destroy domain", name)
	}
	if !d.State.Active() {
		return invalid("destroy domain", name, "domain is not running")
	}
	f.setState(d, hypervisor.StateShutoff, "destroyed")
	return nil
}

// Reboot reboots an active domain whose guest heeds ACPI (it stays
// running; its boot count goes up).
func (f *Fake) Reboot(ctx context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(ctx, "Reboot", name); err != nil {
		return err
	}
	d, ok := f.domains[name]
	if !ok {
		return f.errNoDomain("reboot domain", name)
	}
	if !d.State.Active() {
		return invalid("reboot domain", name, "domain is not running")
	}
	if !f.guest(name).IgnoreACPI && d.State == hypervisor.StateRunning {
		d.boot++
		d.Reason = "booted"
	}
	return nil
}

// Suspend pauses an active domain; pausing a paused one does nothing, as
// in libvirt.
func (f *Fake) Suspend(ctx context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(ctx, "Suspend", name); err != nil {
		return err
	}
	d, ok := f.domains[name]
	if !ok {
		return f.errNoDomain("pause domain", name)
	}
	if !d.State.Active() {
		return invalid("pause domain", name, "domain is not running")
	}
	if d.State == hypervisor.StatePMSuspended {
		return invalid("pause domain", name, "domain is pmsuspended")
	}
	if d.State != hypervisor.StatePaused {
		d.State, d.Reason = hypervisor.StatePaused, "paused by user"
		f.emit(d, hypervisor.EventSuspended, "paused")
	}
	return nil
}

// Resume resumes a paused domain; resuming a running one does nothing, as
// in libvirt.
func (f *Fake) Resume(ctx context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(ctx, "Resume", name); err != nil {
		return err
	}
	d, ok := f.domains[name]
	if !ok {
		return f.errNoDomain("resume domain", name)
	}
	if !d.State.Active() {
		return invalid("resume domain", name, "domain is not running")
	}
	if d.State == hypervisor.StatePMSuspended {
		return invalid("resume domain", name, "domain is pmsuspended")
	}
	if d.State == hypervisor.StatePaused {
		d.State, d.Reason = hypervisor.StateRunning, "unpaused"
		f.emit(d, hypervisor.EventResumed, "unpaused")
	}
	return nil
}

// Lookup returns a domain as it is now.
func (f *Fake) Lookup(ctx context.Context, name string) (hypervisor.Domain, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(ctx, "Lookup", name); err != nil {
		return hypervisor.Domain{}, err
	}
	d, ok := f.domains[name]
	if !ok {
		return hypervisor.Domain{}, f.errNoDomain("look up domain", name)
	}
	return d.Domain, nil
}

// List returns every domain, sorted by name.
func (f *Fake) List(ctx context.Context) ([]hypervisor.Domain, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(ctx, "List", ""); err != nil {
		return nil, err
	}
	out := make([]hypervisor.Domain, 0, len(f.domains))
	for _, d := range f.domains {
		out = append(out, d.Domain)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// XML returns the live definition of an active domain, or the persistent
// one when inactive is set or the domain is not running.
func (f *Fake) XML(ctx context.Context, name string, inactive bool) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(ctx, "XML", name); err != nil {
		return "", err
	}
	d, ok := f.domains[name]
	if !ok {
		return "", f.errNoDomain("get XML of domain", name)
	}
	if d.State.Active() && (!inactive || !d.Persistent) {
		return d.liveXML, nil
	}
	return d.xml, nil
}

// SetAutostart sets autostart of a persistent domain.
func (f *Fake) SetAutostart(ctx context.Context, name string, on bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(ctx, "SetAutostart", name); err != nil {
		return err
	}
	d, ok := f.domains[name]
	if !ok {
		return f.errNoDomain("set autostart of", name)
	}
	if !d.Persistent {
		return invalid("set autostart of", name, "cannot set autostart for transient domain")
	}
	d.Autostart = on
	return nil
}

// RunTransient starts a transient domain; it vanishes when it stops.
func (f *Fake) RunTransient(ctx context.Context, doc string) error {
	p, perr := parseXML("start transient domain", doc)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(ctx, "RunTransient", p.Name); err != nil {
		return err
	}
	if perr != nil {
		return perr
	}
	if _, ok := f.domains[p.Name]; ok {
		return &Error{Op: "start transient domain", Kind: hypervisor.ErrExists,
			Msg: fmt.Sprintf("operation failed: domain '%s' already exists", p.Name)}
	}
	uuid := p.UUID
	if uuid == "" {
		uuid = newUUID()
	}
	nd := &domain{
		Domain: hypervisor.Domain{Name: p.Name, UUID: uuid, State: hypervisor.StateRunning, Reason: "booted"},
		xml:    doc, liveXML: doc, boot: 1,
	}
	f.domains[p.Name] = nd
	f.emit(nd, hypervisor.EventStarted, "booted")
	return nil
}

// EnsurePool makes an active "dir" pool of 100 GiB; a pool of that name at
// another path is an error.
func (f *Fake) EnsurePool(ctx context.Context, p hypervisor.Pool) (hypervisor.PoolInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(ctx, "EnsurePool", p.Name); err != nil {
		return hypervisor.PoolInfo{}, err
	}
	if p.Type == "" {
		p.Type = "dir"
	}
	if cur, ok := f.pools[p.Name]; ok {
		if filepath.Clean(cur.Path) != filepath.Clean(p.Path) {
			return hypervisor.PoolInfo{}, &Error{Op: "ensure storage pool " + p.Name,
				Msg: fmt.Sprintf("storage pool %q exists with path %s, but godwit is configured to use %s", p.Name, cur.Path, p.Path)}
		}
		cur.Active = true
		return f.poolInfo(cur), nil
	}
	np := &pool{
		PoolInfo: hypervisor.PoolInfo{Name: p.Name, Type: p.Type, Path: p.Path, Active: true, Autostart: true, Capacity: uint64(100 * api.GiB)},
		volumes:  map[string]*hypervisor.VolumeInfo{},
	}
	f.pools[p.Name] = np
	return f.poolInfo(np), nil
}

func (f *Fake) poolInfo(p *pool) hypervisor.PoolInfo {
	info := p.PoolInfo
	info.Allocation = 0
	for _, v := range p.volumes {
		info.Allocation += v.Allocation
	}
	info.Available = info.Capacity - min(info.Capacity, info.Allocation)
	return info
}

// PoolInfo returns a pool as it is.
func (f *Fake) PoolInfo(ctx context.Context, name string) (hypervisor.PoolInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(ctx, "PoolInfo", name); err != nil {
		return hypervisor.PoolInfo{}, err
	}
	p, err := f.pool("get storage pool", name)
	if err != nil {
		return hypervisor.PoolInfo{}, err
	}
	return f.poolInfo(p), nil
}

func (f *Fake) pool(op, name string) (*pool, error) {
	p, ok := f.pools[name]
	if !ok {
		return nil, &Error{Op: op + " " + name, Msg: fmt.Sprintf("Storage pool not found: no storage pool with matching name '%s'", name), Kind: hypervisor.ErrNotFound}
	}
	return p, nil
}

func errNoVolume(op, poolName, name string) error {
	return &Error{Op: op + " " + poolName + "/" + name, Msg: fmt.Sprintf("Storage volume not found: no storage vol with matching name '%s'", name), Kind: hypervisor.ErrNotFound}
}

// CreateVolume makes a volume; one of the same name is ErrExists.
func (f *Fake) CreateVolume(ctx context.Context, poolName string, v hypervisor.Volume) (hypervisor.VolumeInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(ctx, "CreateVolume", poolName+"/"+v.Name); err != nil {
		return hypervisor.VolumeInfo{}, err
	}
	p, err := f.pool("create volume in", poolName)
	if err != nil {
		return hypervisor.VolumeInfo{}, err
	}
	if _, ok := p.volumes[v.Name]; ok {
		return hypervisor.VolumeInfo{}, &Error{Op: "create volume " + poolName + "/" + v.Name, Kind: hypervisor.ErrExists,
			Msg: fmt.Sprintf("storage volume '%s' exists already", v.Name)}
	}
	if v.Capacity == 0 {
		return hypervisor.VolumeInfo{}, &Error{Op: "create volume " + poolName + "/" + v.Name, Msg: "invalid argument: volume capacity required"}
	}
	format := v.Format
	if format == "" {
		format = "qcow2"
	}
	info := &hypervisor.VolumeInfo{Name: v.Name, Path: filepath.Join(p.Path, v.Name), Capacity: v.Capacity,
		Allocation: uint64(192 * api.KiB), Format: format, Backing: v.BackingPath}
	p.volumes[v.Name] = info
	return *info, nil
}

// DeleteVolume removes a volume.
func (f *Fake) DeleteVolume(ctx context.Context, poolName, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(ctx, "DeleteVolume", poolName+"/"+name); err != nil {
		return err
	}
	p, err := f.pool("delete volume in", poolName)
	if err != nil {
		return err
	}
	if _, ok := p.volumes[name]; !ok {
		return errNoVolume("delete volume", poolName, name)
	}
	delete(p.volumes, name)
	delete(f.data, poolName+"/"+name)
	return nil
}

// VolumeInfo returns a volume's path and sizes.
func (f *Fake) VolumeInfo(ctx context.Context, poolName, name string) (hypervisor.VolumeInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(ctx, "VolumeInfo", poolName+"/"+name); err != nil {
		return hypervisor.VolumeInfo{}, err
	}
	p, err := f.pool("get volume in", poolName)
	if err != nil {
		return hypervisor.VolumeInfo{}, err
	}
	v, ok := p.volumes[name]
	if !ok {
		return hypervisor.VolumeInfo{}, errNoVolume("get volume", poolName, name)
	}
	return *v, nil
}

// ResizeVolume grows a volume; shrinking fails, as libvirt does without
// its shrink flag.
func (f *Fake) ResizeVolume(ctx context.Context, poolName, name string, capacity uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(ctx, "ResizeVolume", poolName+"/"+name); err != nil {
		return err
	}
	p, err := f.pool("resize volume in", poolName)
	if err != nil {
		return err
	}
	v, ok := p.volumes[name]
	if !ok {
		return errNoVolume("resize volume", poolName, name)
	}
	if capacity < v.Capacity {
		return &Error{Op: "resize volume " + poolName + "/" + name, Msg: "invalid argument: Can't shrink capacity below current capacity unless shrink flag explicitly specified"}
	}
	v.Capacity = capacity
	return nil
}

// HostInfo returns the host's facts (SetHostInfo changes them).
func (f *Fake) HostInfo(ctx context.Context) (hypervisor.HostInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(ctx, "HostInfo", ""); err != nil {
		return hypervisor.HostInfo{}, err
	}
	h := f.host
	h.VirtTypes = append([]string(nil), h.VirtTypes...)
	return h, nil
}

// Ping answers unless the fake is down (or a fault says otherwise).
func (f *Fake) Ping(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.enter(ctx, "Ping", "")
}

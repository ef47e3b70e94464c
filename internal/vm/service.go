// Package vm owns the VM lifecycle: it validates specs, creates a VM's
// volumes and libvirt domain (undoing everything when a step fails), keeps
// the VM's record in the store, serialises actions per VM, and decides which
// action is allowed in which state. libvirt stays the source of truth for a
// domain's state; the store keeps what libvirt does not (the spec, disks).
//
// It does not speak HTTP (internal/daemon does) or XML (internal/domainxml).
package vm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/hypervisor"
	"github.com/godwit-project/godwit/internal/image"
	"github.com/godwit-project/godwit/internal/ops"
	"github.com/godwit-project/godwit/internal/store"
)

const bucket = "vms"

// Record statuses: a VM is "ready" once created; "creating" and "deleting"
// records are what a crash mid-way leaves behind, for Reconcile to finish.
const (
	statusCreating = "creating"
	statusReady    = "ready"
	statusDeleting = "deleting"
)

// record is what the store keeps of a VM.
type record struct {
	Name       string       `json:"name"`
	UUID       string       `json:"uuid"`
	Spec       api.VMSpec   `json:"spec"`
	Status     string       `json:"status"`
	Disks      []api.VMDisk `json:"disks"`
	NICs       []nicRecord  `json:"nics,omitempty"`
	ConsoleLog string       `json:"consoleLog,omitempty"`
	// Seed is the cloud-init seed ISO attached as a CD-ROM.
	Seed string `json:"seed,omitempty"`
	// Boot is the boot the domain gets: the spec's, with boot.image
	// resolved to the image's kernel, initrd and cmdline.
	Boot *api.Boot `json:"boot,omitempty"`
	// BootFiles is Boot with the kernel and initrd the domain boots: the
	// daemon's copies in its boot store (nil for VMs made before it).
	BootFiles *api.Boot `json:"bootFiles,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	// KeepDisks is set with status deleting: what the delete was asked.
	KeepDisks bool `json:"keepDisks,omitempty"`
	// Run: the VM should run (its last start went through, no stop or
	// kill since). An HA restart starts only such VMs.
	Run bool `json:"run,omitempty"`
	// Adopted is a domain godwit did not define (vm adopt): its
	// definition is never rewritten from the spec, and Kept lists what
	// the spec does not express of it.
	Adopted bool     `json:"adopted,omitempty"`
	Kept    []string `json:"kept,omitempty"`
}

// reporter is where a step reports progress: an *ops.Op, or nothing.
type reporter interface {
	Progress(message string, current, total int64, unit string)
}

type noProgress struct{}

func (noProgress) Progress(string, int64, int64, string) {}

// Config is what the service needs to know of its daemon.
type Config struct {
	// Pool is the libvirt storage pool that holds VM disks.
	Pool string
	// ConsoleDir holds the console logs.
	ConsoleDir string
	// Owner identifies this daemon in the domains it defines.
	Owner string
	// VirtType returns the libvirt domain type for new VMs: kvm or qemu.
	VirtType func(ctx context.Context) (string, error)
	// Host is the name this daemon reports as the VMs' host.
	Host string
	// Networks resolves the networks NICs plug into (nil: no NICs).
	Networks Networks
	// SeedDir holds the cloud-init seed ISOs.
	SeedDir string
	// BootFiles keeps the copies of the kernels and initrds VMs boot (nil:
	// VMs boot the spec's files in place).
	BootFiles *image.BootFiles
	// Probe tells free huge pages and whether virtiofsd exists (nil:
	// the host's own files).
	Probe HostProbe
}

// Images resolves catalog image names (internal/image's Catalog).
type Images interface {
	Resolve(ctx context.Context, name string) (image.Resolved, error)
}

// Service runs VMs.
type Service struct {
	hv     hypervisor.Hypervisor
	store  store.Store
	ops    *ops.Manager
	img    image.Inspector
	cat    Images
	shared SharedPools
	cfg    Config
	log    *slog.Logger

	// onDeleted are told of each VM deleted (what others keep per VM,
	// like a backup schedule, goes with it).
	onDeleted []func(ctx context.Context, name string)

	mu   sync.Mutex
	busy map[string]string // VM name -> what holds it (an operation id or action)
	cl   Cluster
	held map[string]ClusterLock // VM name -> its cluster lock, while busy
	// leaving: VMs that moved away whose domain here is still being
	// ended (a migration's Confirm): not shown, not anyone's to adopt.
	leaving map[string]bool
	clock   func() time.Time
}

// New returns a Service.
func New(hv hypervisor.Hypervisor, st store.Store, om *ops.Manager, img image.Inspector, cfg Config, log *slog.Logger) *Service {
	return &Service{hv: hv, store: st, ops: om, img: img, cfg: cfg, log: log, busy: map[string]string{}, held: map[string]ClusterLock{}, leaving: map[string]bool{}, clock: time.Now}
}

// OnDeleted registers f to be told of every VM deleted here.
func (s *Service) OnDeleted(f func(ctx context.Context, name string)) {
	s.onDeleted = append(s.onDeleted, f)
}

// SetImages gives the service the image catalog, for disks and boots that
// name catalog images.
func (s *Service) SetImages(c Images) { s.cat = c }

// SharedPools says which pools are shared: the same filesystem, at the
// same path, on every host (internal/storage).
type SharedPools interface {
	IsShared(ctx context.Context, pool string) (bool, error)
}

// SetSharedPools tells the service which pools are shared, for VMs the
// cluster restarts elsewhere (ha: restart), whose disks must be on one.
func (s *Service) SetSharedPools(p SharedPools) { s.shared = p }

// Cluster is what the service needs of the cluster its host is in.
type Cluster interface {
	// Lock takes the VM's cluster-wide lock for what, at once or not at
	// all: a 409 naming the holder (on any host), a 503 when the cluster
	// cannot say.
	Lock(ctx context.Context, vm, what string) (ClusterLock, error)
	// Owner names the host whose state holds the VM ("" for none).
	Owner(ctx context.Context, vm string) (string, error)
	// Claim writes the VM's first record (a create's) with its
	// reservation on this host, guarded by the create's lock: a 409
	// when this host has no room for it.
	Claim(ctx context.Context, lock ClusterLock, vm string, record []byte, spec api.VMSpec) error
	// Released says a VM's record left this host (deleted, moved): its
	// reservation goes.
	Released(ctx context.Context)
}

// ClusterLock is a held cluster-wide VM lock.
type ClusterLock interface {
	Relabel(ctx context.Context, what string) error
	Unlock(ctx context.Context) error
}

// SetCluster makes the service take, besides its own per-VM lock, the
// cluster's for each action, so two hosts never act on one VM at once,
// and refuse a new VM whose name another host has.
func (s *Service) SetCluster(c Cluster) {
	s.mu.Lock()
	s.cl = c
	s.mu.Unlock()
}

// clusterCallTimeout bounds the release and relabel of a cluster lock,
// which run after the action, outside its context.
const clusterCallTimeout = 5 * time.Second

// lock claims a VM name for one action, on this host and in the cluster
// when the host is in one; a second action on the same VM gets a 409
// that says what holds it. The returned func releases it.
func (s *Service) lock(ctx context.Context, name, holder string) (func(), error) {
	unlock, err := s.lockLocal(name, holder)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	c := s.cl
	s.mu.Unlock()
	if c == nil {
		return unlock, nil
	}
	held, err := c.Lock(ctx, name, holder)
	if err != nil {
		unlock()
		return nil, err
	}
	s.mu.Lock()
	s.held[name] = held
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.held, name)
		s.mu.Unlock()
		uctx, cancel := context.WithTimeout(context.Background(), clusterCallTimeout)
		defer cancel()
		if err := held.Unlock(uctx); err != nil {
			s.log.Warn("release the cluster lock of a VM", "vm", name, "err", err)
		}
		unlock()
	}, nil
}

// lockLocal claims a VM name on this host only: for a VM arriving from
// another host of the cluster, whose lock its source holds for the move.
func (s *Service) lockLocal(name, holder string) (func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h, ok := s.busy[name]; ok {
		return nil, api.Conflict("vm %s is busy: %s is in progress (see godwit op list)", name, h)
	}
	s.busy[name] = holder
	return func() {
		s.mu.Lock()
		delete(s.busy, name)
		s.mu.Unlock()
	}, nil
}

// relabel updates what a held lock says (once an operation id is known),
// if the lock still says from: an operation that already ended released it.
func (s *Service) relabel(name, from, to string) {
	s.mu.Lock()
	if s.busy[name] != from {
		s.mu.Unlock()
		return
	}
	s.busy[name] = to
	held := s.held[name]
	s.mu.Unlock()
	if held != nil {
		ctx, cancel := context.WithTimeout(context.Background(), clusterCallTimeout)
		defer cancel()
		if err := held.Relabel(ctx, to); err != nil {
			s.log.Warn("relabel the cluster lock of a VM", "vm", name, "err", err)
		}
	}
}

// ownedElsewhere refuses a name another host of the cluster has a VM of.
func (s *Service) ownedElsewhere(ctx context.Context, name string) error {
	s.mu.Lock()
	c := s.cl
	s.mu.Unlock()
	if c == nil {
		return nil
	}
	owner, err := c.Owner(ctx, name)
	if err != nil {
		return err
	}
	if owner != "" && owner != s.cfg.Host {
		return api.Conflict("vm %s exists on host %s", name, owner)
	}
	return nil
}

func (s *Service) getRecord(ctx context.Context, name string) (record, error) {
	r, err := store.GetJSON[record](ctx, s.store, bucket, name)
	if errors.Is(err, store.ErrNotFound) {
		return r, api.NotFound("vm %s not found", name)
	}
	return r, err
}

func (s *Service) putRecord(ctx context.Context, r record) error {
	return store.PutJSON(ctx, s.store, bucket, r.Name, r)
}

// List returns every VM: godwit's own and the unmanaged domains libvirt has.
func (s *Service) List(ctx context.Context) ([]api.VM, error) {
	recs, err := store.ListJSON[record](ctx, s.store, bucket)
	if err != nil {
		return nil, err
	}
	doms, err := s.hv.List(ctx)
	if err != nil {
		return nil, mapHypervisorError(err)
	}
	byName := map[string]hypervisor.Domain{}
	for _, d := range doms {
		byName[d.Name] = d
	}
	out := make([]api.VM, 0, len(doms)+len(recs))
	byRec := make(map[string]record, len(recs))
	for _, r := range recs {
		d, ok := byName[r.Name]
		out = append(out, s.view(r, d, ok))
		delete(byName, r.Name)
		byRec[r.Name] = r
	}
	for _, d := range byName {
		if !s.isLeaving(d.Name) {
			out = append(out, s.unmanaged(d))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	s.addressesAll(ctx, out, byRec)
	return out, nil
}

// Leaving hides the domain of a VM that moved away (its record is gone)
// while the caller ends it here: List and Get do not show it, as if it
// were gone already. The caller holds the VM's lock meanwhile, so nothing
// can take the name, and calls the returned func once the domain is gone.
func (s *Service) Leaving(name string) func() {
	s.mu.Lock()
	s.leaving[name] = true
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.leaving, name)
		s.mu.Unlock()
	}
}

func (s *Service) isLeaving(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leaving[name]
}

// Get returns one VM, managed or not.
func (s *Service) Get(ctx context.Context, name string) (api.VM, error) {
	r, err := s.getRecord(ctx, name)
	if err != nil && api.Status(err) != 404 {
		return api.VM{}, err
	}
	managed := err == nil
	d, derr := s.hv.Lookup(ctx, name)
	switch {
	case derr == nil:
	case errors.Is(derr, hypervisor.ErrNotFound):
		if !managed {
			return api.VM{}, api.NotFound("vm %s not found", name)
		}
		return s.view(r, d, false), nil
	default:
		return api.VM{}, mapHypervisorError(derr)
	}
	if !managed {
		if s.isLeaving(name) {
			return api.VM{}, api.NotFound("vm %s not found", name)
		}
		return s.unmanaged(d), nil
	}
	v := s.view(r, d, true)
	s.addressesOne(ctx, &v, r)
	if s.cfg.VirtType != nil && !r.Adopted {
		if vt, err := s.cfg.VirtType(ctx); err == nil {
			v.CPU = CPUApplies(r.Spec, vt)
		}
	}
	return v, nil
}

func (s *Service) view(r record, d hypervisor.Domain, exists bool) api.VM {
	spec := r.Spec
	v := api.VM{
		Name: r.Name, UUID: r.UUID, Managed: true, Spec: &spec, Disks: r.Disks, NICs: apiNICs(r.NICs),
		ConsoleLog: r.ConsoleLog, CreatedAt: r.CreatedAt, Host: s.cfg.Host, Adopted: r.Adopted, Kept: r.Kept,
	}
	switch {
	case r.Status == statusCreating:
		v.State = api.VMCreating
	case r.Status == statusDeleting:
		v.State = api.VMDeleting
	case !exists:
		v.State = api.VMMissing
		v.Reason = "libvirt has no domain of this name (undefined outside godwit?); delete the VM to clean up"
	default:
		v.State, v.Reason = stateOf(d), d.Reason
	}
	return v
}

func (s *Service) unmanaged(d hypervisor.Domain) api.VM {
	return api.VM{Name: d.Name, UUID: d.UUID, State: stateOf(d), Reason: d.Reason, Managed: false, Host: s.cfg.Host}
}

func stateOf(d hypervisor.Domain) api.VMState { return hypervisor.APIState(d.State) }

// lockManaged locks a managed VM for holder and returns its record and
// the unlock func; on an error nothing stays locked.
func (s *Service) lockManaged(ctx context.Context, name, holder string) (record, func(), error) {
	unlock, err := s.lock(ctx, name, holder)
	if err != nil {
		return record{}, nil, err
	}
	rec, err := s.managed(ctx, name)
	if err != nil {
		unlock()
		return record{}, nil, err
	}
	return rec, unlock, nil
}

// claim is lockManaged that also looks up the VM's domain, with a 409 when
// it is gone from libvirt.
func (s *Service) claim(ctx context.Context, name, holder string) (record, hypervisor.Domain, func(), error) {
	rec, unlock, err := s.lockManaged(ctx, name, holder)
	if err != nil {
		return record{}, hypervisor.Domain{}, nil, err
	}
	d, err := s.hv.Lookup(ctx, name)
	if errors.Is(err, hypervisor.ErrNotFound) {
		unlock()
		return record{}, d, nil, api.Conflict("vm %s has no libvirt domain (undefined outside godwit?); delete the VM to clean up", name)
	}
	if err != nil {
		unlock()
		return record{}, d, nil, mapHypervisorError(err)
	}
	return rec, d, unlock, nil
}

// managed returns the record of a VM godwit manages, with a 409 for a
// domain it does not and a 404 for neither.
func (s *Service) managed(ctx context.Context, name string) (record, error) {
	r, err := s.getRecord(ctx, name)
	if api.Status(err) == 404 {
		_, derr := s.hv.Lookup(ctx, name)
		switch {
		case derr == nil:
			return r, api.Conflict("vm %s is a libvirt domain godwit did not create; godwit lists it but leaves it alone", name)
		case errors.Is(derr, hypervisor.ErrUnavailable):
			// Whether a foreign domain has that name is unknown.
			return r, mapHypervisorError(derr)
		}
		return r, err
	}
	if err != nil {
		return r, err
	}
	switch r.Status {
	case statusCreating:
		return r, api.Conflict("vm %s is still being created", name)
	case statusDeleting:
		return r, api.Conflict("vm %s is being deleted", name)
	}
	return r, nil
}

// ConsoleLog returns the path of a VM's console log.
func (s *Service) ConsoleLog(ctx context.Context, name string) (string, error) {
	r, err := s.getRecord(ctx, name)
	if err != nil {
		if api.Status(err) == 404 {
			if _, derr := s.hv.Lookup(ctx, name); derr == nil {
				return "", api.Conflict("vm %s was not created by godwit, so godwit keeps no console log for it (try virsh console %s)", name, name)
			}
		}
		return "", err
	}
	if r.ConsoleLog == "" {
		return "", api.Conflict("vm %s keeps no console log (console.log is false in its spec)", name)
	}
	return r.ConsoleLog, nil
}

// Count returns how many VMs godwit manages.
func (s *Service) Count(ctx context.Context) (int, error) {
	kvs, err := s.store.List(ctx, bucket)
	return len(kvs), err
}

// mapHypervisorError turns hypervisor sentinels into API statuses.
func mapHypervisorError(err error) error { return hypervisor.APIError(err) }

func (s *Service) consolePath(name string) string {
	return filepath.Join(s.cfg.ConsoleDir, name+".log")
}

// removeConsoleLogs deletes a VM's console log and virtlogd's rotations.
func (s *Service) removeConsoleLogs(name string) {
	matches, _ := filepath.Glob(s.consolePath(name) + "*")
	for _, m := range matches {
		if err := os.Remove(m); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("remove console log", "path", m, "err", err)
		}
	}
}

func target(name string) string { return "vm/" + name }

func opError(action, name string, err error) error {
	if err == nil {
		return nil
	}
	if api.Status(err) != 0 {
		return err
	}
	return fmt.Errorf("%s vm %s: %w", action, name, mapHypervisorError(err))
}

// RecordView is the VM a record of another host says, as far as a
// record can: its state is unknown (only that host's libvirt knows it).
// It is what a host of a cluster shows of a VM whose host does not
// answer; the record's format stays this package's.
func RecordView(raw []byte, host string) (api.VM, error) {
	var r record
	if err := json.Unmarshal(raw, &r); err != nil {
		return api.VM{}, fmt.Errorf("vm record: %w", err)
	}
	spec := r.Spec
	return api.VM{Name: r.Name, UUID: r.UUID, State: api.VMUnknown, Managed: true, Spec: &spec, Disks: r.Disks,
		NICs: apiNICs(r.NICs), ConsoleLog: r.ConsoleLog, CreatedAt: r.CreatedAt, Host: host}, nil
}

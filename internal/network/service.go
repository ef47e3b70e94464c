package network

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/hypervisor"
	"github.com/godwit-project/godwit/internal/revert"
	"github.com/godwit-project/godwit/internal/store"
)

const (
	bucket = "networks"
	// DefaultName is the NAT network a daemon makes at its first start.
	DefaultName = "default"
	// metaDefault marks that the default network was made once: deleting
	// it later is the user's choice and it is not made again.
	metaDefault = "network.default"

	statusCreating = "creating"
	statusReady    = "ready"

	// retryUpEvery paces EnsureUp after a failure.
	retryUpEvery = 30 * time.Second
)

// record is what the store keeps of a network.
type record struct {
	Name    string          `json:"name"`
	Libvirt string          `json:"libvirt"`
	Bridge  string          `json:"bridge"`
	Spec    api.NetworkSpec `json:"spec"` // resolved: defaults filled in
	Status  string          `json:"status"`
	// Picked is set when godwit chose the subnet.
	Picked    bool      `json:"picked,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
}

func (r record) def() Def {
	return Def{Spec: r.Spec, Libvirt: r.Libvirt, Bridge: r.Bridge}
}

// Config is what the service needs to know of its daemon.
type Config struct {
	// Prefix starts the libvirt names of this daemon's networks.
	Prefix string
	// Default makes the `default` NAT network at the first start.
	Default bool
	// DefaultSubnet is the default network's subnet; empty picks a free /24.
	DefaultSubnet string
}

// UsersFunc names the VMs with a NIC on a network.
type UsersFunc func(ctx context.Context, network string) ([]string, error)

// Service manages networks.
type Service struct {
	hv    hypervisor.Networks
	store store.Store
	host  Host
	cfg   Config
	log   *slog.Logger
	users UsersFunc

	creating sync.Mutex // one create at a time: a subnet choice must see the last one

	mu       sync.Mutex
	pins     map[string]int  // network -> VM actions relying on it now
	deleting map[string]bool // networks being deleted
	upDone   bool
	upErr    error
	upTried  time.Time
	clock    func() time.Time
	// pick chooses a free subnet (tests replace it).
	pick func(list []used) (netip.Prefix, error)
}

// New returns a Service. users names the VMs of a network (nil: none).
func New(hv hypervisor.Networks, st store.Store, host Host, cfg Config, users UsersFunc, log *slog.Logger) *Service {
	if users == nil {
		users = func(context.Context, string) ([]string, error) { return nil, nil }
	}
	return &Service{hv: hv, store: st, host: host, cfg: cfg, users: users, log: log,
		pins: map[string]int{}, deleting: map[string]bool{}, clock: time.Now, pick: pickSubnet}
}

// Prefix returns the prefix of this daemon's libvirt network names.
func (s *Service) Prefix() string { return s.cfg.Prefix }

func (s *Service) getRecord(ctx context.Context, name string) (record, error) {
	r, err := store.GetJSON[record](ctx, s.store, bucket, name)
	if errors.Is(err, store.ErrNotFound) {
		return r, api.NotFound("network %s not found", name)
	}
	return r, err
}

func (s *Service) putRecord(ctx context.Context, r record) error {
	return store.PutJSON(ctx, s.store, bucket, r.Name, r)
}

// used is a subnet something already has.
type used struct {
	prefix netip.Prefix
	by     string
}

// usedSubnets lists the subnets of every libvirt network (godwit's, other
// daemons', anyone's) and the host's routes.
func (s *Service) usedSubnets(ctx context.Context) ([]used, error) {
	nets, err := s.hv.ListNetworks(ctx)
	if err != nil {
		return nil, err
	}
	var out []used
	for _, n := range nets {
		for _, p := range subnetsOf(n.XML) {
			out = append(out, used{p, "libvirt network " + n.Name})
		}
	}
	routes, err := s.host.Routes()
	if err != nil {
		return nil, err
	}
	for _, r := range routes {
		out = append(out, used{r.Prefix, "the host's route to " + r.Prefix.String() + " on " + r.Dev})
	}
	return out, nil
}

func overlap(p netip.Prefix, list []used) (used, bool) {
	for _, u := range list {
		if u.prefix.Overlaps(p) {
			return u, true
		}
	}
	return used{}, false
}

// pickSubnet returns a random private /24 in 10.64.0.0-10.254.255.0 that
// nothing uses.
func pickSubnet(list []used) (netip.Prefix, error) {
	for range 512 {
		a, _ := rand.Int(rand.Reader, big.NewInt(191))
		b, _ := rand.Int(rand.Reader, big.NewInt(256))
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(64 + a.Int64()), byte(b.Int64()), 0}), 24)
		if _, taken := overlap(p, list); !taken {
			return p, nil
		}
	}
	return netip.Prefix{}, errors.New("no free /24 found in 10.64.0.0/10-10.254.255.0/24; give the network a subnet")
}

// Create makes a network: defined, started and autostarted in libvirt.
func (s *Service) Create(ctx context.Context, spec api.NetworkSpec) (api.Network, error) {
	Normalize(&spec)
	if err := ValidateStatic(spec); err != nil {
		return api.Network{}, err
	}
	s.creating.Lock()
	defer s.creating.Unlock()
	if err := s.claim(spec.Name); err != nil {
		return api.Network{}, err
	}
	defer s.release(spec.Name)
	rec, err := s.plan(ctx, spec)
	if err != nil {
		return api.Network{}, err
	}
	for attempt := 1; ; attempt++ {
		err = s.create(ctx, rec)
		if err == nil || !rec.Picked || attempt == 3 {
			break
		}
		// Another daemon may have taken the subnet since: pick again.
		list, uerr := s.usedSubnets(ctx)
		p, perr := netip.ParsePrefix(rec.Spec.Subnet)
		if uerr != nil || perr != nil {
			break
		}
		if _, taken := overlap(p, list); !taken {
			break
		}
		s.log.Info("subnet taken meanwhile, picking another", "network", spec.Name, "subnet", p)
		next, perr := s.pickResolve(spec, list)
		if perr != nil {
			return api.Network{}, perr
		}
		rec.Spec = next
	}
	if err != nil {
		return api.Network{}, err
	}
	s.log.Info("network created", "network", rec.Name, "libvirt", rec.Libvirt, "type", rec.Spec.Type, "bridge", rec.Bridge, "subnet", rec.Spec.Subnet)
	return s.Get(ctx, rec.Name)
}

// plan checks spec against the store, libvirt and the host, and returns
// the record to create.
func (s *Service) plan(ctx context.Context, spec api.NetworkSpec) (record, error) {
	if _, err := s.getRecord(ctx, spec.Name); err == nil {
		return record{}, api.Conflict("network %s already exists", spec.Name)
	} else if api.Status(err) != 404 {
		return record{}, err
	}
	rec := record{Name: spec.Name, Libvirt: LibvirtName(s.cfg.Prefix, spec.Name), Status: statusCreating, CreatedAt: s.clock().UTC()}
	if _, err := s.hv.LookupNetwork(ctx, rec.Libvirt); err == nil {
		return record{}, api.Conflict("a libvirt network named %s already exists, but godwit has no record of it; remove it (virsh net-destroy/net-undefine) or pick another name", rec.Libvirt)
	} else if !errors.Is(err, hypervisor.ErrNotFound) {
		return record{}, err
	}
	switch spec.Type {
	case api.NetworkNAT, api.NetworkIsolated:
		// libvirt runs dnsmasq for these (DHCP and DNS); without it the
		// network would be defined and then fail to start.
		if err := s.host.Program("dnsmasq"); err != nil {
			return record{}, api.Conflict("network %s (type %s): %v; scripts/host-setup.sh installs it", spec.Name, spec.Type, err)
		}
		rec.Bridge = BridgeName(rec.Libvirt)
		if s.host.Link(rec.Bridge) != LinkMissing {
			return record{}, api.Conflict("the host already has an interface %s, the bridge network %s would get; remove it if it is a leftover", rec.Bridge, spec.Name)
		}
		list, err := s.usedSubnets(ctx)
		if err != nil {
			return record{}, err
		}
		if spec.Subnet == "" {
			spec, err = s.pickResolve(spec, list)
			if err != nil {
				return record{}, err
			}
			rec.Picked = true
		} else {
			if spec, err = resolve(spec); err != nil {
				return record{}, err
			}
			p, _ := netip.ParsePrefix(spec.Subnet)
			if u, taken := overlap(p, list); taken {
				return record{}, api.Conflict("subnet: %s overlaps %s (%s); pick another subnet", p, u.by, u.prefix)
			}
		}
	case api.NetworkBridge:
		rec.Bridge = spec.Bridge
		switch s.host.Link(spec.Bridge) {
		case LinkMissing:
			return record{}, api.BadRequest("bridge: this host has no interface %s (create the Linux bridge first, e.g. ip link add %s type bridge)", spec.Bridge, spec.Bridge)
		case LinkOther:
			if ok, _ := s.host.OVSBridge(ctx, spec.Bridge); ok {
				return record{}, api.BadRequest("bridge: %s is an Open vSwitch bridge; use type: ovs", spec.Bridge)
			}
			return record{}, api.BadRequest("bridge: %s is not a Linux bridge", spec.Bridge)
		}
	case api.NetworkOVS:
		rec.Bridge = spec.Bridge
		ok, err := s.host.OVSBridge(ctx, spec.Bridge)
		if err != nil {
			return record{}, api.BadRequest("bridge: %v", err)
		}
		if !ok {
			return record{}, api.BadRequest("bridge: Open vSwitch has no bridge %s (ovs-vsctl add-br %s makes one)", spec.Bridge, spec.Bridge)
		}
	}
	rec.Spec = spec
	return rec, nil
}

// pickResolve chooses a free subnet for spec and resolves it.
func (s *Service) pickResolve(spec api.NetworkSpec, list []used) (api.NetworkSpec, error) {
	p, err := s.pick(list)
	if err != nil {
		return spec, api.Conflict("subnet: %v", err)
	}
	spec.Subnet = p.String()
	return resolve(spec)
}

// create runs the side effects; a failure leaves nothing behind.
func (s *Service) create(ctx context.Context, rec record) error {
	r := revert.New()
	defer r.Fail()
	undo := context.Background()
	if err := s.putRecord(ctx, rec); err != nil {
		return err
	}
	r.Add(func() { _ = s.store.Delete(undo, bucket, rec.Name) })
	doc, err := Marshal(rec.def())
	if err != nil {
		return err
	}
	if _, err := s.hv.DefineNetwork(ctx, doc); err != nil {
		return fmt.Errorf("create network %s: %w", rec.Name, err)
	}
	r.Add(func() {
		if err := s.hv.UndefineNetwork(undo, rec.Libvirt); err != nil && !errors.Is(err, hypervisor.ErrNotFound) {
			s.log.Error("revert network create: undefine", "network", rec.Libvirt, "err", err)
		}
	})
	if err := s.hv.StartNetwork(ctx, rec.Libvirt); err != nil {
		return fmt.Errorf("start network %s: %w", rec.Name, err)
	}
	r.Add(func() { _ = s.hv.StopNetwork(undo, rec.Libvirt) })
	if err := s.hv.SetNetworkAutostart(ctx, rec.Libvirt, true); err != nil {
		return fmt.Errorf("set autostart of network %s: %w", rec.Name, err)
	}
	rec.Status = statusReady
	if err := s.putRecord(ctx, rec); err != nil {
		return err
	}
	r.Success()
	return nil
}

// claim marks a network name busy for a create or delete.
func (s *Service) claim(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.deleting[name] {
		return api.Conflict("network %s is being deleted", name)
	}
	if s.pins[name] > 0 {
		return api.Conflict("network %s is being attached to a VM right now; try again", name)
	}
	s.deleting[name] = true
	return nil
}

func (s *Service) release(name string) {
	s.mu.Lock()
	delete(s.deleting, name)
	s.mu.Unlock()
}

// Ref is what a VM needs to know of a network it plugs into.
type Ref struct {
	Name    string
	Libvirt string
	Type    string
}

// Pin holds the named networks while a VM action relies on them: none of
// them can be deleted until release is called. Unknown networks are a 400
// naming them; field names the spec field of each, e.g. "nics[0].network".
func (s *Service) Pin(ctx context.Context, names []string, field func(i int) string) ([]Ref, func(), error) {
	s.mu.Lock()
	for i, n := range names {
		if s.deleting[n] {
			s.mu.Unlock()
			return nil, nil, api.Conflict("%s: network %s is being created or deleted right now; try again", field(i), n)
		}
	}
	for _, n := range names {
		s.pins[n]++
	}
	s.mu.Unlock()
	release := func() {
		s.mu.Lock()
		for _, n := range names {
			if s.pins[n]--; s.pins[n] <= 0 {
				delete(s.pins, n)
			}
		}
		s.mu.Unlock()
	}
	refs := make([]Ref, len(names))
	for i, n := range names {
		rec, err := s.getRecord(ctx, n)
		if err == nil && rec.Status != statusReady {
			err = api.NotFound("network %s is still being created", n)
		}
		if api.Status(err) == 404 {
			release()
			return nil, nil, api.BadRequest("%s: no network named %q (godwit network list shows them)", field(i), n)
		}
		if err != nil {
			release()
			return nil, nil, err
		}
		refs[i] = Ref{Name: rec.Name, Libvirt: rec.Libvirt, Type: rec.Spec.Type}
	}
	return refs, release, nil
}

// ByLibvirt returns the network of this daemon whose libvirt network is
// libvirtName; a 404 when it is none of this daemon's (vm adopt reads a
// domain's NICs with it).
func (s *Service) ByLibvirt(ctx context.Context, libvirtName string) (Ref, error) {
	recs, err := store.ListJSON[record](ctx, s.store, bucket)
	if err != nil {
		return Ref{}, err
	}
	for _, r := range recs {
		if r.Libvirt == libvirtName && r.Status == statusReady {
			return Ref{Name: r.Name, Libvirt: r.Libvirt, Type: r.Spec.Type}, nil
		}
	}
	return Ref{}, api.NotFound("libvirt network %s is none of godwit's", libvirtName)
}

// Delete removes a network nothing uses: no VM of this daemon has a NIC on
// it, and no running domain is plugged into it.
func (s *Service) Delete(ctx context.Context, name string) error {
	rec, err := s.getRecord(ctx, name)
	if api.Status(err) == 404 {
		if _, lerr := s.hv.LookupNetwork(ctx, name); lerr == nil {
			return api.Conflict("network %s is a libvirt network godwit did not create; godwit will not delete it", name)
		}
	}
	if err != nil {
		return err
	}
	if err := s.claim(name); err != nil {
		return err
	}
	defer s.release(name)
	vms, err := s.users(ctx, name)
	if err != nil {
		return err
	}
	if len(vms) > 0 {
		return api.Conflict("network %s is in use by vm %s; detach their NICs (godwit vm nic detach) or delete them first", name, strings.Join(vms, ", "))
	}
	owners, err := s.hv.NetworkPortOwners(ctx, rec.Libvirt)
	if err != nil && !errors.Is(err, hypervisor.ErrNotFound) {
		return err
	}
	if len(owners) > 0 {
		return api.Conflict("network %s is in use by libvirt domain %s (not godwit's); unplug them first", name, strings.Join(owners, ", "))
	}
	info, err := s.hv.LookupNetwork(ctx, rec.Libvirt)
	switch {
	case err == nil:
		if info.Active {
			if err := s.hv.StopNetwork(ctx, rec.Libvirt); err != nil && !errors.Is(err, hypervisor.ErrInvalidState) {
				return fmt.Errorf("delete network %s: %w", name, err)
			}
		}
		if err := s.hv.UndefineNetwork(ctx, rec.Libvirt); err != nil && !errors.Is(err, hypervisor.ErrNotFound) {
			return fmt.Errorf("delete network %s: %w", name, err)
		}
	case !errors.Is(err, hypervisor.ErrNotFound):
		return err
	}
	if err := s.store.Delete(ctx, bucket, name); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	s.log.Info("network deleted", "network", name, "libvirt", rec.Libvirt)
	return nil
}

// Get returns one network: godwit's by name, or a foreign libvirt network
// by its libvirt name.
func (s *Service) Get(ctx context.Context, name string) (api.Network, error) {
	rec, err := s.getRecord(ctx, name)
	if err == nil {
		info, lerr := s.hv.LookupNetwork(ctx, rec.Libvirt)
		if lerr != nil && !errors.Is(lerr, hypervisor.ErrNotFound) {
			return api.Network{}, lerr
		}
		n := s.view(ctx, rec, info, lerr == nil)
		if n.Active && DHCPEnabled(rec.Spec) {
			if leases, err := s.hv.NetworkLeases(ctx, rec.Libvirt); err == nil {
				n.Leases = apiLeases(leases)
			}
		}
		return n, nil
	}
	if api.Status(err) != 404 {
		return api.Network{}, err
	}
	info, lerr := s.hv.LookupNetwork(ctx, name)
	if errors.Is(lerr, hypervisor.ErrNotFound) {
		return api.Network{}, err
	}
	if lerr != nil {
		return api.Network{}, lerr
	}
	if recs, _ := store.ListJSON[record](ctx, s.store, bucket); recs != nil {
		for _, r := range recs {
			if r.Libvirt == name {
				return s.Get(ctx, r.Name)
			}
		}
	}
	return unmanaged(info), nil
}

func apiLeases(leases []hypervisor.Lease) []api.Lease {
	out := make([]api.Lease, 0, len(leases))
	for _, l := range leases {
		out = append(out, api.Lease{MAC: l.MAC, IP: fmt.Sprintf("%s/%d", l.IP, l.Prefix), Hostname: l.Hostname, Expires: l.Expires.UTC()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].IP < out[j].IP })
	return out
}

// List returns godwit's networks and the libvirt networks it did not make.
func (s *Service) List(ctx context.Context) ([]api.Network, error) {
	recs, err := store.ListJSON[record](ctx, s.store, bucket)
	if err != nil {
		return nil, err
	}
	infos, err := s.hv.ListNetworks(ctx)
	if err != nil {
		return nil, err
	}
	byName := map[string]hypervisor.NetworkInfo{}
	for _, n := range infos {
		byName[n.Name] = n
	}
	out := make([]api.Network, 0, len(infos)+len(recs))
	for _, r := range recs {
		info, ok := byName[r.Libvirt]
		out = append(out, s.view(ctx, r, info, ok))
		delete(byName, r.Libvirt)
	}
	for _, n := range byName {
		out = append(out, unmanaged(n))
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Managed != out[j].Managed {
			return out[i].Managed
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

func (s *Service) view(ctx context.Context, r record, info hypervisor.NetworkInfo, exists bool) api.Network {
	spec := r.Spec
	n := api.Network{
		Name: r.Name, Managed: true, Libvirt: r.Libvirt, Type: spec.Type, Bridge: r.Bridge,
		Subnet: spec.Subnet, Gateway: spec.Gateway, DHCP: spec.DHCP, Spec: &spec, CreatedAt: r.CreatedAt,
		Active: info.Active, Autostart: info.Autostart,
	}
	if spec.DHCP != nil && spec.DHCP.Enabled != nil && !*spec.DHCP.Enabled {
		n.DHCP = nil
	}
	switch {
	case r.Status == statusCreating:
		n.Error = "being created"
	case !exists:
		n.Error = "libvirt has no network " + r.Libvirt + " (undefined outside godwit?); the daemon defines it again when it next brings the host up"
	case !info.Active:
		n.Error = "not active in libvirt (godwit starts it when it next brings the host up)"
	}
	if vms, err := s.users(ctx, r.Name); err == nil {
		n.VMs = vms
	}
	return n
}

func unmanaged(info hypervisor.NetworkInfo) api.Network {
	typ, subnet, gw := describe(info.XML)
	return api.Network{
		Name: info.Name, Libvirt: info.Name, Managed: false, Type: typ, Bridge: info.Bridge,
		Subnet: subnet, Gateway: gw, Active: info.Active, Autostart: info.Autostart,
	}
}

// EnsureUp brings godwit's networks up on libvirt: it rolls back creates
// cut off by a crash, defines again and starts what libvirt lost or
// stopped, and makes the default network at the first start. It does the
// work once; after a failure it tries again at most every 30 s (and
// returns the last error meanwhile). Reset makes it run again.
func (s *Service) EnsureUp(ctx context.Context) error {
	s.mu.Lock()
	if s.upDone {
		s.mu.Unlock()
		return nil
	}
	if s.upErr != nil && s.clock().Sub(s.upTried) < retryUpEvery {
		err := s.upErr
		s.mu.Unlock()
		return err
	}
	s.upTried = s.clock()
	s.mu.Unlock()
	err := s.ensureUp(ctx)
	s.mu.Lock()
	// Said once per distinct cause (host show and host check keep saying
	// it), not every 30 s.
	if err != nil && (s.upErr == nil || s.upErr.Error() != err.Error()) {
		s.log.Warn("bringing networks up failed; trying again every 30s", "err", err)
	} else if err == nil && s.upErr != nil {
		s.log.Info("networks are up", "after", s.upErr)
	}
	s.upDone, s.upErr = err == nil, err
	s.mu.Unlock()
	return err
}

// UpError is why the last EnsureUp failed; nil when the networks are up
// or no bring-up ran yet.
func (s *Service) UpError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.upErr
}

// Reset makes the next EnsureUp do its work again (libvirt came back).
func (s *Service) Reset() {
	s.mu.Lock()
	s.upDone, s.upErr = false, nil
	s.mu.Unlock()
}

func (s *Service) ensureUp(ctx context.Context) error {
	recs, err := store.ListJSON[record](ctx, s.store, bucket)
	if err != nil {
		return err
	}
	var errs []error
	for _, rec := range recs {
		if rec.Status == statusCreating {
			s.log.Warn("rolling back a network whose creation was interrupted", "network", rec.Name)
			if err := s.rollBack(ctx, rec); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if err := s.bringUp(ctx, rec); err != nil {
			errs = append(errs, fmt.Errorf("network %s: %w", rec.Name, err))
		}
	}
	if err := s.ensureDefault(ctx); err != nil {
		errs = append(errs, fmt.Errorf("default network: %w", err))
	}
	return errors.Join(errs...)
}

func (s *Service) rollBack(ctx context.Context, rec record) error {
	if info, err := s.hv.LookupNetwork(ctx, rec.Libvirt); err == nil {
		if info.Active {
			_ = s.hv.StopNetwork(ctx, rec.Libvirt)
		}
		if err := s.hv.UndefineNetwork(ctx, rec.Libvirt); err != nil && !errors.Is(err, hypervisor.ErrNotFound) {
			return err
		}
	} else if !errors.Is(err, hypervisor.ErrNotFound) {
		return err
	}
	if err := s.store.Delete(ctx, bucket, rec.Name); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return nil
}

// bringUp makes a ready network defined, active and autostarted.
func (s *Service) bringUp(ctx context.Context, rec record) error {
	info, err := s.hv.LookupNetwork(ctx, rec.Libvirt)
	if errors.Is(err, hypervisor.ErrNotFound) {
		s.log.Warn("libvirt lost a network; defining it again", "network", rec.Name, "libvirt", rec.Libvirt)
		doc, merr := Marshal(rec.def())
		if merr != nil {
			return merr
		}
		info, err = s.hv.DefineNetwork(ctx, doc)
	}
	if err != nil {
		return err
	}
	if !info.Active {
		if err := s.hv.StartNetwork(ctx, rec.Libvirt); err != nil {
			return err
		}
		s.log.Info("network started", "network", rec.Name, "libvirt", rec.Libvirt)
	}
	if !info.Autostart {
		return s.hv.SetNetworkAutostart(ctx, rec.Libvirt, true)
	}
	return nil
}

// ensureDefault makes the default NAT network once, unless configured off.
func (s *Service) ensureDefault(ctx context.Context) error {
	if !s.cfg.Default {
		return nil
	}
	if _, err := s.store.Get(ctx, "meta", metaDefault); err == nil {
		return nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if _, err := s.getRecord(ctx, DefaultName); api.Status(err) == 404 {
		if _, err := s.Create(ctx, api.NetworkSpec{Name: DefaultName, Type: api.NetworkNAT, Subnet: s.cfg.DefaultSubnet}); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	return s.store.Put(ctx, "meta", metaDefault, []byte("created"))
}

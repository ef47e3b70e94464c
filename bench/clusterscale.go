package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/cluster"
	"github.com/godwit-project/godwit/internal/cluster/placement"
	"github.com/godwit-project/godwit/internal/store/etcd"
	"github.com/godwit-project/godwit/internal/vm"
)

func init() {
	Register(Benchmark{
		Name: "cluster-scale",
		Summary: "scale simulation in one process: 3 embedded etcd members plus 200 simulated hosts (lease, heartbeat, " +
			"registry record, reservation resync each) and 10,000 VM records; placement, vm list, etcd db size and CPU, " +
			"against the same at 20 hosts and 1,000 VMs",
		Run: runClusterScale,
	})
}

// The two sizes: hosts, with 50 VMs each (the cluster grows, its VMs
// with it).
const (
	scaleSmall      = 20
	scaleLarge      = 200
	scaleVMsPerHost = 50
)

func runClusterScale(ctx context.Context, env *Env) ([]Result, error) {
	perHost := scaleVMsPerHost
	if v, err := strconv.Atoi(os.Getenv("GODWIT_BENCH_SCALE_VMS_PER_HOST")); err == nil && v > 0 {
		perHost = v
	}
	var res [2]scaleResult
	for i, hosts := range []int{scaleSmall, scaleLarge} {
		dir, err := scaleDir(env, hosts)
		if err != nil {
			return nil, err
		}
		env.Logf("%d hosts, %d VMs", hosts, hosts*perHost)
		stop, err := scaleProfile(env, hosts)
		if err != nil {
			return nil, err
		}
		r, err := simulateScale(ctx, scaleOptions{Voters: 3, Hosts: hosts, VMsPerHost: perHost,
			Samples: max(20, 4*env.Runs), Dir: dir, Logf: env.Logf})
		stop()
		if err != nil {
			return nil, fmt.Errorf("%d hosts: %w", hosts, err)
		}
		res[i] = r
		os.RemoveAll(dir)
	}
	small, large := res[0], res[1]
	base := fmt.Sprintf("%d hosts, %d VMs", small.Hosts, small.VMs)
	ms := func(d time.Duration) float64 { return Millis(d) }
	line := func(metric string, f func(scaleResult) float64) Result {
		return Result{Metric: metric, Godwit: f(large), Baseline: f(small), BaselineName: base}
	}
	return []Result{
		line("place_p50_ms", func(r scaleResult) float64 { return ms(pct(r.Place, 50)) }),
		line("place_p99_ms", func(r scaleResult) float64 { return ms(pct(r.Place, 99)) }),
		{Metric: "place_decoded_kept_p50_ms", Godwit: ms(pct(large.Place, 50)), Baseline: ms(pct(large.PlaceCold, 50)),
			BaselineName: fmt.Sprintf("%d hosts, every record decoded again", large.Hosts)},
		line("claim_p50_ms", func(r scaleResult) float64 { return ms(pct(r.Claim, 50)) }),
		line("claim_p99_ms", func(r scaleResult) float64 { return ms(pct(r.Claim, 99)) }),
		line("vmlist_view_p50_ms", func(r scaleResult) float64 { return ms(pct(r.ListView, 50)) }),
		line("vmlist_view_p99_ms", func(r scaleResult) float64 { return ms(pct(r.ListView, 99)) }),
		line("vmlist_store_p50_ms", func(r scaleResult) float64 { return ms(pct(r.ListStore, 50)) }),
		line("vmlist_store_p99_ms", func(r scaleResult) float64 { return ms(pct(r.ListStore, 99)) }),
		line("db_size_MiB", func(r scaleResult) float64 { return float64(r.DBSize) / (1 << 20) }),
		line("db_in_use_MiB", func(r scaleResult) float64 { return float64(r.DBInUse) / (1 << 20) }),
		line("join_s", func(r scaleResult) float64 { return r.Join.Seconds() }),
		line("fill_s", func(r scaleResult) float64 { return r.Fill.Seconds() }),
		line("join_retries", func(r scaleResult) float64 { return float64(r.JoinRetries) }),
		line("fill_retries", func(r scaleResult) float64 { return float64(r.FillRetries) }),
		line("leases_lost", func(r scaleResult) float64 { return float64(r.LeasesLost) }),
		line("fill_cpu_s", func(r scaleResult) float64 { return r.FillCPU.Seconds() }),
		line("idle_cpu_s_per_s", func(r scaleResult) float64 { return r.IdleCPU }),
		line("total_cpu_s", func(r scaleResult) float64 { return r.TotalCPU.Seconds() }),
	}, nil
}

// scaleProfile writes a CPU profile of the simulation of the larger
// cluster to $GODWIT_BENCH_SCALE_CPUPROFILE, when set (go tool pprof
// reads it: where the members' and hosts' CPU goes); stop ends it.
func scaleProfile(env *Env, hosts int) (stop func(), err error) {
	path := os.Getenv("GODWIT_BENCH_SCALE_CPUPROFILE")
	if path == "" || hosts != scaleLarge {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	env.Logf("CPU profile of the %d hosts: %s", hosts, path)
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// scaleDir is where the members' data goes: in memory (/dev/shm) when
// it can, because this shared machine's disk is what other benchmarks
// measure: with the data on it, an fsync took seconds while another
// wrote gigabytes, and the store's calls ran out of their 5 s.
func scaleDir(env *Env, hosts int) (string, error) {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		dir, err := os.MkdirTemp("/dev/shm", fmt.Sprintf("godwit-scale-%d-", hosts))
		if err == nil {
			env.Defer("remove "+dir, func(context.Context) error { return os.RemoveAll(dir) })
			env.Logf("store data in memory: %s", dir)
			return dir, nil
		}
	}
	return env.SubDir(fmt.Sprintf("scale-%d", hosts))
}

// scaleOptions size one simulation.
type scaleOptions struct {
	// Voters are hosts that run a store member (and take no VMs);
	// Hosts the simulated hosts, store clients each with VMsPerHost VMs.
	Voters, Hosts, VMsPerHost int
	// Samples is how many placements and listings are timed.
	Samples int
	Dir     string
	Logf    func(format string, args ...any)
	// Idle is how long the CPU of the idle cluster is measured (0: 10s).
	Idle time.Duration
}

// scaleResult is what one simulation measured.
type scaleResult struct {
	Hosts, VMs int
	// Place is placement's decision (what vm create without --host
	// decides with: every host's registry record, reservation record,
	// VM records and inventory read from the store, then the filters
	// and score); Claim the lock, claim and unlock on the host picked.
	Place, Claim []time.Duration
	// PlaceCold is Place with the decoded VM records forgotten first
	// (every record decoded again).
	PlaceCold []time.Duration
	// ListView lists every VM from a voter's watched view, ListStore
	// from the store, each namespace read.
	ListView, ListStore []time.Duration
	// Join is how long the simulated hosts took to join, Fill to claim
	// every VM (FillCPU the process's CPU meanwhile).
	Join, Fill, FillCPU time.Duration
	// JoinRetries and FillRetries count joins and claims that failed
	// (the store did not answer in time) and were tried again.
	JoinRetries, FillRetries int
	// LeasesLost counts the simulated hosts whose lease ran out after
	// they joined (a real host would have fenced its HA VMs).
	LeasesLost int
	// IdleCPU is the process's CPU seconds per second with nothing
	// happening but every host's lease, heartbeat and resync.
	IdleCPU float64
	// DBSize and DBInUse are the largest member's database file and
	// what of it is in use, at the end.
	DBSize, DBInUse int64
	TotalCPU        time.Duration
	// Reserved is how many VMs the hosts' reservation records hold, and
	// ReservedCPUs their vCPUs (the records read by placement's reader).
	Reserved, ReservedCPUs int
}

// The simulated hosts' capacity and the VMs' size.
const (
	scaleHostCPUs   = 64
	scaleHostMemory = 256 * api.GiB
	scaleVMCPUs     = 1
	scaleVMMemory   = 512 * api.MiB
)

// scaleReadVM reads a VM record for placement and HA as the daemon's
// clusterConfig does.
func scaleReadVM(raw []byte) (cluster.VMInfo, error) {
	spec, run, err := vm.RecordInfo(raw)
	return cluster.VMInfo{Need: placement.NeedOf(spec), HA: vm.HARestart(spec), Run: run}, err
}

// scaleRecord is a VM record as the VM service writes it (the fields
// vm.RecordInfo and vm.RecordView read).
type scaleRecord struct {
	Name      string     `json:"name"`
	UUID      string     `json:"uuid"`
	Spec      api.VMSpec `json:"spec"`
	Status    string     `json:"status"`
	Run       bool       `json:"run,omitempty"`
	CreatedAt time.Time  `json:"createdAt"`
}

func scaleSpec(name string) api.VMSpec {
	return api.VMSpec{Name: name, CPUs: scaleVMCPUs, Memory: scaleVMMemory,
		Disks: []api.Disk{{Name: "root", Size: 10 * api.GiB}}}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// simulateScale runs a cluster of o.Voters hosts with a store member and
// o.Hosts simulated hosts in this process, through the cluster package's
// own Init, Join, registry, lease, lock and claim code (the simulated
// hosts are cluster.Config.Simulated nodes: no VM runs, no view of the
// others), fills it with VM records and times what it was asked to.
func simulateScale(ctx context.Context, o scaleOptions) (res scaleResult, err error) {
	cpu0 := cpuTime()
	res.Hosts = o.Hosts
	var voters, hosts []*cluster.Node
	defer func() {
		closeAll(hosts)
		closeAll(voters)
	}()
	cfg := func(name string, sim bool) (cluster.Config, error) {
		c := cluster.Config{Name: name, Dir: filepath.Join(o.Dir, name, "cluster"), DataDir: filepath.Join(o.Dir, name, "etcd"),
			IP: "127.0.0.1", URL: "https://127.0.0.1:1", CA: "none (simulated)", ReadVM: scaleReadVM, Simulated: sim,
			Log: slog.New(slog.DiscardHandler)}
		if sim {
			c.Capacity = func(context.Context) (int, int64, error) { return scaleHostCPUs, int64(scaleHostMemory), nil }
			return c, nil
		}
		var err error
		if c.PeerPort, err = freePort(); err == nil {
			c.ClientPort, err = freePort()
		}
		return c, err
	}

	t0 := time.Now()
	for i := range o.Voters {
		c, err := cfg(fmt.Sprintf("m%d", i+1), false)
		if err != nil {
			return res, err
		}
		var n *cluster.Node
		if i == 0 {
			n, err = cluster.Init(ctx, c, 0)
		} else {
			// A join that fails is tried again once (it has happened
			// under load: etcd refused the new member's start with
			// "member count is unequal").
			for try := 0; try < 2; try++ {
				var adm api.ClusterAdmitted
				if adm, err = voters[0].Admit(ctx, c.Name); err == nil {
					n, err = cluster.Join(ctx, c, adm)
				}
				if err == nil || ctx.Err() != nil {
					break
				}
				o.Logf("join of store member %s failed, trying again: %v", c.Name, err)
				time.Sleep(time.Second)
			}
		}
		if err != nil {
			return res, fmt.Errorf("store member %s: %w", c.Name, err)
		}
		voters = append(voters, n)
	}
	o.Logf("%d store members up in %s", o.Voters, time.Since(t0).Round(time.Millisecond))
	v0 := voters[0]

	// The simulated hosts join as the daemon's join does (a client of
	// the store once the voters are full), a few at once.
	t0 = time.Now()
	hosts = make([]*cluster.Node, o.Hosts)
	var retries, joined atomic.Int64
	if err := parallel(ctx, o.Hosts, 4, func(i int) error {
		c, err := cfg(fmt.Sprintf("s%03d", i+1), true)
		if err != nil {
			return err
		}
		// A join that fails (the store slow to answer under the load of
		// the hosts already in) leaves nothing behind: tried again, and
		// counted.
		var n *cluster.Node
		for try := 0; ; try++ {
			adm, err := v0.Admit(ctx, c.Name)
			if err == nil {
				n, err = cluster.Join(ctx, c, adm)
			}
			if err == nil {
				break
			}
			if try == 2 || ctx.Err() != nil {
				return fmt.Errorf("host %s: %w", c.Name, err)
			}
			retries.Add(1)
			o.Logf("join of %s failed, trying again: %v", c.Name, err)
		}
		hosts[i] = n
		if j := joined.Add(1); j%50 == 0 {
			o.Logf("%d hosts joined after %s", j, time.Since(t0).Round(time.Millisecond))
		}
		if n.Role() != api.RoleClient {
			return fmt.Errorf("host %s joined as a %s, not a client of the store", c.Name, n.Role())
		}
		return nil
	}); err != nil {
		return res, err
	}
	if err := until(ctx, time.Minute, func() (bool, error) {
		items, _, err := v0.Shared().ListItems(ctx, "heartbeats")
		return len(items) == o.Voters+o.Hosts, err
	}); err != nil {
		return res, fmt.Errorf("every host's heartbeat: %w", err)
	}
	res.Join, res.JoinRetries = time.Since(t0), int(retries.Load())
	o.Logf("%d simulated hosts joined, each with its lease and heartbeat, in %s (%d joins tried again)", o.Hosts, res.Join.Round(time.Millisecond), res.JoinRetries)

	leases := map[string]int64{}
	for _, h := range hosts {
		if l := h.Lease(); l != nil {
			leases[h.Name()] = int64(l.ID())
		}
	}
	// Fill: each VM claimed on its host as a create does (the VM's
	// cluster lock, then its first record with the host's reservation
	// in one guarded transaction, then unlock).
	total := o.Hosts * o.VMsPerHost
	t0, c0 := time.Now(), cpuTime()
	retries.Store(0)
	var claimed atomic.Int64
	if err := parallel(ctx, total, 4, func(i int) error {
		if c := claimed.Add(1); c%2000 == 0 {
			o.Logf("%d VMs claimed after %s", c, time.Since(t0).Round(time.Millisecond))
		}
		// A claim that fails (the store did not answer in time, or the
		// host lost its lease and has not got a new one yet) is tried
		// again, as a client of a daemon's create would, after 0.5 s
		// doubling up to 8 s, for up to 2 min, and counted.
		name := fmt.Sprintf("vm%05d", i)
		pause, giveUp := 500*time.Millisecond, time.Now().Add(2*time.Minute)
		for try := 0; ; try++ {
			_, err := claimVM(ctx, hosts[i%o.Hosts], name)
			if try > 0 && err != nil && strings.Contains(err.Error(), "already exists") {
				return nil // the try that timed out went through after all
			}
			if try > 0 && err != nil && strings.Contains(err.Error(), "is busy") {
				// A lock left by a try whose answer was lost and could
				// not be read back: it lasts as long as the host's
				// lease. Another name.
				name = fmt.Sprintf("vm%05d-%d", i, try)
			}
			if err == nil || time.Now().After(giveUp) || ctx.Err() != nil {
				return err
			}
			retries.Add(1)
			time.Sleep(pause)
			pause = min(2*pause, 8*time.Second)
		}
	}); err != nil {
		return res, fmt.Errorf("fill: %w", err)
	}
	res.Fill, res.FillCPU, res.FillRetries = time.Since(t0), cpuTime()-c0, int(retries.Load())
	if err := until(ctx, time.Minute, func() (bool, error) { return viewCount(v0) == total, nil }); err != nil {
		return res, fmt.Errorf("the watched view of %s to hold the %d VMs (it has %d): %w", v0.Name(), total, viewCount(v0), err)
	}
	o.Logf("%d VMs claimed in %s (%.0f/s), %.1f CPU s, %d claims tried again", total, res.Fill.Round(time.Millisecond),
		float64(total)/res.Fill.Seconds(), res.FillCPU.Seconds(), res.FillRetries)

	idle := o.Idle
	if idle == 0 {
		idle = 10 * time.Second
	}
	c0 = cpuTime()
	select {
	case <-ctx.Done():
		return res, ctx.Err()
	case <-time.After(idle):
	}
	res.IdleCPU = (cpuTime() - c0).Seconds() / idle.Seconds()
	o.Logf("idle (leases, heartbeats, resyncs only): %.2f CPU s per s", res.IdleCPU)

	// Placement as vm create without --host decides it, on a voter, then
	// the claim on the host picked.
	// Every other one starts with the decoded VM records forgotten: every
	// record decoded again, as placement did before it kept them.
	for i := range o.Samples {
		name := fmt.Sprintf("placed%03d", i)
		cold := i%2 == 1
		if cold {
			v0.ForgetDecodedVMs()
		}
		t := time.Now()
		ph, err := v0.PlacementHosts(ctx)
		if err != nil {
			return res, err
		}
		dec := placement.Choose(ph, placement.NeedOf(scaleSpec(name)), placement.Spread)
		if cold {
			res.PlaceCold = append(res.PlaceCold, time.Since(t))
		} else {
			res.Place = append(res.Place, time.Since(t))
		}
		if dec.Picked == "" {
			return res, fmt.Errorf("placement picked no host for %s: %s", name, dec.Explain())
		}
		h := nodeNamed(hosts, dec.Picked)
		if h == nil {
			return res, fmt.Errorf("placement picked %s, no simulated host", dec.Picked)
		}
		d, err := claimVM(ctx, h, name)
		if err != nil {
			return res, err
		}
		res.Claim = append(res.Claim, d)
	}
	total += o.Samples
	res.VMs = total
	if err := until(ctx, time.Minute, func() (bool, error) { return viewCount(v0) == total, nil }); err != nil {
		return res, fmt.Errorf("the watched view to hold %d VMs: %w", total, err)
	}
	o.Logf("placement on %s: p50 %s, p99 %s (every record decoded again: p50 %s, p99 %s); claim on the host picked: p50 %s, p99 %s", v0.Name(),
		pct(res.Place, 50), pct(res.Place, 99), pct(res.PlaceCold, 50), pct(res.PlaceCold, 99), pct(res.Claim, 50), pct(res.Claim, 99))

	// vm list of every host's VMs: from the view (what a host lists for
	// a host that does not answer, and what routes requests), and read
	// from the store.
	for range o.Samples {
		t := time.Now()
		n, err := listView(v0)
		if err != nil {
			return res, err
		}
		res.ListView = append(res.ListView, time.Since(t))
		if n != total {
			return res, fmt.Errorf("vm list from the view: %d VMs, want %d", n, total)
		}
		t = time.Now()
		if n, err = listStore(ctx, v0); err != nil {
			return res, err
		}
		res.ListStore = append(res.ListStore, time.Since(t))
		if n != total {
			return res, fmt.Errorf("vm list from the store: %d VMs, want %d", n, total)
		}
	}
	o.Logf("vm list of %d VMs: from the view p50 %s, from the store p50 %s", total, pct(res.ListView, 50), pct(res.ListStore, 50))

	for _, h := range hosts {
		r, _, err := v0.Reservation(ctx, h.Name())
		if err != nil {
			return res, err
		}
		for _, e := range r.VMs {
			res.Reserved++
			res.ReservedCPUs += e.CPUs
		}
	}
	cli := v0.Store().Client()
	for _, eps := range cli.Endpoints() {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := cli.Status(sctx, eps)
		cancel()
		if err != nil {
			return res, fmt.Errorf("status of member %s: %w", eps, err)
		}
		res.DBSize, res.DBInUse = max(res.DBSize, st.DbSize), max(res.DBInUse, st.DbSizeInUse)
	}
	for _, h := range hosts {
		if l := h.Lease(); l == nil || int64(l.ID()) != leases[h.Name()] {
			res.LeasesLost++
		}
	}
	o.Logf("%d of %d simulated hosts lost their lease after joining (not renewed within its TTL) and got a new one", res.LeasesLost, o.Hosts)
	res.TotalCPU = cpuTime() - cpu0
	o.Logf("etcd db %.1f MiB (%.1f MiB in use); %.1f CPU s in all", float64(res.DBSize)/(1<<20), float64(res.DBInUse)/(1<<20), res.TotalCPU.Seconds())
	return res, nil
}

// claimVM claims a new VM on host n as a create does and returns how
// long the lock, claim and unlock took.
func claimVM(ctx context.Context, n *cluster.Node, name string) (time.Duration, error) {
	spec := scaleSpec(name)
	rec, err := json.Marshal(scaleRecord{Name: name, UUID: NewUUID(), Spec: spec, Status: "running", Run: true, CreatedAt: time.Now().UTC()})
	if err != nil {
		return 0, err
	}
	t := time.Now()
	held, err := n.Lock(ctx, name, "create")
	if err != nil {
		return 0, fmt.Errorf("lock %s on %s: %w", name, n.Name(), err)
	}
	if err := n.Claim(ctx, held, name, rec, placement.NeedOf(spec)); err != nil {
		_ = held.Unlock(ctx)
		return 0, fmt.Errorf("claim %s on %s: %w", name, n.Name(), err)
	}
	if err := held.Unlock(ctx); err != nil {
		return 0, err
	}
	return time.Since(t), nil
}

// viewCount is how many VM records n's watched view holds.
func viewCount(n *cluster.Node) int {
	c := 0
	for _, h := range n.Hosts() {
		c += len(n.VMs(h.Name))
	}
	return c
}

// listView lists every VM from n's view as the daemon does for a host
// that does not answer: each record read into the API's VM, sorted.
func listView(n *cluster.Node) (int, error) {
	var out []api.VM
	for _, h := range n.Hosts() {
		for _, raw := range n.VMs(h.Name) {
			v, err := vm.RecordView(raw, h.Name)
			if err != nil {
				return 0, err
			}
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return len(out), nil
}

// listStore lists every VM by reading each host's namespace from the
// store.
func listStore(ctx context.Context, n *cluster.Node) (int, error) {
	var out []api.VM
	for _, h := range n.Hosts() {
		st := etcd.New(n.Store().Client(), etcd.Options{Prefix: cluster.HostPrefix(h.Name)})
		items, _, err := st.ListItems(ctx, "vms")
		st.Close()
		if err != nil {
			return 0, err
		}
		for _, it := range items {
			v, err := vm.RecordView(it.Value, h.Name)
			if err != nil {
				return 0, err
			}
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return len(out), nil
}

func nodeNamed(ns []*cluster.Node, name string) *cluster.Node {
	for _, n := range ns {
		if n != nil && n.Name() == name {
			return n
		}
	}
	return nil
}

func closeAll(ns []*cluster.Node) {
	var wg sync.WaitGroup
	for _, n := range ns {
		if n != nil {
			wg.Add(1)
			go func() { defer wg.Done(); n.Close() }()
		}
	}
	wg.Wait()
}

// parallel runs f(0..n-1) on width goroutines and returns the first
// error (the others stop taking work).
func parallel(ctx context.Context, n, width int, f func(i int) error) error {
	var mu sync.Mutex
	var first error
	next := 0
	var wg sync.WaitGroup
	for range width {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				stop := first != nil || i >= n || ctx.Err() != nil
				mu.Unlock()
				if stop {
					return
				}
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// until polls ok every 100 ms until it says true, errs, or timeout passes.
func until(ctx context.Context, timeout time.Duration, ok func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		done, err := ok()
		if done {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = errors.New("timed out")
			}
			return fmt.Errorf("after %s: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// pct is the p-th percentile of ds (nearest rank; 0 for none).
func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (p*len(s)+99)/100 - 1
	return s[max(0, min(i, len(s)-1))]
}

package daemon

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/hypervisor"
	"github.com/godwit-project/godwit/internal/metrics"
)

// streamRoutes stay open for long: left out of the latency histogram.
var streamRoutes = map[string]bool{"vm-console": true, "vm-console-ws": true, "vm-vnc-ws": true, "events": true, "wait-operation": true}

// monitorRoutes: metrics, readiness, health checks, stats and events.
func (d *Daemon) monitorRoutes() []route {
	return []route{
		{Read, op("metrics", http.MethodGet, "/metrics", "Prometheus metrics: VMs, host, checks, operations, API latency", "monitoring"), d.registerMetrics},
		{Public, op("readyz", http.MethodGet, "/readyz", "Readiness: libvirt answers and the host is brought up (503 until then)", "health"), handle(d.readyz)},
		{Read, op("host-checks", http.MethodGet, "/v1/host/checks", "Run the health checks (libvirtd, unexpected stops, pool space, failed backups and migrations)", "host"), handle(d.hostChecks)},
		{Read, op("events", http.MethodGet, "/v1/events", "Server-sent events: VM lifecycle and operations; resumable with Last-Event-ID", "monitoring"), d.registerEvents},
		{Read, op("history", http.MethodGet, "/v1/history", "Every running VM's usage history (CPU, memory, disk and network rates, a point per step)", "monitoring"), handle(d.allHistory)},
		{Read, op("vm-history", http.MethodGet, "/v1/vms/{name}/history", "A VM's usage history (CPU, memory, disk and network rates, a point per step, oldest first)", "monitoring"), handle(d.vmHistory)},
		{Read, op("stats", http.MethodGet, "/v1/stats", "Every VM's counters now (CPU time, memory, disk and network); two samples give rates", "monitoring"), handle(d.stats)},
	}
}

// gather takes one snapshot for a scrape or a check run: one bulk stats
// call for every domain, plus the host's free memory and the pool, a
// fixed number of libvirt calls whatever the number of VMs.
func (d *Daemon) gather(ctx context.Context) metrics.Scrape {
	var s metrics.Scrape
	s.Domains, s.LibvirtErr = d.hv.DomainStats(ctx)
	s.Managed, _ = d.vms.Names(ctx)
	if s.Managed == nil {
		s.Managed = map[string]bool{}
	}
	if s.LibvirtErr == nil {
		if h, err := d.hv.HostInfo(ctx); err == nil {
			s.Host = &h
		}
		if p, err := d.hv.PoolInfo(ctx, d.cfg.Pool.Name); err == nil {
			s.Pools = []hypervisor.PoolInfo{p}
		}
	}
	s.Missing = d.missingPrograms()
	if s.LibvirtErr == nil {
		s.Unreachable, _ = d.unreachable(ctx)
	}
	s.Cluster = d.clusterHealth(ctx)
	s.Report = d.mon.health.Run(s.Input)
	s.Unexpected = d.mon.health.Unexpected(s.Input)
	return s
}

// registerMetrics serves Prometheus' text format through huma, so the
// route keeps its access check.
func (d *Daemon) registerMetrics(a huma.API, o huma.Operation) {
	o.Responses = map[string]*huma.Response{"200": {
		Description: "Metrics in the Prometheus text format",
		Content:     map[string]*huma.MediaType{"text/plain": {}},
	}}
	h := d.mon.metrics.Handler()
	huma.Register(a, o, func(ctx context.Context, _ *struct{}) (*huma.StreamResponse, error) {
		return &huma.StreamResponse{Body: func(hc huma.Context) {
			r, w := humago.Unwrap(hc)
			h.ServeHTTP(w, r)
		}}, nil
	})
}

type readyOutput struct {
	Body struct {
		Status string `json:"status" example:"ready"`
	}
}

func (d *Daemon) readyz(ctx context.Context, _ *struct{}) (*readyOutput, error) {
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := d.hv.Ping(pctx); err != nil {
		return nil, api.Unavailable("not ready: %v", err)
	}
	if !d.host.ready() {
		return nil, api.Unavailable("not ready: the host is still being brought up (storage pool, accelerator, reconcile)")
	}
	out := &readyOutput{}
	out.Body.Status = "ready"
	return out, nil
}

func (d *Daemon) hostChecks(ctx context.Context, _ *struct{}) (*struct{ Body api.HealthReport }, error) {
	s := d.gather(ctx)
	return &struct{ Body api.HealthReport }{s.Report}, nil
}

type statsInput struct {
	VM string `query:"vm" doc:"Only this VM."`
}

func (d *Daemon) stats(ctx context.Context, in *statsInput) (*struct{ Body api.StatsSample }, error) {
	doms, err := d.hv.DomainStats(ctx)
	if err != nil {
		return nil, err
	}
	managed, _ := d.vms.Names(ctx)
	out := api.StatsSample{Time: time.Now().UTC(), VMs: []api.VMStats{}}
	for _, s := range doms {
		if in.VM != "" && s.Name != in.VM {
			continue
		}
		v := api.VMStats{
			Name: s.Name, State: metrics.StateOf(s.State), Managed: managed[s.Name], CPUTimeNs: s.CPUTime, VCPUs: s.VCPUs,
			MemoryCurrent: api.Size(s.MemoryCurrent), MemoryMax: api.Size(s.MemoryMax), MemoryRSS: api.Size(s.MemoryRSS),
		}
		for _, k := range s.Disks {
			v.Disks = append(v.Disks, api.DiskStats{Name: k.Name, ReadBytes: k.ReadBytes, WriteBytes: k.WriteBytes, ReadOps: k.ReadOps, WriteOps: k.WriteOps})
		}
		for _, n := range s.NICs {
			v.NICs = append(v.NICs, api.NICStats{Name: n.Name, RxBytes: n.RxBytes, TxBytes: n.TxBytes, RxPackets: n.RxPackets, TxPackets: n.TxPackets})
		}
		out.VMs = append(out.VMs, v)
	}
	if in.VM != "" && len(out.VMs) == 0 {
		return nil, api.NotFound("vm %s not found", in.VM)
	}
	return &struct{ Body api.StatsSample }{out}, nil
}

type historyInput struct {
	Last int `query:"last" minimum:"0" doc:"Only the newest N points (0: all kept)."`
}

func (d *Daemon) allHistory(ctx context.Context, in *historyInput) (*struct{ Body api.UsageHistoryList }, error) {
	h := d.mon.history
	return &struct{ Body api.UsageHistoryList }{api.UsageHistoryList{StepSeconds: h.Step().Seconds(), VMs: h.All(in.Last)}}, nil
}

type vmHistoryInput struct {
	Name string `path:"name" doc:"VM name"`
	Last int    `query:"last" minimum:"0" doc:"Only the newest N points (0: all kept)."`
}

// vmHistory: a VM that exists but is not running has an empty history.
func (d *Daemon) vmHistory(ctx context.Context, in *vmHistoryInput) (*struct{ Body api.UsageHistory }, error) {
	u, ok := d.mon.history.Get(in.Name, in.Last)
	if !ok {
		if _, err := d.hv.Lookup(ctx, in.Name); err != nil {
			return nil, toStatus(err)
		}
	}
	return &struct{ Body api.UsageHistory }{u}, nil
}

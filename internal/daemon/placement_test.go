package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
)

// smallVM is a spec of one vCPU that boots vm-a's kernel.
func smallVM(t *testing.T, h *host, name string) api.VMSpec {
	t.Helper()
	v, err := h.c.GetVM(context.Background(), "vm-"+h.name)
	if err != nil {
		t.Fatal(err)
	}
	return api.VMSpec{Name: name, CPUs: 1, Memory: 64 * api.MiB, Boot: &api.Boot{Kernel: v.Spec.Boot.Kernel},
		Disks: []api.Disk{{Name: "root", Size: api.GiB}}}
}

// usage is what each host's namespace holds: VMs and their vCPUs.
func usage(t *testing.T, hosts []*host) map[string][2]int {
	t.Helper()
	out := map[string][2]int{}
	for _, h := range hosts {
		kvs, err := h.d.clusterNode().Store().List(context.Background(), "vms")
		if err != nil {
			t.Fatal(err)
		}
		cpus := 0
		for _, kv := range kvs {
			var r struct{ Spec api.VMSpec }
			_ = json.Unmarshal(kv.Value, &r)
			cpus += r.Spec.CPUs
		}
		out[h.name] = [2]int{len(kvs), cpus}
	}
	return out
}

// Twenty creates at once, sent to the three hosts in turn, without a
// host named: placement spreads them, each host takes what its 4 CPUs
// (overcommit 1) have room for, and no host ever holds more, because
// each claim is written with the host's reservation record in one
// guarded transaction; the creates that find no room get a 409 that
// says why for every host.
func TestPlacementConcurrentCreatesNeverOversubscribe(t *testing.T) {
	hosts := clusterWith(t, func(c *Config) { c.Cluster.CPUOvercommit = 1 }, "a", "b", "c")
	ctx := context.Background()
	const n = 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	var ops []api.Operation
	var refusals []error
	t0 := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := hosts[i%3]
			op, err := h.c.CreateVM(ctx, smallVM(t, h, fmt.Sprintf("p%02d", i)), client.CreateOptions{Start: true})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				refusals = append(refusals, err)
				return
			}
			ops = append(ops, op)
		}()
	}
	wg.Wait()
	t.Logf("%d creates answered in %s: %d accepted, %d refused", n, time.Since(t0).Round(time.Millisecond), len(ops), len(refusals))
	for _, op := range ops {
		if final := hosts[0].wait(op, nil); final.State != api.OpSucceeded {
			t.Errorf("create %s: %s %s", op.Target, final.State, final.Error)
		}
	}
	// Each host had one VM of its own: three more fit on each.
	if len(ops) != 9 || len(refusals) != 11 {
		t.Fatalf("%d creates accepted and %d refused, want 9 and 11: %v", len(ops), len(refusals), refusals)
	}
	for _, err := range refusals {
		var se *api.StatusError
		if api.Status(err) != 409 || !strings.Contains(err.Error(), "no host of the cluster can take") || !strings.Contains(err.Error(), "a: 0 vCPUs free, needs 1") ||
			!asStatus(err, &se) || se.Reason != api.ReasonNoRoom {
			t.Errorf("refusal: %v, want a 409 no-room naming every host's lack", err)
		}
	}
	for name, u := range usage(t, hosts) {
		if u[1] > 4 {
			t.Errorf("host %s holds %d VMs of %d vCPUs in all, more than its 4 CPUs", name, u[0], u[1])
		}
		res, _, err := hosts[0].d.clusterNode().Reservation(ctx, name)
		if err != nil || len(res.VMs) != u[0] {
			t.Errorf("host %s's reservation record: %+v %v, want its %d VMs", name, res.VMs, err, u[0])
		}
	}
	t.Logf("per host (VMs, vCPUs): %v", usage(t, hosts))
}

func asStatus(err error, se **api.StatusError) bool { return errors.As(err, se) }

// vm create --dry-run explains the choice; --host pins the VM to a host
// (the create is forwarded there), and a pinned host without room, or a
// drained one, refuses with the reason; labels and anti-affinity filter.
func TestPlacementExplainsAndPins(t *testing.T) {
	hosts := clusterWith(t, func(c *Config) {
		c.Cluster.CPUOvercommit = 1
		if strings.HasSuffix(c.Name, "c") {
			c.Cluster.Labels = map[string]string{"rack": "a"}
		}
	}, "a", "b", "c")
	a, b, c := hosts[0], hosts[1], hosts[2]
	ctx := context.Background()
	spec := smallVM(t, a, "web1")
	spec.CPUs = 3
	spec.Placement = &api.Placement{AntiAffinity: "web"}
	dec, err := a.c.Place(ctx, spec, "")
	if err != nil || dec.Picked != "a" || !strings.HasPrefix(dec.Explanation, "a: picked (7.9GiB and 3 vCPUs free); b: fits, ranked lower") {
		t.Fatalf("dry run: %+v %v", dec, err)
	}
	t.Logf("dry run: %s (%d ms)", dec.Explanation, dec.TookMs)
	// Pinned to b, asked on a: b makes it.
	op := a.wait(a.c.CreateVM(ctx, spec, client.CreateOptions{Host: "b"}))
	if op.State != api.OpSucceeded || !strings.HasSuffix(op.ID, "@b") {
		t.Fatalf("create pinned to b: %s %s (%s)", op.State, op.Error, op.ID)
	}
	// b is full now (1 + 3 vCPUs) and runs web1 of group web.
	spec2 := spec
	spec2.Name, spec2.CPUs = "web2", 1
	if _, err := a.c.CreateVM(ctx, spec2, client.CreateOptions{Host: "b"}); api.Status(err) != 409 || err.Error() != "host b cannot take vm web2: runs web1 of placement.antiAffinity group web" {
		t.Fatalf("create of web2 pinned to b: %v", err)
	}
	spec2.Placement = nil
	if _, err := a.c.CreateVM(ctx, spec2, client.CreateOptions{Host: "b"}); api.Status(err) != 409 || err.Error() != "host b cannot take vm web2: 0 vCPUs free, needs 1" {
		t.Fatalf("create pinned to the full b: %v", err)
	}
	spec2.Placement = &api.Placement{AntiAffinity: "web", HostSelector: map[string]string{"rack": "a"}}
	dec, err = b.c.Place(ctx, spec2, "")
	want := "c: picked (7.9GiB and 3 vCPUs free); a: no label rack (placement.hostSelector wants rack=a); b: no label rack (placement.hostSelector wants rack=a)"
	if err != nil || dec.Explanation != want {
		t.Fatalf("dry run with a selector and a group:\n%s\nwant\n%s (%v)", dec.Explanation, want, err)
	}
	op = b.wait(b.c.CreateVM(ctx, spec2, client.CreateOptions{}))
	if v, err := c.c.GetVM(ctx, "web2"); op.State != api.OpSucceeded || err != nil || v.Host != "c" {
		t.Fatalf("web2: %s %s, on %q %v", op.State, op.Error, v.Host, err)
	}
	// No host left for a third web VM.
	spec3 := spec2
	spec3.Name, spec3.Placement = "web3", &api.Placement{AntiAffinity: "web"}
	dec, _ = a.c.Place(ctx, spec3, "")
	if dec.Picked != "a" {
		t.Fatalf("web3: %s", dec.Explanation)
	}
	spec3.CPUs = 4
	_, err = a.c.CreateVM(ctx, spec3, client.CreateOptions{})
	if api.Status(err) != 409 || !strings.Contains(err.Error(), "a: 3 vCPUs free, needs 4") || !strings.Contains(err.Error(), "b: runs web1") {
		t.Fatalf("web3 of 4 vCPUs: %v", err)
	}
	if _, err := a.c.Place(ctx, spec3, "nosuch"); api.Status(err) != 404 {
		t.Fatalf("dry run on an unknown host: %v", err)
	}
}

// host drain, asked on c, is served by a: a turns unschedulable, its two
// VMs move to the hosts placement picks (spread: one each to b and c),
// with a summary, and new VMs go elsewhere until undrain.
func TestDrainMovesVMsWherePlacementPicks(t *testing.T) {
	hosts := clusterOf(t, "a", "b", "c")
	a, c := hosts[0], hosts[2]
	ctx := context.Background()
	a.wait(a.c.CreateVM(ctx, smallVM(t, a, "web1"), client.CreateOptions{Host: "a", Start: true}))
	op, err := c.c.DrainHost(ctx, "a", api.EvacuateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	final := c.wait(op, nil)
	var rep api.EvacuationReport
	if err := json.Unmarshal(final.Result, &rep); err != nil || final.State != api.OpSucceeded || !strings.HasSuffix(final.ID, "@a") {
		t.Fatalf("drain: %s %q %v (%s)", final.State, final.Error, err, final.ID)
	}
	if len(rep.Moved) != 2 || len(rep.Failed) != 0 {
		t.Fatalf("drain report: %+v", rep)
	}
	if rep.Moved[0].To == rep.Moved[1].To {
		t.Errorf("both VMs moved to %s; spread puts the second on the other host", rep.Moved[0].To)
	}
	for _, m := range rep.Moved {
		v, err := c.c.GetVM(ctx, m.VM)
		if err != nil || v.Host != m.To || m.To == "a" {
			t.Fatalf("%s moved to %s, now on %q (%v)", m.VM, m.To, v.Host, err)
		}
		t.Logf("%s moved %s to %s", m.VM, m.Mode, m.To)
	}
	st, err := c.c.ClusterStatus(ctx)
	if ha, _ := hostIn(st, "a"); err != nil || ha.Schedulable || ha.VMs != 0 {
		t.Fatalf("a after its drain: %+v %v", ha, err)
	}
	dec, err := a.c.Place(ctx, smallVM(t, c, "new1"), "")
	if err != nil || dec.Picked == "a" || !strings.Contains(dec.Explanation, "a: unschedulable (drained)") {
		t.Fatalf("placement with a drained: %+v %v", dec, err)
	}
	if err := c.c.UndrainHost(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a to be schedulable again", func() bool {
		dec, err := c.c.Place(ctx, smallVM(t, c, "new1"), "")
		return err == nil && dec.Picked == "a"
	})
}

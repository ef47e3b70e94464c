package placement

import (
	"testing"

	"github.com/godwit-project/godwit/api"
)

const gib = int64(api.GiB)

func host(name string, cpus int, mem int64, vms map[string]Entry) Host {
	return Host{Name: name, Alive: true, Schedulable: true, CPUs: cpus, Memory: mem, MemoryOvercommit: 1, CPUOvercommit: 1,
		Networks: []string{"default"}, Pools: []string{"godwit"}, Reserved: Reservation{VMs: vms}}
}

// Each filter says, in the explanation, why a host was left out; the
// host with the most room left is picked (spread), or the least (pack).
func TestChooseExplains(t *testing.T) {
	h1 := host("h1", 4, 4*gib, map[string]Entry{"a": {CPUs: 1, Memory: 2*gib + 819*int64(api.MiB)}})
	h2 := host("h2", 4, 4*gib, nil)
	h3 := host("h3", 4, 4*gib, nil)
	h3.Networks = nil
	spec := api.VMSpec{Name: "web1", CPUs: 2, Memory: 2 * api.GiB, NICs: []api.NIC{{Network: "lab"}}}
	h1.Networks, h2.Networks = []string{"lab"}, []string{"lab"}
	d := Choose([]Host{h1, h2, h3}, NeedOf(spec), Spread)
	want := "h2: picked (4GiB and 4 vCPUs free); h1: 1.2GiB free, needs 2GiB; h3: no network lab"
	if d.Picked != "h2" || d.Explain() != want {
		t.Fatalf("decision %q: %s\nwant %s", d.Picked, d.Explain(), want)
	}

	cases := []struct {
		name   string
		hosts  []Host
		spec   api.VMSpec
		strat  string
		picked string
		want   string
	}{
		{"spread", []Host{host("a", 8, 8*gib, map[string]Entry{"x": {CPUs: 2, Memory: 4 * gib}}), host("b", 8, 8*gib, nil)},
			api.VMSpec{Name: "v", CPUs: 1, Memory: api.GiB}, Spread, "b",
			"b: picked (8GiB and 8 vCPUs free); a: fits, ranked lower (4GiB and 6 vCPUs free)"},
		{"pack", []Host{host("a", 8, 8*gib, map[string]Entry{"x": {CPUs: 2, Memory: 4 * gib}}), host("b", 8, 8*gib, nil)},
			api.VMSpec{Name: "v", CPUs: 1, Memory: api.GiB}, Pack, "a",
			"a: picked (4GiB and 6 vCPUs free); b: fits, ranked lower (8GiB and 8 vCPUs free)"},
		{"host selector", []Host{withLabels(host("a", 8, 8*gib, nil), "rack", "b"), host("b", 8, 8*gib, nil), withLabels(host("c", 8, 8*gib, nil), "rack", "a")},
			api.VMSpec{Name: "v", CPUs: 1, Memory: api.GiB, Placement: &api.Placement{HostSelector: map[string]string{"rack": "a"}}}, Spread, "c",
			"c: picked (8GiB and 8 vCPUs free); a: label rack=b, placement.hostSelector wants a; b: no label rack (placement.hostSelector wants rack=a)"},
		{"anti-affinity", []Host{host("a", 8, 8*gib, map[string]Entry{"web1": {CPUs: 1, Memory: gib, Group: "web"}}), host("b", 8, 8*gib, map[string]Entry{"db1": {CPUs: 1, Memory: gib, Group: "db"}})},
			api.VMSpec{Name: "web2", CPUs: 1, Memory: api.GiB, Placement: &api.Placement{AntiAffinity: "web"}}, Spread, "b",
			"b: picked (7GiB and 7 vCPUs free); a: runs web1 of placement.antiAffinity group web"},
		{"cpus with overcommit", []Host{overcommit(host("a", 2, 8*gib, map[string]Entry{"x": {CPUs: 7, Memory: gib}}), 4), host("b", 2, 8*gib, map[string]Entry{"y": {CPUs: 1, Memory: gib}})},
			api.VMSpec{Name: "v", CPUs: 2, Memory: api.GiB}, Spread, "",
			"a: 1 vCPUs free, needs 2; b: 1 vCPUs free, needs 2"},
		{"down, drained, excluded", []Host{down(host("a", 8, 8*gib, nil)), drained(host("b", 8, 8*gib, nil)), host("c", 8, 8*gib, nil)},
			api.VMSpec{Name: "v", CPUs: 1, Memory: api.GiB}, Spread, "",
			"a: down (its heartbeat lease ran out); b: unschedulable (drained); c: excluded"},
		{"pools and images", []Host{host("a", 8, 8*gib, nil), withImages(host("b", 8, 8*gib, nil), "debian-12")},
			api.VMSpec{Name: "v", CPUs: 1, Memory: api.GiB, Disks: []api.Disk{{Name: "root", Image: "debian-12"}, {Name: "data", Volume: "godwit/v-data"}}}, Spread, "b",
			"b: picked (8GiB and 8 vCPUs free); a: no image debian-12"},
		{"a VM placed again counts once", []Host{host("a", 2, 2*gib, map[string]Entry{"v": {CPUs: 2, Memory: 2 * gib}})},
			api.VMSpec{Name: "v", CPUs: 2, Memory: 2 * api.GiB}, Spread, "a",
			"a: picked (2GiB and 2 vCPUs free)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := NeedOf(c.spec)
			if c.name == "down, drained, excluded" {
				n.Exclude = []string{"c"}
			}
			d := Choose(c.hosts, n, c.strat)
			if d.Picked != c.picked || d.Explain() != c.want {
				t.Fatalf("picked %q: %s\nwant %q: %s", d.Picked, d.Explain(), c.picked, c.want)
			}
		})
	}
}

func withLabels(h Host, kv ...string) Host {
	h.Labels = map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Labels[kv[i]] = kv[i+1]
	}
	return h
}
func withImages(h Host, images ...string) Host { h.Images = images; return h }
func overcommit(h Host, cpu float64) Host      { h.CPUOvercommit = cpu; return h }
func down(h Host) Host                         { h.Alive = false; return h }
func drained(h Host) Host                      { h.Schedulable = false; return h }

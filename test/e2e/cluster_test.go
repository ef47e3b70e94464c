package e2e

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
	"github.com/godwit-project/godwit/test/testbed"
)

// clusterBed is a bed of three hosts; each host whose name is in withVM
// first runs a test-guest VM of its own (vm-HOST-xxxx), then the three
// form a cluster with the command line. It returns the VMs by host.
func clusterBed(t *testing.T, withVM ...string) (*testbed.Bed, map[string]string) {
	t.Helper()
	b := newBed(t, 3)
	vms := map[string]string{}
	suffix := uniq()
	for _, h := range b.Hosts {
		if !strings.Contains(strings.Join(withVM, " "), h.Name) {
			continue
		}
		name := "vm-" + h.Name + "-" + suffix
		ctx := ctxT(t, 2*time.Minute)
		op, err := h.C.CreateVM(ctx, guestSpec(t, name), client.CreateOptions{Start: true})
		if err == nil {
			_, err = h.C.WaitOperation(ctx, op.ID, nil)
		}
		if err != nil {
			t.Fatalf("create %s on %s: %v", name, h.Name, err)
		}
		vms[h.Name] = name
	}
	for _, name := range withVM {
		h := hostNamed(b, name)
		hostWaitConsole(t, h, vms[name], `^tick 1 `, 0, 2*time.Minute)
	}
	t0 := time.Now()
	took, err := b.Cluster(ctxT(t, 3*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cluster of 3 formed in %s (joins %v)", time.Since(t0).Round(time.Millisecond), took)
	return b, vms
}

// median runs f n times and returns the median of its durations.
func median(t *testing.T, n int, f func() error) time.Duration {
	t.Helper()
	var ds []time.Duration
	for range n {
		t0 := time.Now()
		if err := f(); err != nil {
			t.Fatal(err)
		}
		ds = append(ds, time.Since(t0))
	}
	slices.Sort(ds)
	return ds[n/2].Round(10 * time.Microsecond)
}

func hostNamed(b *testbed.Bed, name string) *testbed.Host {
	for _, h := range b.Hosts {
		if h.Name == name {
			return h
		}
	}
	return nil
}

// clusterStatus runs 'cluster status -o json' on h.
func clusterStatus(t *testing.T, h *testbed.Host) api.ClusterStatus {
	t.Helper()
	out, err := h.CLI("cluster", "status", "-o", "json")
	if err != nil {
		t.Fatalf("cluster status on %s: %v\n%s", h.Name, err, out)
	}
	var st api.ClusterStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("cluster status on %s: %v\n%s", h.Name, err, out)
	}
	return st
}

// mustCLI runs the command line on h and fails the test when it fails.
func mustCLI(t *testing.T, h *testbed.Host, args ...string) string {
	t.Helper()
	out, err := h.CLI(args...)
	if err != nil {
		t.Fatalf("godwit %s on %s: %v\n%s", strings.Join(args, " "), h.Name, err, out)
	}
	return out
}

// vmRow finds vm's row in a 'vm list' table.
func vmRow(table, vm string) []string {
	for _, l := range strings.Split(table, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == vm {
			return f
		}
	}
	return nil
}

// Hosts that run VMs form a cluster and keep them; the status shows
// three healthy voters and a leader; any host lists every host's VMs with
// their host, and a stop, its operation, a start and the console of a
// VM of hosta all work from hostc.
func TestClusterFormAndServeAnywhere(t *testing.T) {
	concurrent(t)
	b, vms := clusterBed(t, "hosta", "hostb")
	a, c := b.Hosts[0], b.Hosts[2]

	// The VMs that ran before the cluster still run, managed, on their hosts.
	for host, vm := range vms {
		h := hostNamed(b, host)
		out := mustCLI(t, h, "vm", "show", vm)
		if !strings.Contains(out, "running") || strings.Contains(out, "Managed: no") {
			t.Fatalf("%s on %s after the cluster formed:\n%s", vm, host, out)
		}
	}

	st := clusterStatus(t, c)
	if !st.Ready || st.Leader == "" || st.Voters != 3 || len(st.Hosts) != 3 || st.Self != "hostc" {
		t.Fatalf("cluster status on hostc: %+v", st)
	}
	for _, h := range st.Hosts {
		if h.Role != api.RoleVoter || h.Member == nil || !h.Member.Healthy || !h.Alive || h.Member.RaftIndex == 0 || h.Error != "" {
			t.Fatalf("%s in the status: %+v %+v", h.Name, h, h.Member)
		}
	}
	table := mustCLI(t, a, "cluster", "status")
	if strings.Count(table, " voter ") != 3 || !strings.Contains(table, "*") || strings.Contains(table, "DOWN") {
		t.Fatalf("cluster status table on hosta:\n%s", table)
	}
	t.Logf("cluster status on hosta:\n%s", table)

	// Every VM, with its host, from hostc.
	t0 := time.Now()
	list := mustCLI(t, c, "vm", "list")
	t.Logf("vm list on hostc took %s:\n%s", time.Since(t0).Round(time.Millisecond), list)
	if !strings.HasPrefix(list, "NAME") || !strings.Contains(strings.Split(list, "\n")[0], "HOST") {
		t.Fatalf("vm list has no HOST column:\n%s", list)
	}
	for host, vm := range vms {
		if row := vmRow(list, vm); len(row) < 3 || row[1] != host || row[2] != "running" {
			t.Fatalf("vm list on hostc: %s's row %v, want it running on %s:\n%s", vm, row, host, list)
		}
	}
	var js api.VMList
	if err := json.Unmarshal([]byte(mustCLI(t, c, "vm", "list", "-o", "json")), &js); err != nil {
		t.Fatal(err)
	}
	hostOf := map[string]string{}
	for _, v := range js.VMs {
		hostOf[v.Name] = v.Host
	}
	if hostOf[vms["hosta"]] != "hosta" || hostOf[vms["hostb"]] != "hostb" {
		t.Fatalf("vm list -o json on hostc: hosts %v", hostOf)
	}

	// hosta's VM, driven from hostc.
	vm := vms["hosta"]
	t.Logf("vm show %s (median of 20): on hosta %s, forwarded from hostc %s; cluster status on hostc %s", vm,
		median(t, 20, func() error { _, err := a.C.GetVM(ctxT(t, 10*time.Second), vm); return err }),
		median(t, 20, func() error { _, err := c.C.GetVM(ctxT(t, 10*time.Second), vm); return err }),
		median(t, 5, func() error { _, err := c.C.ClusterStatus(ctxT(t, 10*time.Second)); return err }))
	out := mustCLI(t, c, "vm", "stop", vm, "--force", "--no-wait")
	id := strings.TrimSpace(regexp.MustCompile(`\S+@hosta`).FindString(out))
	if id == "" {
		t.Fatalf("vm stop --no-wait on hostc printed no operation of hosta:\n%s", out)
	}
	if out := mustCLI(t, c, "op", "wait", id); !strings.Contains(out, "succeeded") {
		t.Fatalf("op wait %s on hostc:\n%s", id, out)
	}
	if out := mustCLI(t, a, "vm", "show", vm); !strings.Contains(out, "stopped") {
		t.Fatalf("%s on hosta after the stop from hostc:\n%s", vm, out)
	}
	if out := mustCLI(t, c, "op", "show", id); !strings.Contains(out, "vm.stop") {
		t.Fatalf("op show %s on hostc:\n%s", id, out)
	}
	mustCLI(t, c, "vm", "start", vm)
	if v, err := a.C.GetVM(ctxT(t, 10*time.Second), vm); err != nil || v.State != api.VMRunning {
		t.Fatalf("%s on hosta after the start from hostc: %+v %v", vm, v.State, err)
	}
	eventually(t, 2*time.Minute, "hostc to show the console of "+vm+" booting again", func() bool {
		out, err := c.CLI("vm", "console", vm, "--no-follow")
		return err == nil && strings.Count(out, "GODWIT-GUEST-UP") >= 2 && tickRE.MatchString(out[strings.LastIndex(out, "GODWIT-GUEST-UP"):])
	})
}

// One member's daemon dies: the two others keep serving, the status
// says which is down, and once removed it is gone from the cluster.
func TestClusterMemberLoss(t *testing.T) {
	b, vms := clusterBed(t, "hosta")
	a, hb, c := b.Hosts[0], b.Hosts[1], b.Hosts[2]
	hb.StopDaemon(syscall.SIGKILL)

	eventually(t, 30*time.Second, "hosta to report hostb down", func() bool {
		st := clusterStatus(t, a)
		for _, h := range st.Hosts {
			if h.Name == "hostb" {
				return st.Ready && st.Leader != "" && h.Error != "" && !h.Alive
			}
		}
		return false
	})
	t.Logf("cluster status on hosta with hostb dead:\n%s", mustCLI(t, a, "cluster", "status"))
	// Still serving: a stop of hosta's VM from hostc goes through.
	out := mustCLI(t, c, "vm", "stop", vms["hosta"], "--force")
	if v, err := a.C.GetVM(ctxT(t, 10*time.Second), vms["hosta"]); err != nil || v.State != api.VMStopped {
		t.Fatalf("stop from hostc with hostb dead: %s, then %s %v", out, v.State, err)
	}
	if list := mustCLI(t, c, "vm", "list"); vmRow(list, vms["hosta"]) == nil {
		t.Fatalf("vm list on hostc with hostb dead:\n%s", list)
	}

	if out, err := a.CLI("cluster", "remove", "hostc"); err == nil || !strings.Contains(out, "stop its daemon first") {
		t.Fatalf("cluster remove of live hostc: %v\n%s", err, out)
	}
	if out := mustCLI(t, a, "cluster", "remove", "hostb"); !strings.Contains(out, "hostb removed") {
		t.Fatalf("cluster remove hostb:\n%s", out)
	}
	st := clusterStatus(t, c)
	if !st.Ready || st.Voters != 2 || len(st.Hosts) != 2 {
		t.Fatalf("status on hostc after removing hostb: %+v", st)
	}
	for _, h := range st.Hosts {
		if h.Name == "hostb" || !h.Alive {
			t.Fatalf("status on hostc after removing hostb: %+v", st.Hosts)
		}
	}
}

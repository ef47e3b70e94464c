package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
	"github.com/godwit-project/godwit/test/testbed"
)

// specFile writes spec, placement and ha included, as a file for the
// command line (JSON is YAML too).
func specFile(t *testing.T, s api.VMSpec) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), s.Name+".json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// dryRun runs 'vm create --dry-run -o json' on h.
func dryRun(t *testing.T, h *testbed.Host, spec api.VMSpec) api.PlacementDecision {
	t.Helper()
	var dec api.PlacementDecision
	out := mustCLI(t, h, "vm", "create", "-f", specFile(t, spec), "--dry-run", "-o", "json")
	if err := json.Unmarshal([]byte(out), &dec); err != nil {
		t.Fatalf("dry run of %s on %s: %v\n%s", spec.Name, h.Name, err, out)
	}
	return dec
}

// verdictOf is host's verdict in dec.
func verdictOf(dec api.PlacementDecision, host string) (api.PlacementVerdict, bool) {
	for _, v := range dec.Verdicts {
		if v.Host == host {
			return v, true
		}
	}
	return api.PlacementVerdict{}, false
}

// hostOfVM is the host that owns vm, as h says.
func hostOfVM(t *testing.T, h *testbed.Host, vm string) string {
	t.Helper()
	v, err := h.C.GetVM(ctxT(t, 30*time.Second), vm)
	if err != nil {
		t.Fatalf("vm %s seen from %s: %v", vm, h.Name, err)
	}
	return v.Host
}

// createOn creates spec on host h of a cluster (pinned) and waits.
func createOn(t *testing.T, h *testbed.Host, spec api.VMSpec, start bool) {
	t.Helper()
	ctx := ctxT(t, 2*time.Minute)
	op, err := h.C.CreateVM(ctx, spec, client.CreateOptions{Start: start, Host: h.Name})
	if err == nil {
		op, err = h.C.WaitOperation(ctx, op.ID, nil)
	}
	if err == nil && op.State != api.OpSucceeded {
		err = fmt.Errorf("%s: %s", op.State, op.Error)
	}
	if err != nil {
		t.Fatalf("create %s on %s: %v", spec.Name, h.Name, err)
	}
}

// A VM created without --on goes to the host the spread score picks
// (the one with the most room: hostc, which runs nothing) and boots
// there; the dry run names every host with its verdict; a host selector
// no host matches is a 409 naming placement.hostSelector for each host;
// anti-affinity keeps a second VM of a group off the host that spread
// would pick for it.
func TestClusterPlacement(t *testing.T) {
	concurrent(t)
	b, _ := clusterBed(t, "hosta", "hostb")
	a, hb, c := b.Hosts[0], b.Hosts[1], b.Hosts[2]
	s := uniq()

	spec := guestSpec(t, "place-"+s)
	t0 := time.Now()
	table := mustCLI(t, a, "vm", "create", "-f", specFile(t, spec), "--dry-run")
	tookTable := time.Since(t0)
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "hostc: picked (") {
		t.Fatalf("dry run on hosta: want hostc picked first, then a line for each other host:\n%s", table)
	}
	for _, h := range []string{"hosta", "hostb"} {
		if !strings.Contains(table, h+": fits, ranked lower (") {
			t.Fatalf("dry run on hosta names no verdict for %s:\n%s", h, table)
		}
	}
	dec := dryRun(t, hb, spec)
	if dec.Picked != "hostc" || len(dec.Verdicts) != 3 {
		t.Fatalf("dry run on hostb: %+v", dec)
	}
	t.Logf("dry run on hosta (%s for the command, placement %d ms):\n%s", tookTable.Round(time.Millisecond), dec.TookMs, table)

	t0 = time.Now()
	out := mustCLI(t, a, "vm", "create", "-f", specFile(t, spec), "--start")
	t.Logf("vm create on hosta without --on took %s: %s", time.Since(t0).Round(time.Millisecond), strings.TrimSpace(out))
	if h := hostOfVM(t, a, spec.Name); h != dec.Picked {
		t.Fatalf("%s was created on %s; the dry run picked %s", spec.Name, h, dec.Picked)
	}
	if _, err := c.Virsh("domstate", spec.Name); err != nil {
		t.Fatalf("libvirt on hostc has no %s: %v", spec.Name, err)
	}
	for _, h := range []*testbed.Host{a, hb} {
		if _, err := h.Virsh("domstate", spec.Name); err == nil {
			t.Fatalf("libvirt on %s has %s too", h.Name, spec.Name)
		}
	}
	hostWaitConsole(t, c, spec.Name, `^tick 1 `, 0, 2*time.Minute)
	if out := mustCLI(t, a, "vm", "console", spec.Name, "--no-follow"); !strings.Contains(out, "GODWIT-GUEST-UP") {
		t.Fatalf("console of %s from hosta:\n%s", spec.Name, out)
	}

	// No host has the label: a 409 that names the field, for each host.
	sel := guestSpec(t, "sel-"+s)
	sel.Placement = &api.Placement{HostSelector: map[string]string{"rack": "r9"}}
	out, err := hb.CLI("vm", "create", "-f", specFile(t, sel))
	if err == nil || strings.Count(out, "no label rack (placement.hostSelector wants rack=r9)") != 3 {
		t.Fatalf("create with a host selector no host matches: %v\n%s", err, out)
	}
	_, err = hb.C.CreateVM(ctxT(t, 30*time.Second), sel, client.CreateOptions{})
	if st := api.Status(err); st != 409 || !strings.Contains(err.Error(), "placement.hostSelector") {
		t.Fatalf("create with a host selector no host matches, over the API: %d %v", st, err)
	}
	t.Logf("create with a host selector no host matches: %s", strings.TrimSpace(out))
	if _, err := c.C.GetVM(ctxT(t, 30*time.Second), sel.Name); api.Status(err) != 404 {
		t.Fatalf("vm %s after the refused create: %v, want 404", sel.Name, err)
	}

	// Make hostb and hostc fuller than hosta (two vCPUs each, not
	// started), put web1 on hosta: spread alone would put web2 on hosta
	// too, its group keeps it off.
	for _, h := range []*testbed.Host{hb, c} {
		f := guestSpec(t, "fill-"+h.Name+"-"+s)
		f.CPUs = 2
		createOn(t, h, f, false)
	}
	group := "web-" + s
	web1 := guestSpec(t, "web1-"+s)
	web1.Placement = &api.Placement{AntiAffinity: group}
	createOn(t, a, web1, false)
	web2 := guestSpec(t, "web2-"+s)
	if dec := dryRun(t, c, web2); dec.Picked != "hosta" {
		t.Fatalf("without its group, spread would put web2 on %s, not hosta: %s", dec.Picked, dec.Explanation)
	}
	web2.Placement = &api.Placement{AntiAffinity: group}
	dec = dryRun(t, c, web2)
	if v, _ := verdictOf(dec, "hosta"); v.Fits || !strings.Contains(v.Reason, "runs "+web1.Name+" of placement.antiAffinity group "+group) {
		t.Fatalf("dry run of web2: hosta's verdict %+v: %s", v, dec.Explanation)
	}
	t.Logf("dry run of web2: %s", dec.Explanation)
	mustCLI(t, c, "vm", "create", "-f", specFile(t, web2))
	h1, h2 := hostOfVM(t, c, web1.Name), hostOfVM(t, c, web2.Name)
	if h1 == h2 || h2 != dec.Picked {
		t.Fatalf("web1 on %s, web2 on %s (the dry run picked %s): one group on one host", h1, h2, dec.Picked)
	}
	t.Logf("anti-affinity: web1 on %s, web2 on %s", h1, h2)
}

// host drain moves a running VM live off hosta to the host placement
// picks; the guest's counters go on there, its disk data came along;
// hosta turns unschedulable (a new VM avoids it) until host undrain.
func TestClusterDrain(t *testing.T) {
	b, _ := clusterBed(t)
	a, hb, c := b.Hosts[0], b.Hosts[1], b.Hosts[2]
	s := uniq()
	name := "drn-" + s
	spec := guestSpec(t, name, "diskcounter=1")
	createOn(t, a, spec, true)
	hostWaitConsole(t, a, name, `^tick 2 `, 0, 2*time.Minute)
	sum := writeGuestData(t, a, name)
	before := lastTick(hostConsole(t, a, name))

	t0 := time.Now()
	out := mustCLI(t, hb, "host", "drain", "hosta")
	took := time.Since(t0)
	t.Logf("host drain hosta, asked on hostb, took %s:\n%s", took.Round(time.Millisecond), out)
	if !strings.Contains(out, "1 moved, 0 did not") || !strings.Contains(out, name) {
		t.Fatalf("drain summary:\n%s", out)
	}
	to := hostNamed(b, hostOfVM(t, c, name))
	if to == nil || to == a {
		t.Fatalf("%s is on %v after the drain of hosta", name, to)
	}
	if _, err := a.Virsh("domstate", name); err == nil {
		t.Fatalf("libvirt on hosta still has %s after the drain", name)
	}
	noQEMU(t, a, name)
	eventually(t, 2*time.Minute, "the counter on "+to.Name+" to pass "+fmt.Sprint(before+1), func() bool {
		return lastTick(hostConsole(t, to, name)) > before+1
	})
	if log := hostConsole(t, to, name); strings.Contains(log, "GODWIT-GUEST-UP") || firstTick(log) <= before {
		t.Fatalf("the guest restarted on %s instead of moving live (first tick %d, %d before):\n%s", to.Name, firstTick(log), before, log)
	}
	checkDisk(t, to, name, sum, before)

	st := clusterStatus(t, c)
	for _, h := range st.Hosts {
		if h.Name == "hosta" && (h.Schedulable || h.VMs != 0) {
			t.Fatalf("hosta after its drain: %+v", h)
		}
	}
	next := guestSpec(t, "next-"+s)
	dec := dryRun(t, c, next)
	if v, _ := verdictOf(dec, "hosta"); v.Fits || !strings.Contains(v.Reason, "unschedulable (drained)") || dec.Picked == "hosta" {
		t.Fatalf("dry run with hosta drained: %s", dec.Explanation)
	}
	mustCLI(t, c, "vm", "create", "-f", specFile(t, next))
	if h := hostOfVM(t, c, next.Name); h == "hosta" {
		t.Fatalf("%s was created on drained hosta", next.Name)
	}

	if out := mustCLI(t, c, "host", "undrain", "hosta"); !strings.Contains(out, "host hosta is schedulable") {
		t.Fatalf("host undrain:\n%s", out)
	}
	// hosta runs nothing now: spread picks it.
	eventually(t, 30*time.Second, "hosta to be picked again", func() bool {
		return dryRun(t, hb, guestSpec(t, "again-"+s)).Picked == "hosta"
	})
	t.Logf("drain of one running VM took %s", took.Round(time.Millisecond))
}

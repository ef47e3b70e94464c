package e2e

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
	"github.com/godwit-project/godwit/internal/domainxml"
	"github.com/godwit-project/godwit/test/testbed"
)

// migrationBed is a joined bed of n hosts.
func migrationBed(t *testing.T, n int, shared bool) *testbed.Bed {
	t.Helper()
	// A destination undoes an incoming move whose source went silent after
	// 20s here (90s by default), so that tests of cut links end soon.
	b := newBedOpts(t, testbed.Options{Hosts: n, SharedPool: shared, DaemonArgs: []string{"--migration-idle-timeout", "20s"}})
	if err := b.Join(ctxT(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	return b
}

// onHost creates and starts a test-guest VM on h, waits for its ticks,
// has it write the data the tests follow (diskcheck_test.go) and returns
// the data's SHA-256.
func onHost(t *testing.T, h *testbed.Host, name string, cmdline ...string) string {
	t.Helper()
	ctx := ctxT(t, 2*time.Minute)
	spec := guestSpec(t, name, append([]string{"diskcounter=1"}, cmdline...)...)
	if strings.Contains(spec.Boot.Cmdline, "dirty=64") {
		spec.Memory = 320 * api.MiB // the loop keeps two 64 MiB copies in a tmpfs
	}
	op, err := h.C.CreateVM(ctx, spec, client.CreateOptions{Start: true})
	if err == nil {
		op, err = h.C.WaitOperation(ctx, op.ID, nil)
	}
	if err != nil {
		t.Fatalf("create %s on %s: %v", name, h.Name, err)
	}
	hostWaitConsole(t, h, name, `^tick 2 `, 0, 2*time.Minute)
	return writeGuestData(t, h, name)
}

func hostConsole(t *testing.T, h *testbed.Host, vm string) string {
	t.Helper()
	rc, err := h.C.Console(ctxT(t, 30*time.Second), vm, client.ConsoleOptions{})
	if err != nil {
		t.Fatalf("console of %s on %s: %v", vm, h.Name, err)
	}
	defer rc.Close()
	var b strings.Builder
	buf := make([]byte, 64*1024)
	for {
		n, err := rc.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return b.String()
}

func hostWaitConsole(t *testing.T, h *testbed.Host, vm, re string, offset int64, timeout time.Duration) {
	t.Helper()
	pat := regexp.MustCompile(re)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, line := range strings.Split(hostConsole(t, h, vm), "\n") {
			if pat.MatchString(line) {
				return
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("vm %s on %s: console did not show %q within %s:\n%s", vm, h.Name, re, timeout, hostConsole(t, h, vm))
}

// migrate runs `godwit migrate` on from and returns its report.
func migrate(t *testing.T, from *testbed.Host, vm, to string, flags ...string) api.MigrationReport {
	t.Helper()
	out, err := from.CLI(append([]string{"migrate", vm, "--to", to, "-o", "json"}, flags...)...)
	if err != nil {
		t.Fatalf("migrate %s to %s: %v\n%s", vm, to, err, out)
	}
	var rep api.MigrationReport
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, out)
	}
	t.Logf("migrated %s %s -> %s: total %d ms, downtime %d ms, %d MiB, postcopy %t", vm, rep.From, rep.To, rep.TotalMs, rep.DowntimeMs, rep.Bytes>>20, rep.Postcopy)
	return rep
}

// checkMoved checks the VM runs on to, managed, and is gone from from, that
// the guest did not reboot (its counter went on past before), and that its
// disk there holds the data (sum) and takes its writes.
func checkMoved(t *testing.T, from, to *testbed.Host, vm string, before int, sum string) {
	t.Helper()
	ctx := ctxT(t, time.Minute)
	v, err := to.C.GetVM(ctx, vm)
	if err != nil || !v.Managed || v.State != api.VMRunning {
		t.Fatalf("on %s after the move: %+v, %v", to.Name, v, err)
	}
	// An offline move ends before the source's Confirm: libvirt there may
	// still be ending its QEMU, while godwit shows the VM nowhere there.
	eventually(t, 30*time.Second, "libvirt on "+from.Name+" to end "+vm, func() bool {
		unseen(t, from, vm)
		_, err := from.Virsh("domstate", vm)
		return err != nil
	})
	// Persistent there: a transient domain vanishes from libvirt once it
	// stops (and dumpxml --inactive of one shows the live definition).
	if info, err := to.Virsh("dominfo", vm); err != nil || !regexp.MustCompile(`(?m)^Persistent:\s+yes$`).MatchString(info) {
		t.Fatalf("on %s the domain is not persistent: %v\n%s", to.Name, err, info)
	}
	// The persistent definition is the destination's own, not the one
	// libvirt carried over: else, once stopped, the VM is not godwit's.
	live, _ := to.Virsh("dumpxml", vm)
	inactive, err := to.Virsh("dumpxml", "--inactive", vm)
	if err != nil || domainxml.OwnerOf(inactive) == "" || domainxml.OwnerOf(inactive) != domainxml.OwnerOf(live) {
		t.Fatalf("on %s the persistent definition's owner is %q, the running domain's %q (%v)", to.Name, domainxml.OwnerOf(inactive), domainxml.OwnerOf(live), err)
	}
	eventually(t, 2*time.Minute, "the counter on "+to.Name+" to pass "+strconv.Itoa(before+1), func() bool {
		return lastTick(hostConsole(t, to, vm)) > before+1
	})
	log := hostConsole(t, to, vm)
	if strings.Contains(log, "GODWIT-GUEST-UP") {
		t.Fatalf("the guest booted again on %s:\n%s", to.Name, log)
	}
	if first := firstTick(log); first <= before {
		t.Fatalf("the counter on %s starts at %d, not after %d (the guest restarted?)", to.Name, first, before)
	}
	checkDisk(t, to, vm, sum, before)
}

// unseen checks that godwit on h shows no VM vm: not in its list, not as
// one VM (managed or not).
func unseen(t *testing.T, h *testbed.Host, vm string) {
	t.Helper()
	ctx := ctxT(t, time.Minute)
	vms, err := h.C.ListVMs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vms {
		if v.Name == vm {
			t.Fatalf("%s lists vm %s (%s, managed %t) after it moved away", h.Name, vm, v.State, v.Managed)
		}
	}
	if v, err := h.C.GetVM(ctx, vm); api.Status(err) != 404 {
		t.Fatalf("%s shows vm %s after it moved away: %+v, %v; want 404", h.Name, vm, v, err)
	}
}

func firstTick(s string) int {
	m := tickRE.FindStringSubmatch(s)
	if m == nil {
		return 0
	}
	return atoi(m[1])
}

// minTick is the smallest tick in s, or a huge number if there is none.
func minTick(s string) int {
	least := math.MaxInt
	for _, m := range tickRE.FindAllStringSubmatch(s, -1) {
		least = min(least, atoi(m[1]))
	}
	return least
}

func TestMigrateLiveShared(t *testing.T) {
	concurrent(t)
	b := migrationBed(t, 2, true)
	a, bb := b.Hosts[0], b.Hosts[1]
	name := "mig-sh-" + uniq()
	sum := onHost(t, a, name)
	before := lastTick(hostConsole(t, a, name))
	rep := migrate(t, a, name, bb.Name)
	if rep.SharedDisks != 1 || rep.CopiedDisks != 0 || rep.Mode != "live" || rep.DowntimeMs == 0 || rep.DiskBytes != 0 {
		t.Fatalf("report %+v", rep)
	}
	// The phases add up to the move, and the destination's own Finish
	// lies within the source's wait for it.
	if p := rep.Phases; p == nil || p.PerformMs == 0 || p.FinishMs == 0 || p.DestFinishMs > p.DestHandlerMs || p.DestHandlerMs > p.FinishMs ||
		p.BeginMs+p.PrepareMs+p.PerformMs+p.FinishMs > rep.TotalMs {
		t.Errorf("phases %+v of a %d ms move", rep.Phases, rep.TotalMs)
	} else {
		t.Logf("phases: %+v", *p)
	}
	checkMoved(t, a, bb, name, before, sum)
}

// Without shared storage the disks are copied while the VM runs: the data
// the guest wrote is there, byte for byte, and the source copy is gone.
func TestMigrateLiveCopyStorage(t *testing.T) {
	concurrent(t)
	b := migrationBed(t, 2, false)
	a, bb := b.Hosts[0], b.Hosts[1]
	name := "mig-cp-" + uniq()
	sum := onHost(t, a, name)
	srcDisk := diskPath(t, a, name)
	before := lastTick(hostConsole(t, a, name))
	rep := migrate(t, a, name, bb.Name)
	// The copy moves at least the data the guest wrote, at most the disk.
	if rep.SharedDisks != 0 || rep.CopiedDisks != 1 || rep.DiskBytes < dataLenMiB<<20 || rep.DiskBytes > 64<<20+4<<20 {
		t.Fatalf("report %+v", rep)
	}
	checkMoved(t, a, bb, name, before, sum)
	if _, err := os.Stat(srcDisk); !os.IsNotExist(err) {
		t.Fatalf("the source copy %s is still there (%v)", srcDisk, err)
	}
	nv, _ := bb.C.GetVM(ctxT(t, time.Minute), name)
	if _, err := os.Stat(bb.RealPath(nv.Disks[0].Path)); err != nil {
		t.Fatalf("disk on %s: %+v", bb.Name, nv.Disks[0])
	}
}

// Offline: the guest paused, its memory sent once by libvirt's migration
// (over QEMU's TLS) and its disks by NBD unless they are shared; it
// resumes there where it was. --transfer files is the book's way: save the
// memory, copy it (and the disks) with checksums, restore there.
func TestMigrateOffline(t *testing.T) {
	concurrent(t)
	for _, c := range []struct {
		name     string
		shared   bool
		transfer string
	}{{"shared", true, api.TransferStream}, {"copied", false, api.TransferStream}, {"files-copied", false, api.TransferFiles}} {
		t.Run(c.name, func(t *testing.T) {
			b := migrationBed(t, 2, c.shared)
			a, bb := b.Hosts[0], b.Hosts[1]
			name := "mig-off-" + uniq()
			sum := onHost(t, a, name)
			before := lastTick(hostConsole(t, a, name))
			flags := []string{"--offline"}
			if c.transfer == api.TransferFiles {
				flags = append(flags, "--transfer", "files")
			}
			rep := migrate(t, a, name, bb.Name, flags...)
			if rep.Mode != "offline" || rep.Transfer != c.transfer || rep.TransferNote != "" || rep.MemoryBytes == 0 ||
				(c.shared != (rep.CopiedDisks == 0)) || (c.shared != (rep.DiskBytes == 0)) || rep.DowntimeMs == 0 || rep.DowntimeMs > rep.TotalMs {
				t.Fatalf("report %+v", rep)
			}
			checkMoved(t, a, bb, name, before, sum)
		})
	}
}

// A paused VM streamed offline arrives paused, its disk there the same
// bytes as the source's (both read from the files while the guest is
// paused, past the guest's caches), and runs on once resumed there.
func TestMigrateOfflinePaused(t *testing.T) {
	concurrent(t)
	b := migrationBed(t, 2, false)
	a, bb := b.Hosts[0], b.Hosts[1]
	name := "mig-offp-" + uniq()
	sum := onHost(t, a, name)
	if out, err := a.CLI("vm", "pause", name); err != nil {
		t.Fatalf("pause: %v %s", err, out)
	}
	before := lastTick(hostConsole(t, a, name))
	srcSum := hostDiskAll(t, diskPath(t, a, name))
	rep := migrate(t, a, name, bb.Name, "--offline")
	if rep.Transfer != api.TransferStream || rep.CopiedDisks != 1 || rep.DiskBytes == 0 {
		t.Fatalf("report %+v", rep)
	}
	v, err := bb.C.GetVM(ctxT(t, time.Minute), name)
	if err != nil || !v.Managed || v.State != api.VMPaused {
		t.Fatalf("on %s after the move: %+v, %v; want it paused", bb.Name, v, err)
	}
	if got := hostDiskAll(t, diskPath(t, bb, name)); got != srcSum {
		t.Fatalf("the disk on %s holds %s, the source's held %s", bb.Name, got, srcSum)
	}
	t.Logf("disk of %s: %s… on both hosts", name, srcSum[:12])
	if out, err := bb.CLI("vm", "resume", name); err != nil {
		t.Fatalf("resume on %s: %v %s", bb.Name, err, out)
	}
	checkMoved(t, a, bb, name, before, sum)
}

// A shut-off VM moves cold: definition and disks; it boots there.
func TestMigrateCold(t *testing.T) {
	concurrent(t)
	b := migrationBed(t, 2, false)
	a, bb := b.Hosts[0], b.Hosts[1]
	name := "mig-cold-" + uniq()
	sum := onHost(t, a, name)
	if out, err := a.CLI("vm", "stop", name); err != nil {
		t.Fatalf("stop: %v %s", err, out)
	}
	if out, err := a.CLI("migrate", name, "--to", bb.Name, "--offline"); err == nil || !strings.Contains(out, "--cold") {
		t.Fatalf("offline migration of a stopped VM: %v %s", err, out)
	}
	rep := migrate(t, a, name, bb.Name)
	if rep.Mode != "cold" || rep.CopiedDisks != 1 {
		t.Fatalf("report %+v", rep)
	}
	ctx := ctxT(t, 2*time.Minute)
	if v, err := bb.C.GetVM(ctx, name); err != nil || v.State != api.VMStopped {
		t.Fatalf("on %s: %+v %v", bb.Name, v, err)
	}
	if out, err := bb.CLI("vm", "start", name, "--wait-for", "GODWIT-GUEST-UP"); err != nil {
		t.Fatalf("start on %s: %v %s", bb.Name, err, out)
	}
	hostWaitConsole(t, bb, name, `^tick 1 `, 0, time.Minute)
	// Booted afresh there: its counter restarts, so any tick shows it writes.
	checkDisk(t, bb, name, sum, 0)
}

// A guest rewriting 64 MiB of RAM over a 100 Mbit link: precopy alone
// never converges there (the guest dirties memory faster than the link
// carries it); the default policy finishes, and the guest lives on.
func TestMigrateDirtyGuestSlowLink(t *testing.T) {
	b := migrationBed(t, 2, true)
	a, bb := b.Hosts[0], b.Hosts[1]
	name := "mig-dirty-" + uniq()
	sum := onHost(t, a, name, "dirty=64")
	hostWaitConsole(t, a, name, `passes=[1-9]`, 0, 2*time.Minute)
	mem := dirtySum(t, a, name)
	for _, h := range []*testbed.Host{a, bb} {
		if err := h.Shape("100mbit"); err != nil {
			t.Fatal(err)
		}
	}
	before := lastTick(hostConsole(t, a, name))
	rep := migrate(t, a, name, bb.Name, "--timeout", "3m")
	// Precopy alone cannot finish here: the policy must have throttled the
	// guest (auto-converge) or switched to postcopy, and say which.
	if rep.Policy != "auto" || (!rep.Postcopy && rep.AutoConverge == 0) {
		t.Fatalf("report %+v: neither postcopy nor auto-converge engaged", rep)
	}
	checkMoved(t, a, bb, name, before, sum)
	// The dirtying loop goes on too: every page it touches must be there
	// (a page a postcopy move never served would stop it for good).
	passesGoOn(t, bb, name, mem)
}

var passesRE = regexp.MustCompile(`passes=(\d+)`)

// passesGoOn checks the guest's dirtying loop keeps making passes on h,
// and that its data in RAM still hashes to want (dirtySum).
func passesGoOn(t *testing.T, h *testbed.Host, vm, want string) {
	t.Helper()
	last := func() int {
		m := passesRE.FindAllStringSubmatch(hostConsole(t, h, vm), -1)
		if len(m) == 0 {
			return 0
		}
		return atoi(m[len(m)-1][1])
	}
	// Two more passes, each a 64 MiB copy and compare in a TCG guest: 2-3 s
	// on a quiet machine, but 12 s at load 10, and the first after a
	// postcopy switch pulls its pages over the shaped link (seen: over 30 s
	// for it, then 12 s each). A page never served stops the loop for good.
	p0, t0 := last(), time.Now()
	deadline := t0.Add(2 * time.Minute)
	for last() < p0+2 {
		if time.Now().After(deadline) {
			// Say where it stands: a host-side stall (a page postcopy never
			// served) freezes a 1-vCPU guest whole; ticks going on mean
			// the loop itself stopped inside the guest.
			st, _ := h.Virsh("domstate", "--reason", vm)
			job, _ := h.Virsh("domjobinfo", vm, "--completed")
			ps, rc := hostGuestExec(t, h, vm, "ps; cat /d/passes")
			t.Fatalf("the dirtying loop on %s stays at pass %d; domain %s; last job:\n%s\nguest (rc=%d):\n%s\nconsole:\n%s",
				h.Name, p0, st, job, rc, ps, hostConsole(t, h, vm))
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("the dirtying loop on %s went on: passes %d -> %d in %s", h.Name, p0, last(), time.Since(t0).Round(time.Second))
	memoryIntact(t, h, vm, want)
}

var dirtySumRE = regexp.MustCompile(`DIRTY-START \d+MiB sum=([0-9a-f]{64})`)

// dirtySum is the hash a dirtying guest printed of its data at start.
func dirtySum(t *testing.T, h *testbed.Host, vm string) string {
	t.Helper()
	m := dirtySumRE.FindStringSubmatch(hostConsole(t, h, vm))
	if m == nil {
		t.Fatalf("vm %s on %s: no DIRTY-START line", vm, h.Name)
	}
	return m[1]
}

// memoryIntact checks that the dirtying guest's data in RAM is what it
// was when it started: its copies never differed (DIRTY-CORRUPT) and the
// data hashes as it did.
func memoryIntact(t *testing.T, h *testbed.Host, vm, want string) {
	t.Helper()
	if log := hostConsole(t, h, vm); strings.Contains(log, "DIRTY-CORRUPT") {
		t.Fatalf("guest memory changed under vm %s on %s:\n%s", vm, h.Name, log)
	}
	out, rc := hostGuestExec(t, h, vm, "sha256sum /d/src")
	if f := strings.Fields(out); rc != 0 || len(f) == 0 || f[0] != want {
		t.Fatalf("vm %s on %s: the data in guest RAM hashes %q (rc=%d), %s at the start", vm, h.Name, out, rc, want)
	}
}

// Evacuation moves every running VM away, and says where.
func TestEvacuate(t *testing.T) {
	concurrent(t)
	b := migrationBed(t, 3, true)
	a := b.Hosts[0]
	var names []string
	sums := map[string]string{}
	for i := 0; i < 3; i++ {
		n := "mig-evac-" + uniq()
		sums[n] = onHost(t, a, n)
		names = append(names, n)
	}
	before := map[string]int{}
	for _, n := range names {
		before[n] = lastTick(hostConsole(t, a, n))
	}
	out, err := a.CLI("host", "evacuate", a.Name, "--parallel", "2")
	if err != nil {
		t.Fatalf("evacuate: %v\n%s", err, out)
	}
	if !strings.Contains(out, "3 moved, 0 did not") {
		t.Fatalf("evacuate said:\n%s", out)
	}
	for _, n := range names {
		var where *testbed.Host
		for _, h := range b.Hosts[1:] {
			if v, err := h.C.GetVM(ctxT(t, 30*time.Second), n); err == nil && v.State == api.VMRunning {
				where = h
			}
		}
		if where == nil || !strings.Contains(out, "migrated "+n+" from hosta to "+where.Name) {
			t.Fatalf("%s: not running on a peer, or the summary does not say so:\n%s", n, out)
		}
		checkMoved(t, a, where, n, before[n], sums[n])
	}
	vms, err := a.C.ListVMs(ctxT(t, 30*time.Second))
	if err != nil || len(vms) != 0 {
		t.Fatalf("hosta still has %+v (%v)", vms, err)
	}
}

// A VM with a NIC and a cloud-init seed moves: its NIC plugs into the
// destination's network of the same name with the same MAC, and its seed
// CD-ROM is rendered there.
func TestMigrateWithNICAndSeed(t *testing.T) {
	concurrent(t)
	b := migrationBed(t, 2, false)
	a, bb := b.Hosts[0], b.Hosts[1]
	name := "mig-nic-" + uniq()
	spec := guestSpec(t, name, "diskcounter=1")
	spec.NICs = []api.NIC{{Network: "default", MAC: "52:54:00:12:34:56"}}
	spec.CloudInit = &api.CloudInit{Hostname: name}
	ctx := ctxT(t, 2*time.Minute)
	op, err := a.C.CreateVM(ctx, spec, client.CreateOptions{Start: true})
	if err == nil {
		_, err = a.C.WaitOperation(ctx, op.ID, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	hostWaitConsole(t, a, name, `^tick 2 `, 0, 2*time.Minute)
	sum := writeGuestData(t, a, name)
	before := lastTick(hostConsole(t, a, name))
	migrate(t, a, name, bb.Name)
	checkMoved(t, a, bb, name, before, sum)
	ifs, err := bb.Virsh("domiflist", name)
	if err != nil || !strings.Contains(ifs, "52:54:00:12:34:56") || !strings.Contains(ifs, "network") {
		t.Fatalf("domiflist on %s: %v\n%s", bb.Name, err, ifs)
	}
	xml, _ := bb.Virsh("dumpxml", name)
	if !strings.Contains(xml, testbed.HostStateDir+"/seeds/"+name+".iso") {
		t.Fatalf("no seed CD-ROM on %s:\n%s", bb.Name, xml)
	}
	if _, err := os.Stat(bb.RealPath(testbed.HostStateDir + "/seeds/" + name + ".iso")); err != nil {
		t.Fatalf("seed ISO on %s: %v", bb.Name, err)
	}
	if _, err := os.Stat(a.RealPath(testbed.HostStateDir + "/seeds/" + name + ".iso")); !os.IsNotExist(err) {
		t.Fatalf("seed ISO left on %s: %v", a.Name, err)
	}
}

// --tls encrypts the migration stream with QEMU's native TLS, with the
// certificates each daemon provisions from its CA and its peers' CAs; a
// destination without them is refused in the preflight.
func TestMigrateTLS(t *testing.T) {
	concurrent(t)
	b := migrationBed(t, 3, true)
	a, bb, c := b.Hosts[0], b.Hosts[1], b.Hosts[2]
	for _, f := range []string{"ca-cert.pem", "server-cert.pem", "server-key.pem", "client-cert.pem", "client-key.pem"} {
		if _, err := os.Stat(filepath.Join(a.Dir, "pki", f)); err != nil {
			t.Fatalf("QEMU TLS file: %v", err)
		}
	}
	name := "mig-tls-" + uniq()
	sum := onHost(t, a, name)
	before := lastTick(hostConsole(t, a, name))
	rep := migrate(t, a, name, bb.Name, "--tls")
	if rep.Mode != "live" {
		t.Fatalf("report %+v", rep)
	}
	checkMoved(t, a, bb, name, before, sum)
	// A destination without QEMU's TLS files: refused before anything moves.
	if err := os.RemoveAll(filepath.Join(c.Dir, "pki")); err != nil {
		t.Fatal(err)
	}
	out, err := bb.CLI("migrate", name, "--to", c.Name, "--tls")
	if err == nil || !strings.Contains(out, "tls: QEMU TLS is not set up") {
		t.Fatalf("migrate --tls to a host without TLS files: %v\n%s", err, out)
	}
	stillHere(t, bb, name)
	// Offline it goes as files, saying why; asked to stream, it refuses.
	out, err = bb.CLI("migrate", name, "--to", c.Name, "--offline", "--transfer", "stream")
	if err == nil || !strings.Contains(out, "transfer: vm "+name+" cannot stream to "+c.Name) {
		t.Fatalf("migrate --offline --transfer stream to a host without TLS files: %v\n%s", err, out)
	}
	before = lastTick(hostConsole(t, bb, name))
	rep = migrate(t, bb, name, c.Name, "--offline")
	if rep.Transfer != api.TransferFiles || !strings.Contains(rep.TransferNote, "QEMU TLS is not set up on "+c.Name) {
		t.Fatalf("report %+v", rep)
	}
	checkMoved(t, bb, c, name, before, sum)
}

// Snapshot metadata moves with the VM. libvirt will not migrate a VM with
// internal snapshots live, so godwit refuses that before anything moves;
// --offline moves it with its snapshots (the disk file stays on shared
// storage, or is copied whole), and a revert on the destination takes the
// guest back.
func TestMigrateSnapshots(t *testing.T) {
	concurrent(t)
	for _, shared := range []bool{true, false} {
		t.Run(map[bool]string{true: "shared", false: "copied"}[shared], func(t *testing.T) {
			b := migrationBed(t, 2, shared)
			a, bb := b.Hosts[0], b.Hosts[1]
			name := "mig-snap-" + uniq()
			sum := onHost(t, a, name)
			if out, err := a.CLI("snapshot", "create", name, "s1", "--memory"); err != nil {
				t.Fatalf("snapshot: %v %s", err, out)
			}
			atSnap := lastTick(hostConsole(t, a, name))
			hostWaitConsole(t, a, name, `^tick `+strconv.Itoa(atSnap+3)+` `, 0, time.Minute)
			out, err := a.CLI("migrate", name, "--to", bb.Name)
			if err == nil || !strings.Contains(out, "--offline") {
				t.Fatalf("live migration with an internal snapshot: %v\n%s", err, out)
			}
			before := lastTick(hostConsole(t, a, name))
			// libvirt's migration cannot carry snapshots: files move whole.
			if rep := migrate(t, a, name, bb.Name, "--offline"); rep.Transfer != api.TransferFiles || !strings.Contains(rep.TransferNote, "snapshot") {
				t.Fatalf("report %+v", rep)
			}
			checkMoved(t, a, bb, name, before, sum)
			out, err = bb.CLI("snapshot", "list", name)
			if err != nil || !strings.Contains(out, "s1") {
				t.Fatalf("snapshots on %s: %v\n%s", bb.Name, err, out)
			}
			// The guest runs on there, past where the snapshot was...
			eventually(t, time.Minute, "the guest to tick on "+bb.Name, func() bool {
				return lastTick(hostConsole(t, bb, name)) >= atSnap+4
			})
			offset := len(hostConsole(t, bb, name))
			if out, err := bb.CLI("snapshot", "revert", name, "s1"); err != nil {
				t.Fatalf("revert on %s: %v\n%s", bb.Name, err, out)
			}
			// ...and after the revert it counts again from the snapshot. Ticks
			// from before the revert can still land past offset (the guest
			// runs until the revert takes it back), so look at all of them.
			eventually(t, time.Minute, "the counter to go back to the snapshot", func() bool {
				log := hostConsole(t, bb, name)
				return len(log) > offset && minTick(log[offset:]) <= atSnap+2
			})
		})
	}
}

// An offline move ends once the VM runs on the destination; libvirt on
// the source still ends its QEMU then (here up to 2 s: this machine's
// init reaps the exited QEMU late, and libvirt waits for it holding the
// domain, so every look at it waits too). A look at the source asked
// then, while its QEMU's process is still there, shows the VM nowhere,
// and a new VM of its name is refused. A daemon killed then ends the move
// at its next start: nothing of the VM is left there, its disk copy
// neither. The VM moves back and forth until the test is in time.
func TestMigrateOfflineTidyUp(t *testing.T) {
	concurrent(t)
	b := migrationBed(t, 2, false)
	name := "mig-offt-" + uniq()
	sum := onHost(t, b.Hosts[0], name)
	ctx := ctxT(t, 10*time.Minute)
	looked, killed := false, false
	for try := 0; !looked || !killed; try++ {
		if try == 8 {
			t.Fatalf("in %d moves the source's QEMU was gone before the test looked (looked %t, killed %t)", try, looked, killed)
		}
		from, to := b.Hosts[try%2], b.Hosts[(try+1)%2]
		srcDisk := diskPath(t, from, name)
		before := lastTick(hostConsole(t, from, name))
		pidFile := filepath.Join(from.Dir, "run", "qemu", name+".pid")
		pb, err := os.ReadFile(pidFile)
		if err != nil {
			t.Fatal(err)
		}
		proc := "/proc/" + strings.TrimSpace(string(pb))
		op, err := from.C.MigrateVM(ctx, name, api.MigrateRequest{To: to.Name, Mode: api.MigrateOffline})
		if err != nil {
			t.Fatal(err)
		}
		if final, err := from.C.WaitOperation(ctx, op.ID, nil); err != nil || final.State != api.OpSucceeded {
			t.Fatalf("migrate: %+v %v", final, err)
		}
		_, perr := os.Stat(proc)
		inTime := perr == nil // libvirt on from is still ending the QEMU
		switch {
		case inTime && !looked:
			ended := time.Now()
			unseen(t, from, name)
			_, cerr := from.C.CreateVM(ctx, guestSpec(t, name), client.CreateOptions{})
			t.Logf("%s asked while its QEMU was there: the VM not shown (answered in %d ms); create: %v", from.Name, time.Since(ended).Milliseconds(), cerr)
			if api.Status(cerr) != 409 {
				t.Fatalf("create %s on %s during the tidy-up: %v; want 409", name, from.Name, cerr)
			}
			looked = true
		case inTime:
			from.StopDaemon(syscall.SIGKILL)
			t.Logf("%s's daemon killed while its QEMU was there", from.Name)
			if err := from.StartDaemon(ctx); err != nil {
				t.Fatal(err)
			}
			unseen(t, from, name)
			killed = true
		default:
			t.Logf("%s's QEMU was gone when the move ended; moving back", from.Name)
		}
		checkMoved(t, from, to, name, before, sum)
		// The copy goes right after the domain.
		eventually(t, 10*time.Second, "the source copy "+srcDisk+" to go", func() bool {
			_, err := os.Stat(srcDisk)
			return os.IsNotExist(err)
		})
	}
}

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godwit-project/godwit/client"
	"github.com/godwit-project/godwit/internal/testenv"
	"github.com/godwit-project/godwit/test/sweep"
)

// helperReady is what the sweeper's helper process prints once it has
// made everything.
const helperReady = "SWEEP-HELPER-READY "

type helperState struct {
	E2EDir, BedDir, Domain string
}

// A run killed before its cleanup (as go test -timeout or a crash kills
// one) leaves an e2e daemon with a running VM on the system libvirtd, and
// a test bed host with its namespaces, private libvirtd, daemon (in a
// cluster of one, with its fence guard), dnsmasq and a running QEMU. The sweeper removes all of it, and nothing else.
func TestSweepAfterKilledRun(t *testing.T) {
	testenv.RequireLibvirt(t)
	testenv.RequireCommand(t, "nsenter")
	testenv.RequireGuest(t)
	sweepBin := filepath.Join(t.TempDir(), "sweep")
	build := exec.Command("go", "build", "-o", sweepBin, "./test/sweep/cmd/sweep")
	build.Dir = testenv.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the sweeper: %v\n%s", err, out)
	}

	helper := exec.Command(os.Args[0], "-test.run=^TestSweepHelper$", "-test.count=1", "-test.v")
	helper.Env = append(os.Environ(), "GODWIT_SWEEP_HELPER=1", "GODWIT_E2E_BINARY="+godwitBin)
	stdout, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	helper.Stderr = &stderr
	start := time.Now()
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	var st helperState
	// Whatever happens below, leave nothing: the helper dies, the sweeper
	// runs again over its directories.
	t.Cleanup(func() {
		_ = helper.Process.Kill()
		_ = helper.Wait()
		if dirs := dirsOf(helper.Process.Pid); t.Failed() && len(dirs) > 0 {
			out, _ := exec.Command(sweepBin, dirs...).CombinedOutput()
			t.Logf("sweep after the failure:\n%s", out)
		}
	})
	ready := make(chan error, 1)
	var said syncBuffer
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), helperReady); ok {
				ready <- json.Unmarshal([]byte(rest), &st)
				return
			}
			fmt.Fprintln(&said, sc.Text())
		}
		ready <- fmt.Errorf("the helper ended without being ready")
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("%v\nstdout:\n%s\nstderr:\n%s", err, said.String(), stderr.String())
		}
	case <-time.After(3 * time.Minute):
		t.Fatalf("the helper was not ready within 3 minutes:\nstdout:\n%s\nstderr:\n%s", said.String(), stderr.String())
	}
	t.Logf("helper ready in %s: %+v", time.Since(start).Round(time.Millisecond), st)

	// What the run made, as its records and libvirt say.
	recE, err := sweep.Read(st.E2EDir)
	if err != nil {
		t.Fatal(err)
	}
	recB, err := sweep.Read(st.BedDir)
	if err != nil {
		t.Fatal(err)
	}
	procs := append(append([]sweep.Proc(nil), recE.Procs...), recB.Procs...)
	spawned, strangers := recB.PIDFileProcs()
	if len(strangers) > 0 {
		t.Fatalf("pid files of the bed name processes not its own: %v", strangers)
	}
	roles := map[string]int{}
	for _, p := range append(procs, spawned...) {
		role := p.Role
		if strings.HasPrefix(role, "qemu-system") {
			role = "qemu-system"
		}
		roles[role]++
	}
	if roles["daemon"] != 2 || roles["libvirtd"] != 1 || roles["anchor"] != 1 || roles["qemu-system"] != 1 || roles["dnsmasq"] < 1 || roles[filepath.Base(godwitBin)] != 1 {
		t.Fatalf("recorded and spawned processes by role: %v", roles)
	}
	for _, p := range spawned {
		t.Logf("%s: its command line names the bed's dir: %v", p, strings.Contains(strings.Join(p.Cmdline, " "), st.BedDir))
	}
	procs = append(procs, spawned...)
	if pid := readPIDFile(t, "/run/libvirt/qemu/"+st.Domain+".pid"); pid > 0 {
		p, err := sweep.Snapshot("system QEMU", pid, nil)
		if err != nil {
			t.Fatal(err)
		}
		procs = append(procs, p)
	} else {
		t.Fatalf("no QEMU pid file for %s on the system libvirtd", st.Domain)
	}
	nets := daemonNetworks(t, recE.NetPrefix)
	if len(nets) == 0 || recE.Pool == "" {
		t.Fatalf("the daemon's networks %v and pool %q", nets, recE.Pool)
	}
	nsFiles := map[string]syscall.Stat_t{}
	for _, ns := range recB.Netns {
		var s syscall.Stat_t
		if err := syscall.Stat("/run/netns/"+ns, &s); err != nil {
			t.Fatalf("namespace %s: %v", ns, err)
		}
		nsFiles[ns] = s
	}

	// Killed: no cleanup runs. Everything is still there.
	if err := helper.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = helper.Wait()
	for _, p := range procs {
		if !p.Running() {
			t.Fatalf("%s ended with the helper: the check would prove nothing", p)
		}
	}

	sweepStart := time.Now()
	out, err := exec.Command(sweepBin, st.E2EDir, st.BedDir).CombinedOutput()
	t.Logf("sweep (%s):\n%s", time.Since(sweepStart).Round(time.Millisecond), out)
	if err != nil {
		t.Fatalf("sweep: %v", err)
	}

	for _, p := range procs {
		if p.Running() {
			t.Errorf("%s still runs", p)
		}
	}
	for _, d := range []string{st.E2EDir, st.BedDir} {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s is still there (%v)", d, err)
		}
	}
	if s := domainState(t, st.Domain); s != "absent" {
		t.Errorf("domain %s on the system libvirtd: %s", st.Domain, s)
	}
	if left := daemonNetworks(t, recE.NetPrefix); len(left) > 0 {
		t.Errorf("networks left: %v", left)
	}
	if _, err := virsh(t, "pool-info", recE.Pool); err == nil {
		t.Errorf("pool %s still defined", recE.Pool)
	}
	list, _ := exec.Command("ip", "netns", "list").Output()
	for ns, s := range nsFiles {
		if strings.Contains(string(list), ns) {
			t.Errorf("namespace %s still listed", ns)
		}
		if pids := inNamespace(s); len(pids) > 0 {
			t.Errorf("processes %v still run in namespace %s", pids, ns)
		}
	}
	for _, want := range []string{"killed daemon pid", "killed libvirtd pid", "killed anchor pid", "killed qemu-system", "killed dnsmasq",
		"destroyed and undefined domain " + st.Domain, "destroyed and undefined network " + nets[0], "destroyed and undefined pool " + recE.Pool,
		"deleted network namespace " + recB.Netns[0], "removed the directory"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("sweep output lacks %q", want)
		}
	}
	t.Logf("whole check: %s", time.Since(start).Round(time.Millisecond))
}

// TestSweepHelper is the run TestSweepAfterKilledRun kills: by itself
// (without GODWIT_SWEEP_HELPER) it does nothing.
func TestSweepHelper(t *testing.T) {
	if os.Getenv("GODWIT_SWEEP_HELPER") != "1" {
		return
	}
	d := StartDaemon(t)
	st := helperState{E2EDir: d.Dir, Domain: "e2e-sweep-" + uniq()}
	d.createVM(guestSpec(t, st.Domain), true)
	b := newBed(t, 1)
	st.BedDir = b.Dir
	h := b.Hosts[0]
	ctx := ctxT(t, 2*time.Minute)
	// In a cluster, so that its daemon keeps a fence guard, which runs
	// in a session of its own and outlives a killed daemon.
	if _, err := b.Cluster(ctx); err != nil {
		t.Fatal(err)
	}
	runningGuard(t, h)
	op, err := h.C.CreateVM(ctx, guestSpec(t, "e2e-sweep-bed"), client.CreateOptions{Start: true})
	if err == nil {
		_, err = h.C.WaitOperation(ctx, op.ID, nil)
	}
	if err != nil {
		t.Fatalf("VM on %s: %v", h.Name, err)
	}
	line, _ := json.Marshal(st)
	fmt.Println(helperReady + string(line))
	time.Sleep(5 * time.Minute) // the parent kills this process long before
	t.Fatal("not killed within 5 minutes")
}

// dirsOf returns the run directories whose record names pid as the owner.
func dirsOf(pid int) []string {
	var dirs []string
	for _, g := range sweep.DefaultGlobs {
		m, _ := filepath.Glob(g)
		for _, d := range m {
			if rec, err := sweep.Read(d); err == nil && rec.Owner.PID == pid {
				dirs = append(dirs, d)
			}
		}
	}
	return dirs
}

func readPIDFile(t *testing.T, path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return atoi(strings.TrimSpace(string(data)))
}

// daemonNetworks lists the system libvirtd's networks of a daemon prefix.
func daemonNetworks(t *testing.T, prefix string) []string {
	out, err := virsh(t, "net-list", "--all", "--name")
	if err != nil {
		t.Fatalf("net-list: %v %s", err, out)
	}
	var nets []string
	for _, n := range strings.Fields(out) {
		if strings.HasPrefix(n, prefix+"-") {
			nets = append(nets, n)
		}
	}
	return nets
}

// inNamespace lists the processes whose network namespace is the one
// that a /run/netns file (stat s) was bound to.
func inNamespace(s syscall.Stat_t) []string {
	var pids []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		var ps syscall.Stat_t
		if syscall.Stat("/proc/"+e.Name()+"/ns/net", &ps) == nil && ps.Dev == s.Dev && ps.Ino == s.Ino {
			pids = append(pids, e.Name())
		}
	}
	return pids
}

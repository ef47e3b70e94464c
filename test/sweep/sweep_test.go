package sweep

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	st, err := parseStat("4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615\n")
	if err != nil || st.state != 'S' || st.start != 987654 {
		t.Fatalf("parseStat = %+v, %v", st, err)
	}
	if _, err := parseStat("12 (x) S 1"); err == nil {
		t.Error("a short stat line parsed")
	}
}

func TestMountsUnderAndUnder(t *testing.T) {
	table := `22 1 254:0 / / rw - ext4 /dev/vda rw
90 22 7:0 / /var/tmp/gw-e2e-1/fs\040mnt rw - ext4 /dev/loop0 rw
91 90 0:5 / /var/tmp/gw-e2e-1/fs\040mnt/deeper rw - tmpfs tmpfs rw
92 22 7:1 / /var/tmp/gw-e2e-10/mnt rw - ext4 /dev/loop1 rw
`
	got := mountsUnder(table, "/var/tmp/gw-e2e-1")
	want := []string{"/var/tmp/gw-e2e-1/fs mnt/deeper", "/var/tmp/gw-e2e-1/fs mnt"}
	if !slices.Equal(got, want) {
		t.Errorf("mountsUnder = %q, want %q", got, want)
	}
	for _, c := range []struct {
		path string
		want bool
	}{{"/d", true}, {"/d/x", true}, {"/d2/x", false}, {"/", false}, {"d/x", false}, {"/d/../e", false}} {
		if under(c.path, "/d") != c.want {
			t.Errorf("under(%q, /d) = %v", c.path, !c.want)
		}
	}
}

func TestDomainFileUnder(t *testing.T) {
	x := func(kernel, disk string) string {
		return fmt.Sprintf(`<domain type='qemu'><name>v</name><os><type>hvm</type><kernel>%s</kernel></os>
<devices><disk type='file' device='disk'><source file='%s'/><target dev='vda'/></disk></devices></domain>`, kernel, disk)
	}
	if f := domainFileUnder(x("/boot/k", "/var/tmp/gw-e2e-1/state/pool/v-root.qcow2"), "/var/tmp/gw-e2e-1"); f != "/var/tmp/gw-e2e-1/state/pool/v-root.qcow2" {
		t.Errorf("disk below the dir: %q", f)
	}
	if f := domainFileUnder(x("/var/tmp/gw-e2e-1/state/boot/k", "/elsewhere/d"), "/var/tmp/gw-e2e-1"); f != "/var/tmp/gw-e2e-1/state/boot/k" {
		t.Errorf("kernel below the dir: %q", f)
	}
	if f := domainFileUnder(x("/boot/k", "/var/tmp/gw-e2e-10/d"), "/var/tmp/gw-e2e-1"); f != "" {
		t.Errorf("a neighbour's domain matched: %q", f)
	}
}

// child starts a process this test ends or the sweeper kills.
func child(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	return cmd
}

func snap(t *testing.T, role string, cmd *exec.Cmd) Proc {
	t.Helper()
	p, err := Snapshot(role, cmd.Process.Pid, cmd.Args)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// deadProc is a process that ran and is gone (reaped).
func deadProc(t *testing.T) Proc {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := snap(t, "owner", cmd)
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	return p
}

func TestRecorderAndRunning(t *testing.T) {
	dir := t.TempDir()
	r, err := NewRecorder(dir, KindE2E)
	if err != nil {
		t.Fatal(err)
	}
	c := child(t, "sleep", "30")
	if err := r.AddProc("daemon", c.Process.Pid, nil); err != nil {
		t.Fatal(err)
	}
	rec, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Owner.PID != os.Getpid() || !rec.Owner.Running() || len(rec.Procs) != 1 || !slices.Equal(rec.Procs[0].Cmdline, []string{"sleep", "30"}) {
		t.Fatalf("record = %+v", rec)
	}
	p := rec.Procs[0]
	if !p.Running() {
		t.Fatal("a living recorded process is not Running")
	}
	other := p
	other.Cmdline = []string{"sleep", "31"}
	if other.Running() {
		t.Error("a process with another command line counts as the recorded one")
	}
	other = p
	other.Start++
	if other.Running() {
		t.Error("a process started at another time (a reused PID) counts as the recorded one")
	}
	if err := r.DropProc(p.PID); err != nil {
		t.Fatal(err)
	}
	if rec, _ := Read(dir); len(rec.Procs) != 0 {
		t.Errorf("DropProc left %+v", rec.Procs)
	}
	if d := deadProc(t); d.Running() {
		t.Error("a reaped process is Running")
	}
	if _, err := Read(t.TempDir()); !errors.Is(err, ErrNoRecord) {
		t.Errorf("Read of a dir without a record: %v", err)
	}
}

// fakeHost answers the sweeper's commands and records them.
type fakeHost struct {
	mu      sync.Mutex
	calls   []string
	answers map[string]string // command line -> output; missing: error
}

func (f *fakeHost) run(_ context.Context, name string, args ...string) (string, error) {
	line := strings.Join(append([]string{name}, args...), " ")
	line = strings.TrimPrefix(line, "virsh -q -c qemu:///system ")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, line)
	if out, ok := f.answers[line]; ok {
		return out, nil
	}
	return "", fmt.Errorf("%s: no such thing", line)
}

func (f *fakeHost) called(line string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Contains(f.calls, line)
}

func TestSweepLeavesLiveRunsAndUnrecordedDirsAlone(t *testing.T) {
	live, bare := t.TempDir(), t.TempDir()
	if _, err := NewRecorder(live, KindTestbed); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	f := &fakeHost{}
	n, err := Sweep(context.Background(), Options{Dirs: []string{live, bare}, Out: &out, Run: f.run})
	if n != 0 || err != nil || len(f.calls) != 0 {
		t.Fatalf("Sweep = %d, %v, calls %v", n, err, f.calls)
	}
	for _, d := range []string{live, bare} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s removed", d)
		}
	}
	if !strings.Contains(out.String(), live+": left alone: its run (pid") || !strings.Contains(out.String(), bare+": left alone: no sweep.json") {
		t.Errorf("output:\n%s", out.String())
	}
}

func TestSweepDeadRun(t *testing.T) {
	dir := t.TempDir()
	daemon := child(t, "sleep", "31")
	stubborn := child(t, "sh", "-c", `trap "" TERM; while :; do sleep 0.1; done`)
	notMine := child(t, "sleep", "32")
	// A fake QEMU: comm qemu-system-x86, its path mentions the run's dir.
	os.MkdirAll(filepath.Join(dir, "bin"), 0o755)
	os.MkdirAll(filepath.Join(dir, "run"), 0o755)
	sleep, _ := exec.LookPath("sleep")
	data, _ := os.ReadFile(sleep)
	qemuBin := filepath.Join(dir, "bin", "qemu-system-x86_64")
	if err := os.WriteFile(qemuBin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	qemu := child(t, qemuBin, "33")
	// The same binary outside the dir: named in a pid file, not this run's.
	elsewhere := filepath.Join(t.TempDir(), "qemu-system-x86_64")
	os.WriteFile(elsewhere, data, 0o755)
	strangeQEMU := child(t, elsewhere, "34")
	for name, pid := range map[string]int{"mine": qemu.Process.Pid, "sleep": notMine.Process.Pid, "other": strangeQEMU.Process.Pid, "driver": daemon.Process.Pid} {
		os.WriteFile(filepath.Join(dir, "run", name+".pid"), []byte(fmt.Sprint(pid)), 0o644)
	}
	// A kernel setting the run raised (vm.nr_hugepages), here a file.
	setting := filepath.Join(t.TempDir(), "nr_hugepages")
	os.WriteFile(setting, []byte("64"), 0o644)
	wrong := snap(t, "libvirtd", notMine)
	wrong.Cmdline = []string{"libvirtd", "--pid-file", "x"} // what it is not
	rec := Record{
		Kind: KindE2E, Dir: dir, Owner: deadProc(t),
		Procs:    []Proc{snap(t, "anchor", stubborn), wrong, snap(t, "daemon", daemon)},
		PIDFiles: []PIDFile{{Glob: filepath.Join(dir, "run", "*.pid"), Comms: []string{"dnsmasq", "qemu-system"}}},
		Pool:     "godwit-aaaa1111", NetPrefix: "godwit-aaaa1111",
		Netns: []string{"gwtns1"}, Links: []string{"gwv1"}, OVSBridges: []string{"gwo1"},
		Restores: []Restore{{Path: setting, Value: "0"}},
	}
	r := &Recorder{path: filepath.Join(dir, File), rec: rec}
	if err := r.Update(func(*Record) {}); err != nil {
		t.Fatal(err)
	}
	domXML := func(disk string) string {
		return `<domain type='qemu'><name>x</name><devices><disk type='file' device='disk'><source file='` + disk + `'/><target dev='vda'/></disk></devices></domain>`
	}
	f := &fakeHost{answers: map[string]string{
		"list --all --name": "dom-mine\ndom-other\n",
		"dumpxml dom-mine":  domXML(filepath.Join(dir, "state/pool/dom-mine-root.qcow2")),
		"dumpxml dom-other": domXML("/var/lib/godwit/pool/dom-other-root.qcow2"),
		"destroy dom-mine":  "",
		"undefine dom-mine --managed-save --snapshots-metadata --checkpoints-metadata --nvram": "",
		"net-list --all --name":                "godwit-aaaa1111-default\ngodwit-default\ngodwit-aaaa11112-x\n",
		"net-destroy godwit-aaaa1111-default":  "",
		"net-undefine godwit-aaaa1111-default": "",
		"pool-list --all --name":               "godwit-aaaa1111\ne2e-fs-1\ngodwit\n",
		"pool-dumpxml e2e-fs-1":                "<pool type='fs'><name>e2e-fs-1</name><target><path>" + dir + "/fsmnt</path></target></pool>",
		"pool-dumpxml godwit":                  "<pool type='dir'><name>godwit</name><target><path>/var/lib/godwit/pool</path></target></pool>",
		"pool-destroy godwit-aaaa1111":         "",
		"pool-undefine godwit-aaaa1111":        "",
		"pool-undefine e2e-fs-1":               "",
		"ip netns pids gwtns1":                 "",
		"ip netns del gwtns1":                  "",
		"ip link show dev gwv1":                "5: gwv1@if4: <BROADCAST>",
		"ip link del gwv1":                     "",
	}}
	var out strings.Builder
	start := time.Now()
	n, err := Sweep(context.Background(), Options{Dirs: []string{dir}, Out: &out, Run: f.run, Wait: 300 * time.Millisecond})
	t.Logf("sweep took %s:\n%s", time.Since(start), out.String())
	if n != 1 || err != nil {
		t.Fatalf("Sweep = %d, %v", n, err)
	}
	for _, p := range []Proc{rec.Procs[0], rec.Procs[2]} {
		if p.Running() {
			t.Errorf("%s still runs", p)
		}
	}
	if st, err := readStat(qemu.Process.Pid); err == nil && st.state != 'Z' {
		t.Error("the run's QEMU still runs")
	}
	for _, c := range []*exec.Cmd{notMine, strangeQEMU} {
		if st, err := readStat(c.Process.Pid); err != nil || st.state == 'Z' {
			t.Errorf("%v was killed: it was not the run's", c.Args)
		}
	}
	for _, want := range []string{"destroy dom-mine", "net-undefine godwit-aaaa1111-default", "pool-undefine godwit-aaaa1111", "pool-undefine e2e-fs-1", "ip netns del gwtns1", "ip link del gwv1"} {
		if !f.called(want) {
			t.Errorf("did not run %q", want)
		}
	}
	for _, never := range []string{"destroy dom-other", "undefine dom-other", "net-destroy godwit-default", "net-destroy godwit-aaaa11112-x", "pool-destroy godwit", "pool-undefine godwit", "ovs-vsctl --timeout=10 del-br gwo1"} {
		if f.called(never) {
			t.Errorf("ran %q", never)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dir still there: %v", err)
	}
	if b, _ := os.ReadFile(setting); string(b) != "0" {
		t.Errorf("the setting holds %q, not the 0 it held before the run", b)
	}
	if strings.Count(out.String(), fmt.Sprintf("pid %d ", daemon.Process.Pid)) != 1 {
		t.Error("a pid file naming a recorded process made it a stranger too")
	}
	for _, line := range []string{
		"killed daemon pid", "killed anchor pid", "killed qemu-system-x86 pid",
		"left alone: pid " + fmt.Sprint(notMine.Process.Pid), "left alone: pid " + fmt.Sprint(strangeQEMU.Process.Pid),
		"destroyed and undefined domain dom-mine", "destroyed and undefined network godwit-aaaa1111-default",
		"destroyed and undefined pool e2e-fs-1", "deleted network namespace gwtns1", "deleted link gwv1", "removed the directory",
	} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("output lacks %q", line)
		}
	}
}

// A run whose directory was removed left its pool, network and domain on
// the system libvirtd: Orphans finds them from the pool's path; a pool of
// a run whose directory is still there is the record's business.
func TestSweepOrphansOfRemovedRunDirs(t *testing.T) {
	runs := t.TempDir()
	live, gone := filepath.Join(runs, "gw-e2e-1"), filepath.Join(runs, "gw-e2e-2")
	if err := os.Mkdir(live, 0o755); err != nil {
		t.Fatal(err)
	}
	poolXML := func(name, path string) string {
		return "<pool type='dir'><name>" + name + "</name><target><path>" + path + "</path></target></pool>"
	}
	f := &fakeHost{answers: map[string]string{
		"pool-list --all --name":        "godwit-dead0001\ngodwit-live0001\ngodwit\n",
		"pool-dumpxml godwit-dead0001":  poolXML("godwit-dead0001", gone+"/state/pool"),
		"pool-dumpxml godwit-live0001":  poolXML("godwit-live0001", live+"/state/pool"),
		"pool-dumpxml godwit":           poolXML("godwit", "/var/lib/godwit/pool"),
		"pool-destroy godwit-dead0001":  "",
		"pool-undefine godwit-dead0001": "",
		"list --all --name":             "dom-dead\ndom-live\n",
		"dumpxml dom-dead":              `<domain type='qemu'><name>dom-dead</name><os><kernel>` + gone + `/state/boot/k</kernel></os></domain>`,
		"dumpxml dom-live":              `<domain type='qemu'><name>dom-live</name><os><kernel>` + live + `/state/boot/k</kernel></os></domain>`,
		"destroy dom-dead":              "",
		"undefine dom-dead --managed-save --snapshots-metadata --checkpoints-metadata --nvram": "",
		"net-list --all --name":                "godwit-dead0001-default\ngodwit-live0001-default\ngodwit-default\n",
		"net-destroy godwit-dead0001-default":  "",
		"net-undefine godwit-dead0001-default": "",
	}}
	var out strings.Builder
	// live has no record: Sweep leaves it alone, and Orphans too.
	if _, err := Sweep(context.Background(), Options{Dirs: []string{live}, Orphans: filepath.Join(runs, "gw-e2e-*"), Out: &out, Run: f.run}); err != nil {
		t.Fatalf("Sweep: %v\n%s", err, out.String())
	}
	t.Logf("%s", out.String())
	for _, want := range []string{"pool-undefine godwit-dead0001", "net-undefine godwit-dead0001-default", "undefine dom-dead --managed-save --snapshots-metadata --checkpoints-metadata --nvram"} {
		if !f.called(want) {
			t.Errorf("did not run %q", want)
		}
	}
	for _, never := range []string{"pool-destroy godwit-live0001", "pool-undefine godwit", "net-destroy godwit-live0001-default", "net-destroy godwit-default", "destroy dom-live"} {
		if f.called(never) {
			t.Errorf("ran %q", never)
		}
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("the live run's directory: %v", err)
	}
}

// A process recorded right after exec.Cmd.Start must be recorded with its
// command line, or the sweeper never recognises it again. Before
// settledCmdline, most of these read an empty one.
func TestSnapshotJustStarted(t *testing.T) {
	for i := 0; i < 200; i++ {
		cmd := exec.Command("sleep", "30")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		p, err := Snapshot("child", cmd.Process.Pid, nil)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(p.Cmdline, []string{"sleep", "30"}) {
			t.Fatalf("start %d: recorded command line %q, want [sleep 30]", i, p.Cmdline)
		}
	}
}

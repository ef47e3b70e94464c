package fenceguard

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The tests run real guards: this test binary re-executed as
// "fence-guard", as the daemon re-executes godwit.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == Command {
		os.Exit(Main(os.Args[2:], os.Stderr))
	}
	os.Exit(m.Run())
}

// bed is a fake libvirt pid-file dir with "QEMUs": sleep processes whose
// command line names their guest as libvirt's QEMU does.
type bed struct {
	t      *testing.T
	dir    string
	feeder *Feeder
}

func newBed(t *testing.T) *bed {
	dir := t.TempDir()
	for _, d := range []string{"qemu", "state"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b := &bed{t: t, dir: dir}
	b.feeder = &Feeder{Exe: os.Args[0], PIDFile: b.path("state/fence-guard.pid"), Log: b.path("state/fence-guard.log"),
		PIDDir: b.path("qemu"), FencedFile: b.path("state/fenced.json")}
	t.Cleanup(func() {
		if pid := b.feeder.PID(); pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return b
}

func (b *bed) path(p string) string { return filepath.Join(b.dir, p) }

// qemu starts a stand-in QEMU for guest and writes pidFileOf's pid file
// pointing at it.
func (b *bed) qemu(guest, pidFileOf string) *exec.Cmd {
	cmd := &exec.Cmd{Path: "/bin/sleep", Args: []string{"qemu-system-x86_64 -name guest=" + guest + ",debug-threads=on", "60"}}
	if err := cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	// The child is ours: reap it as soon as it dies (alive sees no
	// zombie).
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	b.t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	for end := time.Now().Add(5 * time.Second); !IsQEMUOf(cmd.Process.Pid, guest); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			b.t.Fatalf("the stand-in QEMU of %s never showed its command line", guest)
		}
	}
	if err := os.WriteFile(b.path("qemu/"+pidFileOf+".pid"), []byte(fmt.Sprintln(cmd.Process.Pid)), 0o644); err != nil {
		b.t.Fatal(err)
	}
	return cmd
}

func alive(cmd *exec.Cmd) bool {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(st), ") ")
	return !strings.HasPrefix(rest, "Z") && !strings.HasPrefix(rest, "X")
}

func (b *bed) feed(left time.Duration, vms ...string) {
	if err := b.feeder.Feed(left, vms); err != nil {
		b.t.Fatal(err)
	}
}

func (b *bed) log() string {
	out, _ := os.ReadFile(b.path("state/fence-guard.log"))
	return string(out)
}

// waitGone waits for the guard to exit (its pid file removed too).
func (b *bed) waitGone(within time.Duration) {
	for end := time.Now().Add(within); b.feeder.PID() != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			b.t.Fatalf("the guard still runs after %s; log:\n%s", within, b.log())
		}
	}
	if _, err := os.Stat(b.feeder.PIDFile); !os.IsNotExist(err) {
		b.t.Fatalf("the guard left its pid file: %v", err)
	}
}

// killedBetween checks that q runs until notBefore and is dead by notAfter.
func (b *bed) killedBetween(q *exec.Cmd, t0 time.Time, notBefore, notAfter time.Duration) time.Duration {
	b.t.Helper()
	for time.Since(t0) < notBefore {
		if !alive(q) {
			b.t.Fatalf("the QEMU was killed %s after the feed, before its deadline %s; log:\n%s", time.Since(t0), notBefore, b.log())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for alive(q) {
		if time.Since(t0) > notAfter {
			b.t.Fatalf("the QEMU still runs %s after the feed (deadline %s); log:\n%s", time.Since(t0), notBefore, b.log())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(t0)
}

func TestFedInTimeKillsNothing(t *testing.T) {
	b := newBed(t)
	q := b.qemu("vm1", "vm1")
	for range 15 {
		b.feed(400*time.Millisecond, "vm1")
		time.Sleep(100 * time.Millisecond)
	}
	if !alive(q) {
		t.Fatalf("a guard fed every 100 ms with 400 ms left killed the QEMU; log:\n%s", b.log())
	}
	if err := b.feeder.StandDown(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	b.waitGone(time.Second)
	time.Sleep(600 * time.Millisecond)
	if !alive(q) || strings.Contains(b.log(), "fencing") {
		t.Fatalf("the QEMU alive %v after a stand-down; log:\n%s", alive(q), b.log())
	}
}

func TestNotFedKillsAtDeadline(t *testing.T) {
	b := newBed(t)
	q1, q2 := b.qemu("vm1", "vm1"), b.qemu("vm2", "vm2")
	other := b.qemu("vm3", "vm3") // a VM of this host that is not HA
	b.feed(time.Hour, "vm1")
	t0 := time.Now()
	b.feed(time.Second, "vm1", "vm2") // the last feed rules: list and deadline
	took := b.killedBetween(q1, t0, 900*time.Millisecond, 2*time.Second)
	b.killedBetween(q2, t0, 0, 2*time.Second)
	t.Logf("killed %s after a feed of 1 s", took)
	b.waitGone(3 * time.Second)
	if !alive(other) {
		t.Fatal("the guard killed a VM it was not given")
	}
	log := b.log()
	if !strings.Contains(log, "not fed before its deadline") || !strings.Contains(log, "vm vm1: killed its QEMU") {
		t.Fatalf("the log does not say why and what:\n%s", log)
	}
	if got := ReadFenced(b.feeder.FencedFile); !slices.Equal(got, []string{"vm1", "vm2"}) {
		t.Fatalf("fenced file: %v, want [vm1 vm2]", got)
	}
}

func TestStandDownKillsNothing(t *testing.T) {
	b := newBed(t)
	q := b.qemu("vm1", "vm1")
	b.feed(300*time.Millisecond, "vm1")
	if err := b.feeder.StandDown(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	b.waitGone(time.Second)
	time.Sleep(time.Second)
	if !alive(q) {
		t.Fatalf("a guard told to stand down killed the QEMU; log:\n%s", b.log())
	}
	// And a feed after the stand-down starts no guard again.
	b.feed(100*time.Millisecond, "vm1")
	if b.feeder.PID() != 0 {
		t.Fatal("a feed after the stand-down started a guard")
	}
}

// The daemon dies: its end of the pipe closes without a stand-down.
func TestPipeClosedKillsAtDeadline(t *testing.T) {
	b := newBed(t)
	q := b.qemu("vm1", "vm1")
	t0 := time.Now()
	b.feed(time.Second, "vm1")
	b.feeder.Stop()
	b.killedBetween(q, t0, 900*time.Millisecond, 2*time.Second)
	b.waitGone(3 * time.Second)
	if !strings.Contains(b.log(), "pipe closed without a stand-down") {
		t.Fatalf("log:\n%s", b.log())
	}
}

// A pid file whose process is not that VM's QEMU (the pid reused) is left
// alone; so is a VM without a pid file.
func TestStrangerLeftAlone(t *testing.T) {
	b := newBed(t)
	stranger := b.qemu("vm9", "vm1") // vm1's pid file names vm9's process
	b.feed(200*time.Millisecond, "vm1", "vm2")
	b.waitGone(3 * time.Second)
	if !alive(stranger) {
		t.Fatal("the guard killed a process its VM's pid file named but that is not that VM's QEMU")
	}
	if log := b.log(); !strings.Contains(log, "is not the QEMU of vm1") || !strings.Contains(log, "vm vm2: no QEMU runs") {
		t.Fatalf("log:\n%s", log)
	}
	if got := ReadFenced(b.feeder.FencedFile); len(got) != 0 {
		t.Fatalf("fenced file lists %v, none was killed", got)
	}
}

// A new daemon finds the guard its dead predecessor left: it waits for it
// to fire, and never touches a process its pid file names that is not a
// guard of that pid file.
func TestAwaitPredecessor(t *testing.T) {
	b := newBed(t)
	q := b.qemu("vm1", "vm1")
	t0 := time.Now()
	b.feed(700*time.Millisecond, "vm1")
	b.feeder.Stop()
	for _, err := os.Stat(b.feeder.PIDFile); err != nil; _, err = os.Stat(b.feeder.PIDFile) {
		time.Sleep(5 * time.Millisecond)
	}
	what, err := AwaitPredecessor(b.feeder.PIDFile, 10*time.Second)
	if err != nil || !strings.Contains(what, "ended after") {
		t.Fatalf("AwaitPredecessor: %q %v", what, err)
	}
	if took := time.Since(t0); alive(q) || took < 700*time.Millisecond {
		t.Fatalf("after %s the predecessor's QEMU alive %v", took, alive(q))
	}
	stranger := b.qemu("vm2", "vm2")
	os.WriteFile(b.feeder.PIDFile, []byte(fmt.Sprintln(stranger.Process.Pid)), 0o600)
	if what, err := AwaitPredecessor(b.feeder.PIDFile, time.Second); what != "" || err != nil || !alive(stranger) {
		t.Fatalf("a pid file naming a stranger: %q %v, alive %v", what, err, alive(stranger))
	}
}

// The wait loop allocates nothing: a read of a feed under a deadline and
// its handling.
func TestWaitLoopAllocatesNothing(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	g := &guard{o: Options{Feed: r}}
	line := AppendFeed(nil, 3*time.Second, []string{"web1", "db-2"})
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := w.Write(line); err != nil {
			t.Fatal(err)
		}
		_ = g.o.Feed.SetReadDeadline(time.Now().Add(time.Second))
		k, err := g.o.Feed.Read(g.in[g.n:])
		if err != nil {
			t.Fatal(err)
		}
		g.n += k
		if g.lines() {
			t.Fatal("a feed read as a stand-down")
		}
	})
	if allocs != 0 {
		t.Fatalf("the wait loop allocates %.1f times a feed", allocs)
	}
	if got := string(g.vms[:g.nvms]); got != "web1 db-2" || time.Until(g.deadline) < 2*time.Second {
		t.Fatalf("last feed: %q, deadline in %s", got, time.Until(g.deadline))
	}
}

// A message cut in two reads, and malformed lines, which feed nothing.
func TestLines(t *testing.T) {
	g := &guard{}
	put := func(s string) bool { g.n += copy(g.in[g.n:], s); return g.lines() }
	if put("F 5000000000 a") || g.armed {
		t.Fatal("half a line fed")
	}
	if put(" b\nF x a\nF\nG 1 a\n") || !g.armed || string(g.vms[:g.nvms]) != "a b" {
		t.Fatalf("armed %v vms %q", g.armed, g.vms[:g.nvms])
	}
	if d := time.Until(g.deadline); d < 4*time.Second || d > 5*time.Second {
		t.Fatalf("deadline in %s, want 5 s", d)
	}
	if !put("S\n") {
		t.Fatal("the stand-down not seen")
	}
}

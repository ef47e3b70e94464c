//go:build repro

package e2e

import (
	"os"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/godwit-project/godwit/test/testbed"
)

// TestReproPostcopyUnservedPage checks what issue 17's postcopy stall
// diagnosis rests on: a page the destination of a postcopy move needs
// and the source does not serve freezes the 1-vCPU test guest whole (its
// ticks stop), not just the process that touched it. The source's QEMU
// is stopped (SIGSTOP) right after the switch to postcopy, for 15 s,
// then let go; the destination's console log is read from its file.
// REPRO_NOSTOP=1 is the control: the same without the stop.
//
//	go test -tags repro ./test/e2e -run TestReproPostcopyUnservedPage -v [REPRO_NOSTOP=1]
func TestReproPostcopyUnservedPage(t *testing.T) {
	b := migrationBed(t, 2, true)
	a, bb := b.Hosts[0], b.Hosts[1]
	name := "repro-pc-" + uniq()
	onHost(t, a, name, "dirty=64")
	hostWaitConsole(t, a, name, `passes=[1-9]`, 0, 2*time.Minute)
	for _, h := range []*testbed.Host{a, bb} {
		if err := h.Shape("100mbit"); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan string, 1)
	go func() {
		out, err := a.CLI("migrate", name, "--to", bb.Name, "--policy", "postcopy", "--timeout", "3m")
		done <- out + " " + errString(err)
	}()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st, _ := a.Virsh("domstate", "--reason", name)
		if regexp.MustCompile(`post-copy`).MatchString(st) {
			t.Logf("source: %s", st)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no postcopy switch: %s", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	xml, err := bb.Virsh("dumpxml", name)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`<log file='([^']+)'`).FindStringSubmatch(xml)
	if m == nil {
		t.Fatalf("no console log in the destination's XML")
	}
	logFile := bb.RealPath(m[1])
	ticks := func() int { b, _ := os.ReadFile(logFile); return lastTick(string(b)) }
	pids := a.QEMUs(name)
	if os.Getenv("REPRO_NOSTOP") == "1" { // the control: the source serves on
		pids = nil
	}
	for _, p := range pids {
		_ = syscall.Kill(p, syscall.SIGSTOP)
	}
	t0 := ticks()
	time.Sleep(15 * time.Second)
	t1 := ticks()
	for _, p := range pids {
		_ = syscall.Kill(p, syscall.SIGCONT)
	}
	t.Logf("destination ticks while the source served no pages: %d -> %d in 15 s", t0, t1)
	out := <-done
	t.Logf("migrate: %s", out)
	time.Sleep(10 * time.Second)
	t.Logf("destination ticks 10 s after the source went on: %d", ticks())
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

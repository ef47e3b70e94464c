package e2e

import (
	"io"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/term"

	"github.com/godwit-project/godwit/test/testbed"
)

var ptyRE = regexp.MustCompile(`<serial type='pty'>\s*<source path='(/dev/pts/\d+)'`)

// guestExec runs a shell command inside a test guest through its serial
// console (the guest's "RUN <id> <cmd>" channel) and returns its output and
// exit status. The command must finish within timeout.
func (d *Daemon) guestExec(vm, cmd string, timeout time.Duration) (string, int) {
	d.t.Helper()
	xml, err := virsh(d.t, "dumpxml", vm)
	if err != nil {
		d.t.Fatalf("dumpxml %s: %v", vm, err)
	}
	m := ptyRE.FindStringSubmatch(xml)
	if m == nil {
		d.t.Fatalf("vm %s has no serial pty", vm)
	}
	f, err := os.OpenFile(m[1], os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		d.t.Fatalf("open %s: %v", m[1], err)
	}
	defer f.Close()
	// Raw, so the pty neither echoes the guest's output back to it nor
	// rewrites our newlines.
	if _, err := term.MakeRaw(int(f.Fd())); err != nil {
		d.t.Fatalf("raw %s: %v", m[1], err)
	}
	// Drain what QEMU writes to the pty while we hold it open, or a full
	// pty buffer would stall the guest's serial port.
	go func() { _, _ = io.Copy(io.Discard, f) }()

	offset := consoleSize(d.t, d, vm)
	id := uniq()
	if _, err := f.Write([]byte("RUN " + id + " " + cmd + "\n")); err != nil {
		d.t.Fatalf("write to %s: %v", m[1], err)
	}
	res := d.waitConsole(vm, `^RESULT `+id+` rc=\d+`, offset, timeout)
	rc := atoi(strings.TrimPrefix(res, "RESULT "+id+" rc="))
	var out []string
	for _, line := range strings.Split(d.consoleFrom(vm, offset), "\n") {
		if p := "OUT " + id + " "; strings.HasPrefix(line, p) {
			out = append(out, strings.TrimPrefix(line, p))
		}
	}
	return strings.Join(out, "\n"), rc
}

// consoleFrom returns the console output from offset on.
func (d *Daemon) consoleFrom(vm string, offset int64) string {
	d.t.Helper()
	s := d.console(vm)
	if int64(len(s)) < offset {
		return s
	}
	return s[offset:]
}

func TestGuestExec(t *testing.T) {
	concurrent(t)
	d := StartDaemon(t)
	name := "e2e-exec-" + uniq()
	d.createVM(guestSpec(t, name), true)
	d.waitConsole(name, `^tick 1 `, 0, guestWait)
	out, rc := d.guestExec(name, "echo hello; ls /sys/block", 30*time.Second)
	if rc != 0 || !strings.Contains(out, "hello") || !strings.Contains(out, "vda") {
		t.Fatalf("guestExec = %q rc=%d", out, rc)
	}
	if _, rc := d.guestExec(name, "false", 30*time.Second); rc != 1 {
		t.Fatalf("false gave rc=%d", rc)
	}
}

// hostGuestExec is guestExec for a VM on a test-bed host.
func hostGuestExec(t *testing.T, h *testbed.Host, vm, cmd string) (string, int) {
	t.Helper()
	xml, err := h.Virsh("dumpxml", vm)
	if err != nil {
		t.Fatalf("dumpxml %s on %s: %v", vm, h.Name, err)
	}
	m := ptyRE.FindStringSubmatch(xml)
	if m == nil {
		t.Fatalf("vm %s has no serial pty", vm)
	}
	// The pty lives in the host's mount namespace (its own /dev/pts is the
	// machine's: only /run/libvirt and friends are private).
	before := int64(len(hostConsole(t, h, vm)))
	id := uniq()
	// Hold the pty open until the answer came: QEMU reads a line slowly
	// (its UART takes 16 bytes at a time) and stops reading once we close.
	closePty, err := writePty(m[1], "RUN "+id+" "+cmd+"\n")
	if err != nil {
		t.Fatal(err)
	}
	defer closePty()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		log := hostConsole(t, h, vm)
		if int64(len(log)) < before {
			before = 0
		}
		rest := log[before:]
		if mm := regexp.MustCompile(`(?m)^RESULT ` + id + ` rc=(\d+)`).FindStringSubmatch(rest); mm != nil {
			var out []string
			for _, line := range strings.Split(rest, "\n") {
				if p := "OUT " + id + " "; strings.HasPrefix(line, p) {
					out = append(out, strings.TrimPrefix(line, p))
				}
			}
			return strings.Join(out, "\n"), atoi(mm[1])
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("guest %s on %s did not answer %q", vm, h.Name, cmd)
	return "", 0
}

// writePty writes to a VM's serial pty and keeps it open (drained) until
// the returned func closes it.
func writePty(path, s string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	if _, err := term.MakeRaw(int(f.Fd())); err != nil {
		f.Close()
		return nil, err
	}
	go func() { _, _ = io.Copy(io.Discard, f) }()
	if _, err := f.Write([]byte(s)); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

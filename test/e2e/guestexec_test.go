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
	d := StartDaemon(t)
	name := "e2e-exec-" + uniq()
	d.createVM(guestSpec(t, name), true)
	d.waitConsole(name, `^tick 1 `, 0, time.Minute)
	out, rc := d.guestExec(name, "echo hello; ls /sys/block", 30*time.Second)
	if rc != 0 || !strings.Contains(out, "hello") || !strings.Contains(out, "vda") {
		t.Fatalf("guestExec = %q rc=%d", out, rc)
	}
	if _, rc := d.guestExec(name, "false", 30*time.Second); rc != 1 {
		t.Fatalf("false gave rc=%d", rc)
	}
}

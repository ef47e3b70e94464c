package e2e

import (
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
	"github.com/godwit-project/godwit/internal/testenv"
)

// After a daemon restart, VMs are listed with their real state (the guest
// kept running: its counter did not restart), and a domain godwit did not
// create is listed as unmanaged and left alone.
func TestRestartReconcileAndUnmanaged(t *testing.T) {
	concurrent(t)
	d := StartDaemon(t)
	name := "e2e-rst-" + uniq()
	d.createVM(guestSpec(t, name), true)
	d.waitConsole(name, `^tick 2 `, 0, guestWait)

	foreign := "e2e-foreign-" + uniq()
	g := Guest(t)
	xml := `<domain type='qemu'><name>` + foreign + `</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type><kernel>` + g.Kernel + `</kernel></os><devices><memballoon model='none'/></devices></domain>`
	xf := filepath.Join(t.TempDir(), "foreign.xml")
	os.WriteFile(xf, []byte(xml), 0o644)
	if out, err := virsh(t, "define", xf); err != nil {
		t.Fatalf("virsh define: %v %s", err, out)
	}
	t.Cleanup(func() { virsh(t, "undefine", foreign) })

	d.Stop(syscall.SIGTERM)
	if st := domainState(t, name); st != "running" {
		t.Fatalf("the VM did not survive the daemon stopping: %s", st)
	}
	d.Start()
	ctx := ctxT(t, time.Minute)
	vms, err := d.C.ListVMs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]api.VM{}
	for _, v := range vms {
		seen[v.Name] = v
	}
	if v := seen[name]; v.State != api.VMRunning || !v.Managed {
		t.Fatalf("after restart %s is %+v, want running and managed", name, v)
	}
	if v, ok := seen[foreign]; !ok || v.Managed || v.State != api.VMStopped || v.Spec != nil {
		t.Fatalf("foreign domain listed as %+v (present %t), want unmanaged and stopped", v, ok)
	}
	if out := d.MustCLI("vm", "list"); !strings.Contains(out, "unmanaged") {
		t.Fatalf("vm list does not mark the foreign domain:\n%s", out)
	}
	// The guest was not restarted: its counter goes on past where it was.
	before := lastTick(d.console(name))
	d.waitConsole(name, `^tick `+strconv.Itoa(before+1)+` `, 0, guestWait)
	if strings.Count(d.console(name), "GODWIT-GUEST-UP") != 1 {
		t.Fatal("the guest booted twice")
	}
	// Unmanaged domains are read-only.
	for what, call := range map[string]func() error{
		"start":   func() error { _, err := d.C.StartVM(ctx, foreign); return err },
		"delete":  func() error { _, err := d.C.DeleteVM(ctx, foreign, client.DeleteOptions{Force: true}); return err },
		"console": func() error { _, err := d.C.Console(ctx, foreign, client.ConsoleOptions{}); return err },
	} {
		if err := call(); api.Status(err) != 409 {
			t.Errorf("%s of an unmanaged domain: %v, want 409", what, err)
		}
	}
	if st := domainState(t, foreign); st != "shut off" {
		t.Fatalf("godwit touched the foreign domain: %s", st)
	}
	// A name taken by a foreign domain cannot be created.
	if _, err := d.C.CreateVM(ctx, guestSpec(t, foreign), client.CreateOptions{}); api.Status(err) != 409 {
		t.Fatalf("create over a foreign domain: %v, want 409", err)
	}
}

// An operation cut off by a daemon crash ends failed with the reason at the
// next start, not "running" forever; a guest that ignores ACPI makes a
// stop fail after its timeout; --force stops it.
func TestInterruptedOperationAndStopTimeout(t *testing.T) {
	d := StartDaemon(t)
	name := "e2e-ops-" + uniq()
	d.createVM(guestSpec(t, name, "ignoreacpi=1"), true)
	d.waitConsole(name, `^tick 1 `, 0, guestWait)
	ctx := ctxT(t, 3*time.Minute)

	op, err := d.C.StopVM(ctx, name, api.StopRequest{Timeout: 3})
	if err != nil {
		t.Fatal(err)
	}
	op, err = d.C.WaitOperation(ctx, op.ID, nil)
	if op.State != api.OpFailed || op.ErrorCode != 504 || !strings.Contains(op.Error, "did not shut down within 3s") {
		t.Fatalf("stop of a guest ignoring ACPI: %+v (%v)", op, err)
	}
	if st := domainState(t, name); st != "running" {
		t.Fatalf("after a failed stop the VM is %s", st)
	}

	op, err = d.C.StopVM(ctx, name, api.StopRequest{Timeout: 600})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	d.Stop(syscall.SIGKILL)
	d.Start()
	got, err := d.C.GetOperation(ctx, op.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != api.OpFailed || !strings.Contains(got.Error, "interrupted") {
		t.Fatalf("operation after a crash: %+v, want failed (interrupted)", got)
	}
	if _, errOut, code := d.CLI("op", "wait", op.ID); code != 1 || !strings.Contains(errOut, "interrupted") {
		t.Fatalf("op wait of the interrupted op: exit %d, %q", code, errOut)
	}
	d.MustCLI("vm", "stop", "--force", name)
	if st := domainState(t, name); st != "shut off" {
		t.Fatalf("after stop --force the VM is %s", st)
	}
}

// Cancel stops a running operation; the VM stays as it was.
func TestCancelOperation(t *testing.T) {
	concurrent(t)
	d := StartDaemon(t)
	name := "e2e-cancel-" + uniq()
	d.createVM(guestSpec(t, name, "ignoreacpi=1"), true)
	ctx := ctxT(t, 2*time.Minute)
	op, err := d.C.StopVM(ctx, name, api.StopRequest{Timeout: 600})
	if err != nil {
		t.Fatal(err)
	}
	// A second action on the same VM meanwhile is refused, naming the op.
	if _, err := d.C.PauseVM(ctx, name); api.Status(err) != 409 || !strings.Contains(err.Error(), op.ID) {
		t.Fatalf("pause during a stop: %v, want 409 naming %s", err, op.ID)
	}
	out := d.MustCLI("op", "cancel", op.ID)
	if !strings.Contains(out, "cancelled") {
		t.Fatalf("op cancel said %q", out)
	}
	got, _ := d.C.GetOperation(ctx, op.ID)
	if got.State != api.OpCancelled {
		t.Fatalf("cancelled op is %s", got.State)
	}
	if st := domainState(t, name); st != "running" {
		t.Fatalf("after cancelling the stop the VM is %s", st)
	}
	if _, err := d.C.PauseVM(ctx, name); err != nil {
		t.Fatalf("the VM stayed locked after the cancel: %v", err)
	}
}

// Two daemons with their own state dirs and sockets share one libvirtd.
func TestTwoDaemonsSideBySide(t *testing.T) {
	concurrent(t)
	a, b := StartDaemon(t), StartDaemon(t)
	if poolOf(t, a) == poolOf(t, b) {
		t.Fatal("two daemons share a storage pool")
	}
	va, vb := "e2e-a-"+uniq(), "e2e-b-"+uniq()
	a.createVM(guestSpec(t, va), false)
	b.createVM(guestSpec(t, vb), false)
	ctx := ctxT(t, time.Minute)
	for _, c := range []struct {
		d        *Daemon
		own, not string
	}{{a, va, vb}, {b, vb, va}} {
		vms, err := c.d.C.ListVMs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var own, other *api.VM
		for i := range vms {
			switch vms[i].Name {
			case c.own:
				own = &vms[i]
			case c.not:
				other = &vms[i]
			}
		}
		if own == nil || !own.Managed || other == nil || other.Managed {
			t.Fatalf("daemon lists own=%+v other=%+v; want its own managed, the other's unmanaged", own, other)
		}
	}
	// The state dir is locked: a second daemon on it refuses to start.
	_, errOut, code := a.CLI("daemon", "--state-dir", filepath.Join(a.Dir, "state"), "--socket", filepath.Join(a.Dir, "other.sock"))
	if code == 0 || !strings.Contains(errOut, "locked") {
		t.Fatalf("second daemon on the same state dir: exit %d, %q", code, errOut)
	}
	// So is the socket.
	_, errOut, code = a.CLI("daemon", "--state-dir", filepath.Join(a.Dir, "state2"), "--socket", a.Socket)
	if code == 0 || !strings.Contains(errOut, "another godwit daemon is serving") {
		t.Fatalf("second daemon on the same socket: exit %d, %q", code, errOut)
	}
}

// With libvirtd unreachable the API answers 503 with a clear message and
// the daemon keeps serving; when libvirtd is back, it recovers by itself.
// The daemon reaches libvirtd through a socket proxy the test cuts.
func TestLibvirtDown(t *testing.T) {
	testenv.RequireLibvirt(t)
	proxy := startProxy(t, filepath.Join(t.TempDir(), "lv.sock"), testenv.LibvirtSocket)
	d := StartDaemon(t, "--libvirt", "qemu+unix:///system?socket="+proxy.path)
	name := "e2e-down-" + uniq()
	d.createVM(guestSpec(t, name), false)

	proxy.cut()
	ctx := ctxT(t, 2*time.Minute)
	eventually(t, 20*time.Second, "503 from vm list", func() bool {
		_, err := d.C.ListVMs(ctx)
		return api.Status(err) == 503
	})
	_, err := d.C.ListVMs(ctx)
	if !strings.Contains(err.Error(), "libvirt is not reachable") && !strings.Contains(err.Error(), "lost the connection to libvirt") {
		t.Fatalf("503 message: %q", err)
	}
	if _, err := d.C.CreateVM(ctx, guestSpec(t, "e2e-down2-"+uniq()), client.CreateOptions{}); api.Status(err) != 503 {
		t.Fatalf("create while libvirt is down: %v, want 503", err)
	}
	_, errOut, code := d.CLI("vm", "list")
	if code != 1 || !strings.Contains(errOut, "libvirt") {
		t.Fatalf("CLI while libvirt is down: exit %d, %q", code, errOut)
	}
	h, err := d.C.Host(ctx)
	if err != nil || h.Libvirt.Connected || len(h.Warnings) == 0 {
		t.Fatalf("host while libvirt is down: %+v, %v", h, err)
	}

	proxy.restore()
	eventually(t, 30*time.Second, "vm list to work again", func() bool {
		_, err := d.C.ListVMs(ctx)
		return err == nil
	})
	d.waitOp(d.C.StartVM(ctx, name))
	d.waitConsole(name, "GODWIT-GUEST-UP", 0, guestWait)
}

// proxy forwards a unix socket to another; cut() closes every connection
// and stops listening (libvirtd "down"), restore() listens again.
type proxy struct {
	t      *testing.T
	path   string
	target string
	mu     sync.Mutex
	l      net.Listener
	conns  []net.Conn
}

func startProxy(t *testing.T, path, target string) *proxy {
	p := &proxy{t: t, path: path, target: target}
	p.restore()
	t.Cleanup(p.cut)
	return p
}

func (p *proxy) restore() {
	l, err := net.Listen("unix", p.path)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.l = l
	p.mu.Unlock()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("unix", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { io.Copy(u, c); u.Close() }()
			go func() { io.Copy(c, u); c.Close() }()
		}
	}()
}

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.l != nil {
		p.l.Close()
		p.l = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	os.Remove(p.path)
}

// On this kind of machine /dev/kvm is served in software (no vmx/svm
// flags): auto must end up on TCG, and say so.
func TestAccelAutoOnThisHost(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		testenv.Skip(t, "the accelerator probe is x86 only (vmx/svm flags, the PVM check)")
	}
	d := StartDaemon(t, "--accel", "auto")
	// Creating a VM makes the daemon settle the accelerator.
	name := "e2e-accel-" + uniq()
	d.createVM(guestSpec(t, name), false)
	var h api.Host
	if err := json.Unmarshal([]byte(d.MustCLI("host", "show", "-o", "json")), &h); err != nil {
		t.Fatal(err)
	}
	cpuinfo, _ := os.ReadFile("/proc/cpuinfo")
	hwVirt := strings.Contains(string(cpuinfo), " vmx") || strings.Contains(string(cpuinfo), " svm")
	if h.Accel.Setting != "auto" || h.Accel.Reason == "" {
		t.Fatalf("accel = %+v", h.Accel)
	}
	out, _ := virsh(t, "dumpxml", name)
	if !hwVirt {
		if h.Accel.Chosen != "tcg" || len(h.Warnings) == 0 {
			t.Fatalf("no vmx/svm here, yet accel = %+v, warnings %v", h.Accel, h.Warnings)
		}
		if !strings.Contains(out, "<domain type='qemu'") {
			t.Fatalf("the VM is not a TCG (type qemu) domain:\n%s", out)
		}
	} else if h.Accel.Chosen == "kvm" && !strings.Contains(out, "<domain type='kvm'") {
		t.Fatalf("accel kvm but the domain is:\n%s", out)
	}
	t.Logf("accel: %s (%s)", h.Accel.Chosen, h.Accel.Reason)
}

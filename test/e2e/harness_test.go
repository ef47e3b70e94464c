// Package e2e tests godwit end to end: a real daemon binary, a real
// libvirtd, real guests (the tiny test guest under TCG). Tests skip when
// root or libvirtd is missing, and fail instead under CI=true, where
// `make test` installs and starts everything.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
	"github.com/godwit-project/godwit/internal/testenv"
	"github.com/godwit-project/godwit/test/sweep"
)

// godwitBin is the binary under test, built once by TestMain.
var godwitBin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	// make test-unit (go test -short ./...) runs no e2e test: every one
	// needs root, the system libvirtd or the test bed. Say so once here
	// rather than skip test by test; running none makes go test print
	// "[no tests to run]" even without -v.
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e: -short: not running the e2e tests (they need root, libvirtd and the test guest; make test-e2e runs them)")
		if err := flag.Set("test.run", "^$"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}
	// GODWIT_E2E_BINARY tests that binary instead of building one (the
	// sweeper check's helper process runs its parent's).
	if bin := os.Getenv("GODWIT_E2E_BINARY"); bin != "" {
		godwitBin = bin
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "godwit-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	godwitBin = filepath.Join(dir, "godwit")
	cmd := exec.Command("go", "build", "-o", godwitBin, "./cmd/godwit")
	cmd.Dir = testenv.RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build godwit: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// concurrent lets a test run alongside the other concurrent ones: go test
// runs them after the sequential tests, -parallel at a time. A test waits
// on its guests most of the time (one keeps 2 cores 35-40% busy), so this
// is most of what keeps the suite short. A test may when another's load
// cannot change its outcome: its own daemon or test bed (the beds are
// network namespaces with their own libvirtds), unique names, no host-wide
// change another test sees, no bound on a time. The tests of downtime,
// convergence, fencing, cut links and killed daemons stay sequential.
func concurrent(t *testing.T) { t.Parallel() }

// uniq returns a short random suffix for names tests create.
func uniq() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Daemon is a godwit daemon started for one test, with its own state dir
// and socket. Cleanup deletes its VMs, stops it by PID and removes its pool.
// What it starts is recorded in Dir/sweep.json, so that the sweeper
// (test/sweep) removes it when this test binary dies before cleanup.
type Daemon struct {
	t       *testing.T
	Dir     string
	Socket  string
	LogPath string
	Args    []string
	C       *client.Client
	cmd     *exec.Cmd
	waited  chan struct{}
	pool    string
	// netPrefix starts the libvirt names of the daemon's networks.
	netPrefix string
	rec       *sweep.Recorder
}

// StartDaemon starts a daemon; extra are more `godwit daemon` flags. It
// runs with --accel tcg unless extra says otherwise: deciding "auto" boots
// probes for seconds, and only TestAccelAutoOnThisHost is about that.
func StartDaemon(t *testing.T, extra ...string) *Daemon {
	t.Helper()
	testenv.RequireLibvirt(t)
	// Not t.TempDir(): QEMU (another user) must reach disks below it, and
	// the socket path must stay short.
	dir, err := os.MkdirTemp("/var/tmp", "gw-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o711)
	rec, err := sweep.NewRecorder(dir, sweep.KindE2E)
	if err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	d := &Daemon{t: t, rec: rec, Dir: dir, Socket: filepath.Join(dir, "godwit.sock"), LogPath: filepath.Join(dir, "daemon.log")}
	d.Args = append([]string{"daemon", "--state-dir", filepath.Join(dir, "state"), "--socket", d.Socket}, extra...)
	if !strings.Contains(strings.Join(extra, " "), "--accel") {
		d.Args = append(d.Args, "--accel", "tcg")
	}
	c, err := client.New(client.Options{Socket: d.Socket})
	if err != nil {
		t.Fatal(err)
	}
	d.C = c
	t.Cleanup(d.cleanup)
	d.Start()
	return d
}

// Start (re)starts the daemon process and waits until it answers.
func (d *Daemon) Start() {
	d.t.Helper()
	logf, err := os.OpenFile(d.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		d.t.Fatal(err)
	}
	d.cmd = exec.Command(godwitBin, d.Args...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	logf.Close()
	if err := d.rec.AddProc("daemon", d.cmd.Process.Pid, d.cmd.Args); err != nil {
		d.t.Error(err)
	}
	d.waited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(d.cmd, d.waited)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		h, err := d.C.Host(ctx)
		cancel()
		if err == nil {
			d.pool, d.netPrefix = h.Pool, h.NetworkPrefix
			// Only a test daemon's own names: never the plain "godwit"
			// of a real daemon on this libvirtd.
			d.track(func(r *sweep.Record) {
				if daemonNetRE.MatchString(h.Pool) {
					r.Pool = h.Pool
				}
				if daemonNetRE.MatchString(h.NetworkPrefix) {
					r.NetPrefix = h.NetworkPrefix
				}
			})
			return
		}
		select {
		case <-d.waited:
			d.t.Fatalf("daemon exited at start:\n%s", d.Log())
		default:
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("daemon did not answer within 30s: %v\n%s", err, d.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop stops the daemon: SIGTERM (clean) or SIGKILL (a crash).
func (d *Daemon) Stop(sig syscall.Signal) {
	d.t.Helper()
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Signal(sig)
	select {
	case <-d.waited:
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.waited
		d.t.Errorf("daemon did not stop within 30s of %v", sig)
	}
	_ = d.rec.DropProc(d.cmd.Process.Pid)
	d.cmd = nil
}

// track records something the test made for this daemon's run (a
// namespace, a link, an OVS bridge) for the sweeper. Record it before
// making it: the sweeper deletes only what exists.
func (d *Daemon) track(f func(*sweep.Record)) {
	if err := d.rec.Update(f); err != nil {
		d.t.Error(err)
	}
}

// Log returns the daemon's log so far.
func (d *Daemon) Log() string {
	b, _ := os.ReadFile(d.LogPath)
	return string(b)
}

func (d *Daemon) cleanup() {
	if d.cmd != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		if vms, err := d.C.ListVMs(ctx); err == nil {
			for _, v := range vms {
				if !v.Managed {
					continue
				}
				if op, err := d.C.DeleteVM(ctx, v.Name, client.DeleteOptions{Force: true}); err == nil {
					_, _ = d.C.WaitOperation(ctx, op.ID, nil)
				}
			}
		}
		cancel()
		d.Stop(syscall.SIGTERM)
	}
	if d.t.Failed() {
		d.t.Logf("daemon log:\n%s", d.Log())
	}
	removeNetworks(d.netPrefix)
	if d.pool != "" {
		_ = exec.Command("virsh", "-q", "pool-destroy", d.pool).Run()
		_ = exec.Command("virsh", "-q", "pool-undefine", d.pool).Run()
	}
	os.RemoveAll(d.Dir)
}

// CLI runs the godwit command line against this daemon.
func (d *Daemon) CLI(args ...string) (stdout, stderr string, code int) {
	return d.CLIInput("", args...)
}

// CLIInput is CLI with stdin.
func (d *Daemon) CLIInput(stdin string, args ...string) (stdout, stderr string, code int) {
	cmd := exec.Command(godwitBin, args...)
	cmd.Env = append(os.Environ(), "GODWIT_SOCKET="+d.Socket)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		d.t.Fatalf("run godwit %v: %v", args, err)
	}
	return o.String(), e.String(), code
}

// MustCLI runs the CLI and fails the test unless it exits 0.
func (d *Daemon) MustCLI(args ...string) string {
	d.t.Helper()
	out, errOut, code := d.CLI(args...)
	if code != 0 {
		d.t.Fatalf("godwit %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// Guest is the test guest's kernel and initrd.
func Guest(t *testing.T) testenv.Guest { return testenv.RequireGuest(t) }

// guestSpec is a small VM running the test guest with one blank disk.
func guestSpec(t *testing.T, name string, cmdline ...string) api.VMSpec {
	g := Guest(t)
	return api.VMSpec{
		Name: name, CPUs: 1, Memory: 192 * api.MiB,
		Boot:  &api.Boot{Kernel: g.Kernel, Initrd: g.Initrd, Cmdline: strings.Join(append([]string{"console=ttyS0", "quiet"}, cmdline...), " ")},
		Disks: []api.Disk{{Name: "root", Size: 64 * api.MiB}},
	}
}

// specYAML writes spec as a YAML file for the CLI.
func specYAML(t *testing.T, s api.VMSpec) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\ncpus: %d\nmemory: %s\n", s.Name, s.CPUs, s.Memory)
	if s.Boot != nil {
		fmt.Fprintf(&b, "boot:\n  kernel: %s\n  initrd: %s\n  cmdline: %q\n", s.Boot.Kernel, s.Boot.Initrd, s.Boot.Cmdline)
	}
	if len(s.Disks) > 0 {
		b.WriteString("disks:\n")
		for _, d := range s.Disks {
			fmt.Fprintf(&b, "  - name: %s\n", d.Name)
			if d.Size != 0 {
				fmt.Fprintf(&b, "    size: %s\n", d.Size)
			}
			if d.Image != "" {
				fmt.Fprintf(&b, "    image: %s\n", d.Image)
			}
		}
	}
	if s.Autostart {
		b.WriteString("autostart: true\n")
	}
	if len(s.Labels) > 0 {
		b.WriteString("labels:\n")
		for k, v := range s.Labels {
			fmt.Fprintf(&b, "  %s: %q\n", k, v)
		}
	}
	p := filepath.Join(t.TempDir(), s.Name+".yaml")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// createVM creates (and starts) a VM through the API and waits for the op.
func (d *Daemon) createVM(spec api.VMSpec, start bool) api.Operation {
	d.t.Helper()
	ctx := ctxT(d.t, 2*time.Minute)
	op, err := d.C.CreateVM(ctx, spec, client.CreateOptions{Start: start})
	if err != nil {
		d.t.Fatalf("create %s: %v", spec.Name, err)
	}
	op, err = d.C.WaitOperation(ctx, op.ID, nil)
	if err != nil {
		d.t.Fatalf("create %s: %v", spec.Name, err)
	}
	return op
}

// waitOp waits for an operation and fails the test if it failed.
func (d *Daemon) waitOp(op api.Operation, err error) api.Operation {
	d.t.Helper()
	if err != nil {
		d.t.Fatal(err)
	}
	op, err = d.C.WaitOperation(ctxT(d.t, 2*time.Minute), op.ID, nil)
	if err != nil {
		d.t.Fatalf("operation %s %s: %v", op.Kind, op.Target, err)
	}
	return op
}

// console returns what the VM's console shows now.
func (d *Daemon) console(vm string) string {
	d.t.Helper()
	rc, err := d.C.Console(ctxT(d.t, 30*time.Second), vm, client.ConsoleOptions{})
	if err != nil {
		d.t.Fatalf("console %s: %v", vm, err)
	}
	defer rc.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(rc)
	return b.String()
}

// waitConsole follows the console from offset until a line matches re,
// and returns that line.
func (d *Daemon) waitConsole(vm, re string, offset int64, timeout time.Duration) string {
	d.t.Helper()
	pat := regexp.MustCompile(re)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	rc, err := d.C.Console(ctx, vm, client.ConsoleOptions{Follow: true, Offset: offset})
	if err != nil {
		d.t.Fatalf("console %s: %v", vm, err)
	}
	defer rc.Close()
	sc := bufio.NewScanner(rc)
	for sc.Scan() {
		if pat.MatchString(sc.Text()) {
			return sc.Text()
		}
	}
	d.t.Fatalf("vm %s: console did not show %q within %s; it shows:\n%s", vm, re, timeout, d.console(vm))
	return ""
}

// guestWait bounds a wait for a guest's console line. A test guest boots
// in 5-6 s under TCG on a quiet machine, but the suite runs tests side by
// side (concurrent) and CI machines are shared: at load 11 one took over
// a minute. A bound only decides how soon a real hang fails.
const guestWait = 3 * time.Minute

var tickRE = regexp.MustCompile(`tick (\d+) uptime=([0-9.]+)`)

// lastTick returns the last heartbeat number the console shows (0 if none).
func lastTick(consoleText string) int {
	m := tickRE.FindAllStringSubmatch(consoleText, -1)
	if len(m) == 0 {
		return 0
	}
	var n int
	fmt.Sscan(m[len(m)-1][1], &n)
	return n
}

// virsh runs virsh on the system libvirtd.
func virsh(t *testing.T, args ...string) (string, error) {
	out, err := exec.Command("virsh", append([]string{"-q", "-c", "qemu:///system"}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// domainState asks libvirt directly, not godwit.
func domainState(t *testing.T, name string) string {
	out, err := virsh(t, "domstate", name)
	if err != nil {
		return "absent"
	}
	return out
}

// eventually polls f until it returns true or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func sha(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("sha256sum", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(out))[0]
}

func atoi(s string) int {
	var n int
	fmt.Sscan(s, &n)
	return n
}

// syncBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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

// metricValue finds one sample in the Prometheus text, -1 when absent.
// hostLabelRE is the host label with what separates it from the others.
var hostLabelRE = regexp.MustCompile(`\{host="[^"]*"\}|,?host="[^"]*",?`)

// withoutHost drops the label every sample carries, host="NAME", which
// the series the tests name leave out.
func withoutHost(text string) string {
	return hostLabelRE.ReplaceAllStringFunc(text, func(m string) string {
		if strings.HasPrefix(m, ",") && strings.HasSuffix(m, ",") {
			return ","
		}
		return ""
	})
}

func metricValue(text, series string) float64 {
	for _, l := range strings.Split(withoutHost(text), "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// eventLog follows the daemon's events in the background.
type eventLog struct {
	mu     sync.Mutex
	events []api.Event
}

func (l *eventLog) has(f func(api.Event) bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.events {
		if f(e) {
			return true
		}
	}
	return false
}

func follow(t *testing.T, c *client.Client, vm string) *eventLog {
	l := &eventLog{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		_ = c.Events(ctx, client.EventsOptions{VM: vm}, func(e api.Event) error {
			l.mu.Lock()
			l.events = append(l.events, e)
			l.mu.Unlock()
			return nil
		})
	}()
	time.Sleep(300 * time.Millisecond) // let the stream subscribe
	return l
}

func lifecycle(vm, event, detail string) func(api.Event) bool {
	return func(e api.Event) bool {
		return e.VM == vm && e.Lifecycle != nil && e.Lifecycle.Event == event && (detail == "" || e.Lifecycle.Detail == detail)
	}
}

// A real guest shows in the metrics with real counters, its lifecycle in
// the event stream, and a stop behind godwit's back in the health checks
// (exit 2) until it runs again.
func TestMonitoringRealGuest(t *testing.T) {
	d := StartDaemon(t)
	name := "e2e-mon-" + uniq()
	ev := follow(t, d.C, name)
	op := d.createVM(guestSpec(t, name, "diskcounter=1"), true)
	var sr api.StartResult
	_ = json.Unmarshal(op.Result, &sr)
	d.waitConsole(name, `GODWIT-GUEST-UP`, 0, 3*time.Minute)
	d.waitConsole(name, `tick 2 `, 0, guestWait) // the disk counter wrote to vda

	eventually(t, 30*time.Second, "a started event", func() bool { return ev.has(lifecycle(name, "started", "booted")) })
	if !ev.has(func(e api.Event) bool {
		return e.Operation != nil && e.Operation.Kind == "vm.create" && e.Operation.State == api.OpSucceeded
	}) {
		t.Error("no event for the create operation's success")
	}

	text, err := d.C.Metrics(ctxT(t, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	vm := `{vm="` + name + `"}`
	if v := metricValue(text, `godwit_vm_state{state="running",vm="`+name+`"}`); v != 1 {
		t.Errorf("state running = %v", v)
	}
	for _, s := range []string{"godwit_vm_cpu_seconds_total" + vm, "godwit_vm_memory_rss_bytes" + vm, "godwit_vm_memory_max_bytes" + vm,
		`godwit_vm_disk_write_bytes_total{disk="vda",vm="` + name + `"}`, `godwit_vm_disk_read_ops_total{disk="vda",vm="` + name + `"}`} {
		if v := metricValue(text, s); v <= 0 {
			t.Errorf("%s = %v, want > 0", s, v)
		}
	}
	if v := metricValue(text, "godwit_vm_vcpus"+vm); v != 1 {
		t.Errorf("vcpus = %v", v)
	}
	for _, s := range []string{"godwit_libvirt_up", "godwit_host_memory_free_bytes"} {
		if v := metricValue(text, s); v <= 0 {
			t.Errorf("%s = %v", s, v)
		}
	}
	if !regexp.MustCompile(`godwit_pool_capacity_bytes\{pool="godwit-[0-9a-f]+"\} [0-9.e+]+`).MatchString(withoutHost(text)) {
		t.Error("no pool capacity metric")
	}

	// top: two samples, rates; JSON lines off a terminal.
	out := d.MustCLI("top", "--once", "--interval", "1s", "--vm", name, "-o", "json")
	var row struct {
		Name       string  `json:"name"`
		CPUPercent float64 `json:"cpuPercent"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &row); err != nil || row.Name != name || row.CPUPercent <= 0 {
		t.Errorf("top --once -o json: %q (%v)", out, err)
	}
	if out := d.MustCLI("top", "-n", "1", "--interval", "500ms"); !strings.Contains(out, "%CPU") || !strings.Contains(out, name) || strings.Contains(out, "\x1b[") {
		t.Errorf("top plain output:\n%q", out)
	}

	if out, errOut, code := d.CLI("host", "check"); code != 0 || !strings.HasPrefix(out, "OK") {
		t.Fatalf("host check on a healthy host: exit %d\n%s%s", code, out, errOut)
	}
	// Pulled out from under godwit: libvirt says destroyed.
	if out, err := virsh(t, "destroy", name); err != nil {
		t.Fatalf("virsh destroy: %v %s", err, out)
	}
	eventually(t, 30*time.Second, "a stopped event", func() bool { return ev.has(lifecycle(name, "stopped", "destroyed")) })
	out, _, code := d.CLI("host", "check", "--only", "vm-stopped-unexpectedly")
	if code != 2 || !strings.HasPrefix(out, "CRITICAL") || !strings.Contains(out, name) {
		t.Fatalf("host check after a stop behind godwit's back: exit %d\n%s", code, out)
	}
	text, _ = d.C.Metrics(ctxT(t, 30*time.Second))
	if v := metricValue(text, "godwit_vm_stopped_unexpectedly"+vm); v != 1 {
		t.Errorf("godwit_vm_stopped_unexpectedly = %v", v)
	}
	// Started again, then stopped through godwit: healthy.
	d.waitOp(d.C.StartVM(ctxT(t, time.Minute), name))
	d.waitOp(d.C.StopVM(ctxT(t, time.Minute), name, api.StopRequest{Force: true}))
	if out, _, code := d.CLI("host", "check", "--only", "vm-stopped-unexpectedly"); code != 0 {
		t.Fatalf("host check after a stop godwit was asked for: exit %d\n%s", code, out)
	}
	if !ev.has(lifecycle(name, "stopped", "destroyed")) {
		t.Error("no stopped event")
	}
	if _, err := d.C.HostChecks(ctxT(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
}

// godwit events resumes after a dropped connection: the CLI is killed and
// started again with --after the last id it printed.
func TestEventsCLIResume(t *testing.T) {
	d := StartDaemon(t)
	name := "e2e-ev-" + uniq()
	d.createVM(guestSpec(t, name), false)
	ops, err := d.C.ListOperations(ctxT(t, 10*time.Second), client.OperationFilter{Target: "vm/" + name})
	if err != nil || len(ops) == 0 {
		t.Fatal(ops, err)
	}
	// Replay from the start of what the daemon keeps: 'lost' first (the id
	// is older than anything kept), then the create.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var lines []api.Event
	errStop := errors.New("stop")
	err = d.C.Events(ctx, client.EventsOptions{VM: name, LastEventID: 1}, func(e api.Event) error {
		lines = append(lines, e)
		if e.Operation != nil && e.Operation.State.Final() {
			return errStop
		}
		return nil
	})
	if !errors.Is(err, errStop) || lines[0].Type != api.EventLost {
		t.Fatalf("replay: %v, %+v", err, lines)
	}
	last := lines[len(lines)-1].ID
	d.waitOp(d.C.StartVM(ctxT(t, time.Minute), name))
	out, errOut, code := d.CLIWithTimeout(5*time.Second, "events", "--vm", name, "--after", strconv.FormatUint(last, 10), "-o", "json")
	if !strings.Contains(out, `"event":"started"`) || !strings.Contains(out, `"kind":"vm.start"`) {
		t.Fatalf("events --after: exit %d\n%s%s", code, out, errOut)
	}
}

// CLIWithTimeout runs a command that follows (events, top) and interrupts
// it after timeout, as Ctrl-C would.
func (d *Daemon) CLIWithTimeout(timeout time.Duration, args ...string) (stdout, stderr string, code int) {
	d.t.Helper()
	cmd := exec.Command(godwitBin, args...)
	cmd.Env = append(os.Environ(), "GODWIT_SOCKET="+d.Socket)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	timer := time.AfterFunc(timeout, func() { _ = cmd.Process.Signal(os.Interrupt) })
	defer timer.Stop()
	err := cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	}
	return o.String(), e.String(), code
}

// libvirtd going away: libvirt_up 0, the libvirtd check critical, /readyz
// 503, /healthz 200; when it is back the daemon subscribes to its events
// again, so a start afterwards still reaches the event stream.
func TestMonitoringThroughLibvirtOutage(t *testing.T) {
	testenv.RequireLibvirt(t)
	proxy := startProxy(t, filepath.Join(t.TempDir(), "lv.sock"), testenv.LibvirtSocket)
	d := StartDaemon(t, "--libvirt", "qemu+unix:///system?socket="+proxy.path)
	name := "e2e-mdown-" + uniq()
	d.createVM(guestSpec(t, name), false)
	ev := follow(t, d.C, name)
	raw := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", d.Socket)
	}}}
	status := func(path string) int {
		resp, err := raw.Get("http://godwit" + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	eventually(t, 30*time.Second, "/readyz 200", func() bool { return status("/readyz") == 200 })

	proxy.cut()
	eventually(t, 30*time.Second, "libvirt_up 0", func() bool {
		text, err := d.C.Metrics(ctxT(t, 30*time.Second))
		return err == nil && metricValue(text, "godwit_libvirt_up") == 0
	})
	if s := status("/readyz"); s != 503 {
		t.Errorf("/readyz with libvirt down: %d", s)
	}
	if s := status("/healthz"); s != 200 {
		t.Errorf("/healthz with libvirt down: %d", s)
	}
	if out, _, code := d.CLI("host", "check", "--only", "libvirtd"); code != 2 || !strings.HasPrefix(out, "CRITICAL") {
		t.Errorf("host check with libvirt down: exit %d\n%s", code, out)
	}

	proxy.restore()
	eventually(t, 60*time.Second, "/readyz 200 again", func() bool { return status("/readyz") == 200 })
	// The event subscription comes back within seconds of libvirt.
	eventually(t, 60*time.Second, "a started event after the outage", func() bool {
		if !ev.has(lifecycle(name, "started", "")) {
			if v, err := d.C.GetVM(ctxT(t, 10*time.Second), name); err == nil && v.State == api.VMRunning {
				d.waitOp(d.C.StopVM(ctxT(t, time.Minute), name, api.StopRequest{Force: true}))
			}
			time.Sleep(2 * time.Second) // give the subscription time, then start
			d.waitOp(d.C.StartVM(ctxT(t, time.Minute), name))
			time.Sleep(time.Second)
		}
		return ev.has(lifecycle(name, "started", ""))
	})
}

// godwit events keeps following across a daemon restart: it reconnects,
// says events may have been lost, and prints what happens next.
func TestEventsCLIAcrossRestart(t *testing.T) {
	d := StartDaemon(t)
	name := "e2e-evr-" + uniq()
	cmd := exec.Command(godwitBin, "events", "--vm", name)
	cmd.Env = append(os.Environ(), "GODWIT_SOCKET="+d.Socket)
	var out, errOut syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	})
	time.Sleep(time.Second) // connected
	d.createVM(guestSpec(t, name), false)
	eventually(t, 30*time.Second, "godwit events to print the create", func() bool {
		return strings.Contains(out.String(), "vm.create")
	})
	d.Stop(syscall.SIGTERM)
	d.Start()
	d.waitOp(d.C.StartVM(ctxT(t, time.Minute), name))
	started := regexp.MustCompile(`vm +` + name + ` +started`)
	eventually(t, 60*time.Second, "godwit events to print the start after the restart", func() bool {
		return started.MatchString(out.String())
	})
	if !strings.Contains(out.String(), "lost") || !strings.Contains(out.String(), "vm.start") {
		t.Errorf("events output:\n%s\nstderr:\n%s", out.String(), errOut.String())
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("godwit events after Ctrl-C: %v\n%s", err, errOut.String())
	}
}

package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/health"
	"github.com/godwit-project/godwit/internal/hypervisor"
)

// scrape returns /metrics and the libvirt calls it made.
func (td *testDaemon) scrape() (string, []string) {
	td.t.Helper()
	before := len(td.f.Calls())
	status, h, body := td.do("GET", "/metrics", "")
	if status != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
		td.t.Fatalf("/metrics: %d %s %.200s", status, h.Get("Content-Type"), body)
	}
	return dropHostLabel(td.t, string(body), "testhost"), td.f.Calls()[before:]
}

// dropHostLabel checks that every sample carries the daemon's host label
// (the metrics of a cluster's hosts are told apart by it) and returns
// the text without it, for the tests to compare.
func dropHostLabel(t *testing.T, text, host string) string {
	t.Helper()
	label := `host="` + host + `"`
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			if !strings.Contains(l, label) {
				t.Fatalf("a sample without %s: %s", label, l)
			}
			l = strings.NewReplacer("{"+label+"}", "", label+",", "", ","+label, "").Replace(l)
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

func wantLines(t *testing.T, text string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !slices.Contains(strings.Split(text, "\n"), l) {
			t.Errorf("metrics lack %q", l)
		}
	}
}

func TestMetrics(t *testing.T) {
	td := newDaemon(t)
	ctx := context.Background()
	td.createVM(td.spec("web1"), true)
	td.createVM(td.spec("web2"), false)
	td.createVM(td.spec("web3"), true)
	td.f.SetCounters("web1", hypervisor.DomainStats{
		CPUTime: 12_500_000_000, MemoryRSS: 100 << 20,
		Disks: []hypervisor.DiskStats{{Name: "vda", ReadBytes: 4096, WriteBytes: 8192, ReadOps: 1, WriteOps: 2}},
		NICs:  []hypervisor.NICStats{{Name: "vnet0", RxBytes: 1000, TxBytes: 2000, RxPackets: 10, TxPackets: 20}},
	})
	if err := td.f.SetState("web3", hypervisor.StateCrashed, "panicked"); err != nil {
		t.Fatal(err)
	}
	// A domain godwit did not create shows too, marked unmanaged.
	if _, err := td.f.Define(ctx, `<domain type="qemu"><name>other</name><memory unit="KiB">131072</memory><vcpu>2</vcpu></domain>`); err != nil {
		t.Fatal(err)
	}
	// (An operation's end reaches the metrics just after its waiters.)
	var text string
	var calls []string
	waitFor(t, "three creates in the metrics", func() bool {
		text, calls = td.scrape()
		return strings.Contains(text, `godwit_operations_total{kind="vm.create",result="succeeded"} 3`)
	})
	wantLines(t, text,
		`godwit_libvirt_up 1`,
		`godwit_vm_state{state="running",vm="web1"} 1`,
		`godwit_vm_state{state="stopped",vm="web2"} 1`,
		`godwit_vm_state{state="crashed",vm="web3"} 1`,
		`godwit_vm_state{state="stopped",vm="other"} 1`,
		`godwit_vm_cpu_seconds_total{vm="web1"} 12.5`,
		`godwit_vm_vcpus{vm="web1"} 1`,
		`godwit_vm_memory_current_bytes{vm="web1"} 6.7108864e+07`,
		`godwit_vm_memory_max_bytes{vm="other"} 1.34217728e+08`,
		`godwit_vm_memory_rss_bytes{vm="web1"} 1.048576e+08`,
		`godwit_vm_disk_read_bytes_total{disk="vda",vm="web1"} 4096`,
		`godwit_vm_disk_write_bytes_total{disk="vda",vm="web1"} 8192`,
		`godwit_vm_disk_read_ops_total{disk="vda",vm="web1"} 1`,
		`godwit_vm_disk_write_ops_total{disk="vda",vm="web1"} 2`,
		`godwit_vm_network_receive_bytes_total{interface="vnet0",vm="web1"} 1000`,
		`godwit_vm_network_transmit_bytes_total{interface="vnet0",vm="web1"} 2000`,
		`godwit_vm_network_receive_packets_total{interface="vnet0",vm="web1"} 10`,
		`godwit_vm_network_transmit_packets_total{interface="vnet0",vm="web1"} 20`,
		`godwit_host_vms{state="running"} 1`,
		`godwit_host_vms{state="stopped"} 2`,
		`godwit_host_vms{state="crashed"} 1`,
		`godwit_host_vms{state="paused"} 0`,
		`godwit_host_memory_free_bytes 6.442450944e+09`,
		`godwit_pool_capacity_bytes{pool="godwit-`+poolSuffix(t, td)+`"} 1.073741824e+11`,
		`godwit_operations_total{kind="vm.create",result="succeeded"} 3`,
		`godwit_check_status{check="libvirtd"} 0`,
		`godwit_check_status{check="vm-stopped-unexpectedly"} 2`,
		`godwit_vm_stopped_unexpectedly{vm="web3"} 1`,
	)
	for _, w := range []string{`godwit_vm_info{managed="false",uuid=`, `godwit_vm_info{managed="true",uuid=`,
		`godwit_api_request_duration_seconds_count{code="202",method="POST",route="create-vm"} 3`,
		`godwit_migration_duration_seconds_bucket`, `godwit_backup_bytes_bucket`, `godwit_build_info{version=`} {
		if !strings.Contains(text, w) {
			t.Errorf("metrics lack %s", w)
		}
	}
	// A stopped VM has no counters.
	if strings.Contains(text, `godwit_vm_cpu_seconds_total{vm="web2"}`) {
		t.Error("a stopped VM reports CPU time")
	}
	if n := countCalls(calls, "DomainStats"); n != 1 {
		t.Errorf("one scrape made %d DomainStats calls: %v", n, calls)
	}

	// libvirt down: up 0, libvirtd critical, the daemon still answers.
	td.f.SetDown(true)
	text, _ = td.scrape()
	wantLines(t, text, `godwit_libvirt_up 0`, `godwit_check_status{check="libvirtd"} 2`)
	td.f.SetDown(false)
}

func poolSuffix(t *testing.T, td *testDaemon) string {
	h, err := td.c.Host(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(h.Pool, "godwit-")
}

func countCalls(calls []string, method string) int {
	n := 0
	for _, c := range calls {
		if c == method || strings.HasPrefix(c, method+" ") {
			n++
		}
	}
	return n
}

// A scrape costs the same libvirt calls with 100 VMs as with 1: one bulk
// stats call, never one per VM.
func TestScrapeCallsDoNotGrowWithVMs(t *testing.T) {
	td := newDaemon(t)
	ctx := context.Background()
	define := func(i int) {
		if _, err := td.f.Define(ctx, fmt.Sprintf(`<domain type="qemu"><name>vm%03d</name><memory unit="KiB">65536</memory><vcpu>1</vcpu></domain>`, i)); err != nil {
			t.Fatal(err)
		}
	}
	define(0)
	td.waitReady()
	_, one := td.scrape()
	for i := 1; i < 100; i++ {
		define(i)
	}
	text, hundred := td.scrape()
	if strings.Count(text, "godwit_vm_state{") != 100 {
		t.Fatalf("want 100 VMs in the metrics, got %d", strings.Count(text, "godwit_vm_state{"))
	}
	one, hundred = slices.DeleteFunc(one, isPing), slices.DeleteFunc(hundred, isPing) // the daemon's own liveness loop
	if !slices.Equal(one, hundred) {
		t.Fatalf("a scrape with 1 VM called %v, with 100 VMs %v", one, hundred)
	}
	if countCalls(hundred, "DomainStats") != 1 {
		t.Fatalf("calls per scrape: %v", hundred)
	}
}

func isPing(c string) bool { return c == "Ping" }

// waitReady waits until /readyz says the host is up.
func (td *testDaemon) waitReady() {
	td.t.Helper()
	waitFor(td.t, "/readyz", func() bool {
		status, _, _ := td.do("GET", "/readyz", "")
		return status == 200
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestReadyzAndChecks(t *testing.T) {
	td := newDaemon(t)
	td.waitReady()
	status, _, body := td.do("GET", "/readyz", "")
	if status != 200 || !strings.Contains(string(body), "ready") {
		t.Fatalf("/readyz: %d %s", status, body)
	}
	td.createVM(td.spec("web1"), true)
	var rep api.HealthReport
	status, _, body = td.do("GET", "/v1/host/checks", "")
	if err := json.Unmarshal(body, &rep); status != 200 || err != nil || rep.Status != api.CheckOK || len(rep.Checks) != len(health.Names) {
		t.Fatalf("checks: %d %s", status, body)
	}
	// The guest powers off by itself: critical until it runs again.
	if err := td.f.SetState("web1", hypervisor.StateShutoff, "shut down"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "an unexpected stop to show", func() bool {
		_, _, body = td.do("GET", "/v1/host/checks", "")
		return json.Unmarshal(body, &rep) == nil && rep.Status == api.CheckCritical
	})
	if !strings.Contains(string(body), "web1") {
		t.Fatalf("the report does not name web1: %s", body)
	}
	op, err := td.c.StartVM(context.Background(), "web1")
	if err != nil {
		t.Fatal(err)
	}
	td.wait(op)
	// A stop godwit was asked for is no surprise.
	op, err = td.c.StopVM(context.Background(), "web1", api.StopRequest{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	td.wait(op)
	_, _, body = td.do("GET", "/v1/host/checks", "")
	if json.Unmarshal(body, &rep) != nil || rep.Status != api.CheckOK {
		t.Fatalf("after a stop godwit was asked for: %s", body)
	}

	td.f.SetDown(true)
	status, h, body := td.do("GET", "/readyz", "")
	wantError(t, "/readyz with libvirt down", status, h, body, 503, "not ready")
	if status, _, _ := td.do("GET", "/healthz", ""); status != 200 {
		t.Fatalf("/healthz with libvirt down: %d", status)
	}
	td.f.SetDown(false)
}

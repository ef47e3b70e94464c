package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
	goldenfile "github.com/godwit-project/godwit/internal/golden"
)

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	goldenfile.Compare(t, filepath.Join("testdata", name), got)
}

// fakeDaemon answers the commands' calls with canned JSON on a unix
// socket, and records the requests it got with their JSON bodies.
type fakeDaemon struct {
	answers  map[string]any // "GET /v1/vms" or "GET /v1/volumes?pool=x" -> JSON answer
	requests []string
}

// upload answers a volume upload with the transfer of what it received.
type upload struct{}

// download answers a volume download with data and its SHA-256 trailer.
type download struct{ data string }

func (d *fakeDaemon) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := r.Method + " " + r.URL.Path
	if r.URL.RawQuery != "" {
		key += "?" + r.URL.RawQuery
	}
	body, _ := io.ReadAll(r.Body)
	if len(body) > 0 {
		d.requests = append(d.requests, key+" "+strings.TrimSpace(string(body)))
	} else {
		d.requests = append(d.requests, key)
	}
	v, ok := d.answers[key]
	switch a := v.(type) {
	case upload:
		sum := sha256.Sum256(body)
		v = api.Transfer{Bytes: int64(len(body)), SHA256: hex.EncodeToString(sum[:]), Elapsed: 1234567 * time.Microsecond}
	case download:
		sum := sha256.Sum256([]byte(a.data))
		w.Header().Set("Trailer", api.HeaderSHA256)
		w.Header().Set("X-Godwit-Size", fmt.Sprint(len(a.data)))
		_, _ = io.WriteString(w, a.data)
		w.Header().Set(api.HeaderSHA256, hex.EncodeToString(sum[:]))
		return
	}
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		_ = json.NewEncoder(w).Encode(api.StatusError{Message: "no such thing: " + r.URL.Path, Code: http.StatusNotFound})
		return
	}
	if v == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	_ = json.NewEncoder(w).Encode(v)
}

// startFakeDaemon serves d on a socket in a temporary directory and points
// GODWIT_SOCKET at it.
func startFakeDaemon(t *testing.T, d *fakeDaemon) {
	t.Helper()
	dir, err := os.MkdirTemp("", "godwit-cli")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "s")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: d}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	t.Setenv("GODWIT_SOCKET", sock)
	t.Setenv("GODWIT_HOST", "")
	t.Setenv("GODWIT_TOKEN", "")
	t.Setenv("GODWIT_TLS_DIR", "")
}

func fakeAnswers() map[string]any {
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	web1 := api.VM{
		Name: "web1", UUID: "6f1c", State: api.VMRunning, Managed: true, Host: "h1", ConsoleLog: "/var/log/web1.log",
		Spec: &api.VMSpec{Name: "web1", CPUs: 2, Memory: 1 << 30, Boot: &api.Boot{Kernel: "/srv/vmlinuz", Cmdline: "console=ttyS0"},
			Autostart: true, Labels: map[string]string{"app": "web"}},
		Disks: []api.VMDisk{
			{Name: "root", Target: "vda", Pool: "default", Volume: "web1-root", Size: 10 << 30, Image: "debian"},
			{Name: "data", Target: "vdb", Pool: "default", Volume: "data", Size: 1 << 30, External: true},
		},
		NICs: []api.VMNIC{{Network: "lab", MAC: "52:54:00:00:00:11", Model: "virtio", Device: "vnet0",
			Addresses: []api.Address{{IP: "10.20.30.11/24", Source: "lease"}, {IP: "fe80::1/64", Source: "agent"}}}},
	}
	ghost := api.VM{Name: "ghost", State: api.VMStopped, Managed: false}
	old := api.VM{Name: "old", UUID: "8f0a", State: api.VMRunning, Managed: true, Adopted: true, Host: "h1",
		Spec:  &api.VMSpec{Name: "old", CPUs: 1, Memory: 256 << 20, Disks: []api.Disk{{Name: "vda", Volume: "images/old.qcow2"}}},
		Disks: []api.VMDisk{{Name: "vda", Target: "vda", Pool: "images", Volume: "old.qcow2", Size: 8 << 30, External: true}},
		Kept:  []string{`<graphics type="vnc" port="-1" autoport="yes"/>`, `<input type="tablet" bus="usb"/>`}}
	debian := api.Image{Name: "debian", Format: "qcow2", VirtualSize: 4 << 30, ActualSize: 700 << 20, Path: "/var/lib/godwit/images/debian.qcow2",
		Source: "debootstrap bookworm", Boot: &api.Boot{Kernel: "/k", Initrd: "/i"}, UsedBy: []string{"web1"}}
	tiny := api.Image{Name: "tiny", Format: "raw", VirtualSize: 1 << 20, ActualSize: 1 << 20, Path: "/var/lib/godwit/images/tiny.raw",
		Backing: []string{"/a", "/b"}, SHA256: "abc"}
	pool := api.Pool{Name: "default", Type: "dir", Path: "/var/lib/godwit/disks", Active: true, Default: true, Autostart: true,
		Capacity: 100 << 30, Allocation: 40 << 30, Available: 60 << 30, Volumes: 2}
	nfs := api.Pool{Name: "nfs", Type: "netfs", Path: "/srv/nfs", Source: "nas:/vms", Shared: true}
	lab := api.Network{Name: "lab", Managed: true, Libvirt: "gw-lab", Type: api.NetworkNAT, Bridge: "gwbr1", Subnet: "10.20.30.0/24",
		Gateway: "10.20.30.1", Active: true, Autostart: true, VMs: []string{"web1"},
		DHCP:   &api.DHCP{Start: "10.20.30.100", End: "10.20.30.199", Hosts: []api.DHCPHost{{MAC: "52:54:00:00:00:11", IP: "10.20.30.11", Name: "web1"}}},
		Leases: []api.Lease{{MAC: "52:54:00:00:00:11", IP: "10.20.30.11/24", Hostname: "web1", Expires: at}}}
	ext := api.Network{Name: "ext", Libvirt: "ext", Bridge: "virbr0"}
	vols := []api.Volume{
		{Pool: "default", Name: "web1-root", Path: "/var/lib/godwit/disks/web1-root", Format: "qcow2", Capacity: 10 << 30, Allocation: 1 << 30,
			Backing: "/var/lib/godwit/images/debian.qcow2", UsedBy: []string{"web1"}},
		{Pool: "default", Name: "data", Path: "/var/lib/godwit/disks/data", Capacity: 1 << 30},
	}
	ops := []api.Operation{
		{ID: "op1", Kind: "vm.create", Target: "vm/web1", State: api.OpSucceeded, FinishedAt: time.Time{}.Add(1500 * time.Millisecond),
			Result: json.RawMessage(`{"consoleOffset":0}`)},
		{ID: "op2", Kind: "image.import", Target: "image/tiny", State: api.OpFailed, Error: "checksum mismatch",
			Progress: api.Progress{Message: "copying", Current: 5, Total: 10, Unit: "bytes"}, FinishedAt: time.Time{}.Add(time.Minute)},
	}
	self := api.Host{Name: "h1", URL: "https://h1:8443", CPUs: 4, CPUModel: "host", Memory: 8 << 30, MemoryFree: 4 << 30, VMs: 1,
		Libvirt: api.Libvirt{Version: "9.0.0", QEMUVersion: "7.2.0"}}
	answers := map[string]any{
		"GET /v1/vms":                                     api.VMList{VMs: []api.VM{web1, ghost}},
		"GET /v1/vms/web1":                                web1,
		"GET /v1/vms/ghost":                               ghost,
		"GET /v1/vms/old":                                 old,
		"POST /v1/vms/ghost/adopt":                        api.AdoptResult{DryRun: true, VM: old},
		"POST /v1/vms/old/release":                        api.VM{Name: "old", State: api.VMRunning},
		"GET /v1/images":                                  api.ImageList{Images: []api.Image{debian, tiny}},
		"GET /v1/images/debian":                           debian,
		"GET /v1/images/tiny":                             tiny,
		"DELETE /v1/images/tiny":                          nil,
		"GET /v1/pools":                                   api.PoolList{Pools: []api.Pool{pool, nfs}},
		"GET /v1/pools/default":                           pool,
		"GET /v1/pools/nfs":                               nfs,
		"DELETE /v1/pools/nfs":                            nil,
		"GET /v1/networks":                                api.NetworkList{Networks: []api.Network{lab, ext}},
		"GET /v1/networks/lab":                            lab,
		"GET /v1/networks/ext":                            ext,
		"DELETE /v1/networks/lab":                         nil,
		"GET /v1/volumes":                                 api.VolumeList{Volumes: vols},
		"GET /v1/volumes?pool=default":                    api.VolumeList{Volumes: vols[:1]},
		"GET /v1/volumes?pool=empty":                      map[string]any{},
		"GET /v1/pools/default/volumes/data":              vols[1],
		"DELETE /v1/pools/default/volumes/data":           nil,
		"GET /v1/operations":                              api.OperationList{Operations: ops},
		"GET /v1/operations?active=true&target=vm%2Fweb1": api.OperationList{Operations: []api.Operation{}},
		"GET /v1/operations/op1":                          ops[0],
		"GET /v1/operations/op2":                          ops[1],
		"GET /v1/tokens":                                  api.TokenList{Tokens: []api.Token{{ID: "3f9a", Name: "ci", Scope: api.ScopeAdmin}}},
		"DELETE /v1/tokens/ci":                            api.Token{ID: "3f9a", Name: "ci", Scope: api.ScopeAdmin},
		"GET /v1/audit?limit=50": api.AuditList{Entries: []api.AuditEntry{
			{Time: at, Principal: "local:uid=0", Method: "POST", Path: "/v1/vms", Query: "start=true", Status: 202, Operation: "op1", Target: "vm/web1"},
			{Time: at, Principal: "token:ci", Method: "DELETE", Path: "/v1/images/debian", Status: 409, Error: "image debian is used by web1"},
		}},
		"GET /v1/audit?limit=1": api.AuditList{},
		"GET /v1/hosts": api.PeerList{Self: self, Peers: []api.Peer{
			{Name: "h2", URL: "https://h2:8443", Reachable: true, Host: &self},
			{Name: "h3", URL: "https://h3:8443", Error: "connection refused"},
		}},
		"DELETE /v1/hosts/h2": nil,
		"GET /v1/host/checks": api.HealthReport{Status: api.CheckCritical, Checks: []api.Check{
			{Name: "libvirtd", Status: api.CheckOK, Message: "libvirtd answers"},
			{Name: "pool-space", Status: api.CheckWarning, Message: "pool default is 90% full", Items: []string{"default"}},
			{Name: "failed-backup", Status: api.CheckCritical, Message: "the last backup of web1 failed", Items: []string{"web1"}},
		}},

		// what the commands that change something get
		"POST /v1/pools":                                                 pool,
		"POST /v1/networks":                                              lab,
		"POST /v1/pools/default/volumes":                                 vols[1],
		"POST /v1/pools/default/volumes/data/resize":                     vols[1],
		"POST /v1/pools/default/volumes/data/clone":                      running("op3", "volume.clone", "volume/default/data"),
		"PUT /v1/pools/default/volumes/data/data":                        upload{},
		"PUT /v1/pools/default/volumes/data/data?create=true&format=raw": upload{},
		"GET /v1/pools/default/volumes/data/data":                        download{"some bytes\n"},
		"POST /v1/images":                                                running("op4", "image.import", "image/tiny"),
		"POST /v1/images/build":                                          running("op4", "image.build", "image/tiny"),
		"POST /v1/images/debian/convert":                                 running("op4", "image.convert", "image/tiny"),
		"POST /v1/vms":                                                   running("op5", "vm.create", "vm/web1"),
		"POST /v1/vms?start=true":                                        running("op5", "vm.create", "vm/web1"),
		"PUT /v1/vms/web1":                                               running("op6", "vm.apply", "vm/web1"),
		"GET /v1/host/tune?profile=virtual-host": api.TuneReport{Profile: "virtual-host", Status: "critical", Items: []api.TuneItem{
			{Name: "kvm", Current: "not usable", Recommended: "usable", Status: "critical", Why: "no usable KVM: the daemon runs VMs under TCG: kvm_pvm"},
			{Name: "vm.swappiness", Current: "60", Recommended: "10", Status: "warning", Why: "keep VMs in RAM", Path: "/proc/sys/vm/swappiness"}}},
		"POST /v1/host/tune/apply":               api.TuneResult{DryRun: true, Changes: []api.TuneChange{{Name: "vm.swappiness", Path: "/proc/sys/vm/swappiness", From: "60", To: "10"}}},
		"POST /v1/host/tune/revert":              api.TuneResult{Changes: []api.TuneChange{{Name: "vm.swappiness", Path: "/proc/sys/vm/swappiness", From: "10", To: "60"}}},
		"POST /v1/vms/web1/set":                  running("op9", "vm.apply", "vm/web1"),
		"POST /v1/vms/web1/start":                running("op7", "vm.start", "vm/web1"),
		"POST /v1/vms/web1/stop":                 running("op7", "vm.stop", "vm/web1"),
		"POST /v1/vms/web1/reboot":               running("op7", "vm.reboot", "vm/web1"),
		"DELETE /v1/vms/web1?keepDisks=true":     running("op7", "vm.delete", "vm/web1"),
		"DELETE /v1/vms/web1":                    running("op7", "vm.delete", "vm/web1"),
		"POST /v1/vms/web1/kill":                 ghost,
		"POST /v1/vms/web1/nics":                 running("op8", "vm.nic.attach", "vm/web1"),
		"DELETE /v1/vms/web1/nics/lab":           running("op8", "vm.nic.detach", "vm/web1"),
		"POST /v1/vms/web1/disks":                web1,
		"DELETE /v1/vms/web1/disks/data":         web1,
		"POST /v1/tokens":                        api.NewToken{Token: api.Token{ID: "3f9a", Name: "ci", Scope: api.ScopeRead}, Secret: "gwt_3f9a_secret"},
		"POST /v1/host/token":                    api.JoinToken{Token: "join-token", ExpiresAt: at},
		"GET /v1/operations/op1/wait?timeout=30": ops[0],
		"GET /v1/operations/op2/wait?timeout=30": ops[1],
		"GET /v1/operations/op3/wait?timeout=30": done("op3", "volume.clone", "volume/default/data", nil),
		"GET /v1/operations/op4/wait?timeout=30": done("op4", "image.import", "image/tiny", nil),
		"GET /v1/operations/op5/wait?timeout=30": done("op5", "vm.create", "vm/web1", nil),
		"GET /v1/operations/op6/wait?timeout=30": done("op6", "vm.apply", "vm/web1", api.ApplyResult{VM: web1, Changes: []string{"memory: 512MiB -> 1GiB"}}),
		"GET /v1/operations/op7/wait?timeout=30": done("op7", "vm.start", "vm/web1", api.StartResult{ConsoleOffset: 7}),
		"GET /v1/operations/op8/wait?timeout=30": done("op8", "vm.nic.attach", "vm/web1", web1),
		"GET /v1/operations/op9/wait?timeout=30": done("op9", "vm.apply", "vm/web1", api.ApplyResult{VM: web1,
			Changes: []string{"cpus: 1 -> 2", "cpu.pin: vCPU 1 -> host CPUs 3"}, Live: []string{"cpus: 1 -> 2", "cpu.pin: vCPU 1 -> host CPUs 3"}}),
	}
	for key, v := range answers { // what progress polls for (without --quiet)
		if id, ok := strings.CutSuffix(strings.TrimPrefix(key, "GET /v1/operations/"), "/wait?timeout=30"); ok {
			answers["GET /v1/operations/"+id] = v
		}
	}
	return answers
}

func running(id, kind, target string) api.Operation {
	return api.Operation{ID: id, Kind: kind, Target: target, State: api.OpRunning}
}

func done(id, kind, target string, result any) api.Operation {
	o := api.Operation{ID: id, Kind: kind, Target: target, State: api.OpSucceeded, FinishedAt: time.Time{}.Add(time.Second)}
	if result != nil {
		o.Result, _ = json.Marshal(result)
	}
	return o
}

// TestCommandOutput pins what the read and delete commands print, with
// every output format, against testdata/commands.golden (go test -update
// rewrites it), and which calls they make.
func TestCommandOutput(t *testing.T) {
	local := time.Local
	time.Local = time.UTC
	t.Cleanup(func() { time.Local = local })
	d := &fakeDaemon{answers: fakeAnswers()}
	startFakeDaemon(t, d)

	formats := [][]string{nil, {"-q"}, {"-o", "json"}, {"-o", "yaml"}}
	var lines [][]string
	for _, cmd := range []string{
		"vm list", "vm ls", "image list", "pool list", "network list", "net ls", "volume list", "volume list --pool default",
		"volume list --pool empty", "op list", "op list --active --target vm/web1", "token list", "audit", "audit --limit 1",
		"host list", "vm nic list web1",
		"vm show web1", "vm show ghost", "vm show old", "image show debian", "image show tiny", "pool show default", "pool show nfs",
		"network show lab", "network show ext", "volume show default/data", "op show op1", "op show op2",
	} {
		for _, f := range formats {
			lines = append(lines, append(strings.Fields(cmd), f...))
		}
	}
	for _, cmd := range []string{
		"image delete tiny", "pool delete nfs", "network delete lab", "net rm lab", "volume delete default/data",
		"host remove h2", "token revoke ci", "token rm ci",
	} {
		lines = append(lines, strings.Fields(cmd), append(strings.Fields(cmd), "-q"))
	}
	for _, cmd := range []string{
		// errors: from the daemon, in the arguments, in the flags
		"vm show nope", "image show nope", "pool show nope", "network show nope", "volume show default/nope", "op show nope",
		"image delete nope", "pool delete nope", "network delete nope", "volume delete default/nope", "host remove nope",
		"volume show nope", "volume delete nope", "volume show", "pool delete", "image list extra", "vm list -o xml",
		"volume show nope -o xml", "op list --bogus", "vm nic list",
		// a client that cannot be made (--host without --tls-dir) after the arguments are read
		"--host https://h9:1 vm list", "--host https://h9:1 pool show x", "--host https://h9:1 volume show nope",
		"--host https://h9:1 volume show a/b", "--host https://h9:1 volume delete nope", "--host https://h9:1 image delete x",
	} {
		lines = append(lines, strings.Fields(cmd))
	}

	for _, cmd := range []string{
		// shell completion of names
		"vm show", "vm start", "vm show web1", "vm disk attach", "vm disk attach web1", "image show", "image convert",
		"pool show", "pool delete", "volume list --pool", "network show", "network delete", "vm nic attach web1 --network",
		"volume show", "volume clone default/data", "volume resize", "events --vm",
	} {
		lines = append(lines, append(append([]string{"__complete"}, strings.Fields(cmd)...), ""))
	}

	// commands that change something; SPEC, FILE and OUT stand for files
	for _, cmd := range []string{
		"pool create fast --path /srv/fast", "network create lab --subnet 10.20.30.0/24 --lease 52:54:00:00:00:11=10.20.30.11=web1",
		"volume create default/data --size 1GiB", "volume create default/data --size 1GiB --format raw",
		"volume resize default/data --size 2GiB", "volume clone default/data copy", "volume clone default/data other/copy",
		"volume clone default/data copy --no-wait", "volume upload default/data FILE", "volume upload default/data FILE --create --format raw",
		"volume download default/data -", "volume download default/data OUT",
		"image import /srv/tiny.raw --name tiny", "image import https://example.org/t.raw --name tiny --sha256 abc --no-wait",
		"image convert debian --format raw --name tiny", "image build debian --name tiny --size 2GiB",
		"vm create -f SPEC", "vm create -f SPEC --start", "vm create -f SPEC --no-wait", "vm apply -f SPEC",
		"vm set web1 --cpus 2 --pin 1:3", "vm set web1 --pin 1", "vm set web1",
		"vm adopt ghost --dry-run", "vm adopt ghost", "vm release old",
		"vm start web1", "vm stop web1", "vm reboot web1", "vm delete web1 --keep-disks", "vm rm web1 --no-wait", "vm kill web1",
		"vm nic attach web1 --network lab", "vm nic detach web1 lab", "vm disk attach web1 default/data", "vm disk detach web1 data",
		"token create --name ci", "host token", "op wait op1", "op wait op2",
		"host tune", "host tune --apply --dry-run", "host tune --apply", "host tune --revert", "host tune --dry-run", "host tune --apply --revert",
		"host check", "host check --only libvirtd", "host check --only pool-space", "host check --only libvirtd,failed-backup",
	} {
		for _, f := range [][]string{nil, {"-q"}, {"-o", "json"}} {
			lines = append(lines, append(strings.Fields(cmd), f...))
		}
	}
	for _, cmd := range []string{
		"volume create default/data", "volume create nope --size 1GiB", "volume create default/data --size lots",
		"--host https://h9:1 volume create default/data --size 1GiB", "--host https://h9:1 volume create default/data",
		"--host https://h9:1 volume create nope", "volume resize nope --size 1GiB", "volume clone nope copy",
		"--host https://h9:1 volume clone default/data copy", "--host https://h9:1 volume download default/data -",
		"--host https://h9:1 volume download nope -", "image import /srv/tiny.raw", "image convert debian --name x",
		"--host https://h9:1 image build debian --name tiny", "vm create", "vm apply -f SPEC --bogus", "vm nic attach web1",
		"vm start nope", "vm kill nope", "image build debian --name tiny --size lots",
		"host check --only nope", "--host https://h9:1 host check", "--socket /nonexistent/s host check",
	} {
		lines = append(lines, strings.Fields(cmd))
	}

	dir := t.TempDir()
	spec := filepath.Join(dir, "web1.yaml")
	file := filepath.Join(dir, "disk.raw")
	if err := os.WriteFile(spec, []byte("name: web1\ncpus: 1\nmemory: 128MiB\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, args := range lines {
		d.requests = nil
		real := make([]string, len(args))
		for i, a := range args {
			real[i] = strings.NewReplacer("SPEC", spec, "FILE", file, "OUT", filepath.Join(dir, "out.raw")).Replace(a)
		}
		code, stdout, stderr := run(t, real...)
		fmt.Fprintf(&b, "=== godwit %s\nexit %d, calls %s\n--- stdout\n%s--- stderr\n%s", strings.Join(args, " "), code,
			strings.Join(d.requests, ", "), stdout, stderr)
	}
	golden(t, "commands.golden", b.String())
}

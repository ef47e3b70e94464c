package migrate

import (
	"strings"
	"testing"

	"libvirt.org/go/libvirtxml"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/domainxml"
	"github.com/godwit-project/godwit/internal/hypervisor"
)

const liveXML = `<domain type='qemu'>
  <name>web1</name>
  <metadata><godwit:vm xmlns:godwit="https://godwit.dev/xmlns/vm/1"><godwit:owner>src</godwit:owner></godwit:vm></metadata>
  <os><type arch='x86_64' machine='pc'>hvm</type><kernel>/a/boot/111-vmlinuz</kernel><initrd>/a/boot/222-initrd.gz</initrd><cmdline>console=ttyS0</cmdline></os>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/a/pool/web1-root.qcow2'/>
      <backingStore type='file'><format type='qcow2'/><source file='/a/images/base.qcow2'/></backingStore>
      <target dev='vda' bus='virtio'/></disk>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/shared/web1-data.qcow2'/><target dev='vdb' bus='virtio'/></disk>
    <disk type='file' device='cdrom'><driver name='qemu' type='raw'/><source file='/a/seeds/web1.iso'/><target dev='hdc' bus='ide'/><readonly/></disk>
    <interface type='network'><mac address='52:54:00:11:22:33'/><source network='godwit-aaaa-default' bridge='gw-1234'/><model type='virtio'/></interface>
    <serial type='pty'><source path='/dev/pts/3'/><log file='/a/console/web1.log' append='on'/><target port='0'/></serial>
  </devices>
</domain>`

func TestRewriteXML(t *testing.T) {
	out, err := rewriteXML(liveXML, rewrite{
		disks: []api.MigrationDisk{
			{Name: "root", Target: "vda", DestPath: "/b/pool/web1-root.qcow2"},
			{Name: "data", Target: "vdb", Shared: true, DestPath: "/shared/web1-data.qcow2"},
		},
		nets:     map[string]string{"godwit-aaaa-default": "godwit-bbbb-default"},
		seedFrom: "/a/seeds/web1.iso", seedTo: "/b/seeds/web1.iso",
		console: "/b/console/web1.log", owner: "dst",
		boot: &api.Boot{Kernel: "/b/boot/111-vmlinuz", Initrd: "/b/boot/222-initrd.gz", Cmdline: "ignored"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var d libvirtxml.Domain
	if err := d.Unmarshal(out); err != nil {
		t.Fatal(err)
	}
	if d.OS.Kernel != "/b/boot/111-vmlinuz" || d.OS.Initrd != "/b/boot/222-initrd.gz" || d.OS.Cmdline != "console=ttyS0" {
		t.Errorf("boot files: kernel %q initrd %q cmdline %q", d.OS.Kernel, d.OS.Initrd, d.OS.Cmdline)
	}
	disks := d.Devices.Disks
	if disks[0].Source.File.File != "/b/pool/web1-root.qcow2" || disks[0].BackingStore != nil {
		t.Errorf("copied disk: %+v backing %+v", disks[0].Source.File, disks[0].BackingStore)
	}
	if disks[1].Source.File.File != "/shared/web1-data.qcow2" {
		t.Errorf("shared disk moved: %+v", disks[1].Source.File)
	}
	if disks[2].Source.File.File != "/b/seeds/web1.iso" {
		t.Errorf("seed: %+v", disks[2].Source.File)
	}
	nic := d.Devices.Interfaces[0]
	if nic.Source.Network.Network != "godwit-bbbb-default" || nic.Source.Network.Bridge != "" || nic.MAC.Address != "52:54:00:11:22:33" {
		t.Errorf("nic: %+v mac %+v", nic.Source.Network, nic.MAC)
	}
	if d.Devices.Serials[0].Log.File != "/b/console/web1.log" {
		t.Errorf("console log: %+v", d.Devices.Serials[0].Log)
	}
	if got := domainxml.OwnerOf(out); got != "dst" {
		t.Errorf("owner %q", got)
	}
	// No console log on the destination: the log element goes.
	out, _ = rewriteXML(liveXML, rewrite{disks: []api.MigrationDisk{{Target: "vda", DestPath: "/x"}}, owner: "dst"})
	if strings.Contains(out, "<log") {
		t.Errorf("log kept without a console log")
	}
	// An adopted domain (no owner given) keeps its metadata as it is.
	foreign := strings.Replace(liveXML, "<devices>", `<metadata><app:x xmlns:app="urn:app">1</app:x></metadata><devices>`, 1)
	out, err = rewriteXML(foreign, rewrite{disks: []api.MigrationDisk{{Target: "vda", DestPath: "/x"}}})
	if err != nil || domainxml.OwnerOf(out) != "" || !strings.Contains(out, "urn:app") {
		t.Errorf("an adopted domain's metadata: %v\n%s", err, out)
	}
	// A copied disk without a destination path is a bug, not a guess.
	if _, err := rewriteXML(liveXML, rewrite{disks: []api.MigrationDisk{{Name: "root", Target: "vda"}}}); err == nil {
		t.Error("a copied disk without a destination path was accepted")
	}
}

func TestCheckRequest(t *testing.T) {
	bad := map[string]api.MigrateRequest{
		"to: missing":           {},
		"is this host":          {To: "self"},
		"mode":                  {To: "b", Mode: "teleport"},
		"policy":                {To: "b", Policy: "hope"},
		"bandwidthMiB":          {To: "b", BandwidthMiB: -1},
		"parallel: 65":          {To: "b", Parallel: 65},
		"maxDowntimeMs: 5 ms":   {To: "b", MaxDowntimeMs: 5},
		"progressTimeoutSecond": {To: "b", ProgressTimeoutSeconds: -3},
	}
	for want, r := range bad {
		err := checkRequest(&r, "self")
		if api.Status(err) != 400 || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: %v, want a 400 mentioning %q", r, err, want)
		}
	}
	r := api.MigrateRequest{To: "b"}
	if err := checkRequest(&r, "self"); err != nil || r.Policy != api.PolicyAuto {
		t.Fatalf("defaults: %+v %v", r, err)
	}
}

func TestConvergence(t *testing.T) {
	var c converging
	// Shrinking passes: converging.
	for i, rem := range []uint64{1000, 600, 300, 120, 50, 20} {
		c.observe(hypervisor.JobStats{Iteration: uint64(i + 1), MemRemaining: rem})
	}
	if c.stuck() {
		t.Fatal("shrinking passes called stuck")
	}
	// A guest that dirties as fast as the link carries: stuck.
	var s converging
	for i, rem := range []uint64{1000, 800, 790, 800, 795, 798} {
		s.observe(hypervisor.JobStats{Iteration: uint64(i + 1), MemRemaining: rem})
	}
	if !s.stuck() {
		t.Fatal("flat passes not called stuck")
	}
	// Polls within one pass count once.
	var p converging
	for i := 0; i < 10; i++ {
		p.observe(hypervisor.JobStats{Iteration: 1, MemRemaining: 1000})
	}
	if len(p.remaining) != 1 || p.stuck() {
		t.Fatalf("one pass polled ten times: %v", p.remaining)
	}
}

func TestDestFlags(t *testing.T) {
	f := hypervisor.MigrateLive | hypervisor.MigrateAutoConverge | hypervisor.MigratePostcopy | hypervisor.MigrateChangeProtection | hypervisor.MigrateAbortOnError
	got := destFlags(f)
	if got != hypervisor.MigrateLive|hypervisor.MigratePostcopy {
		t.Fatalf("destFlags = %b", got)
	}
}

func TestCPUOf(t *testing.T) {
	x := `<domain type='kvm'><name>a</name><cpu mode='custom' match='exact' check='full'>
<model fallback='forbid'>Broadwell-IBRS</model><feature policy='require' name='vmx'/></cpu></domain>`
	got, err := cpuOf(x)
	if err != nil || !strings.Contains(got, "Broadwell-IBRS") || !strings.Contains(got, `name="vmx"`) || strings.Contains(got, "mode=") {
		t.Fatalf("cpuOf = %q, %v", got, err)
	}
	if got, err := cpuOf(`<domain type='qemu'><name>a</name></domain>`); err != nil || got != "" {
		t.Fatalf("TCG default CPU: %q, %v", got, err)
	}
}

func TestSnapshotsMove(t *testing.T) {
	internal := `<domainsnapshot><name>s1</name><disks><disk name='vda' snapshot='internal'/></disks></domainsnapshot>`
	external := `<domainsnapshot><name>s2</name><disks><disk name='vda' snapshot='external'><source file='/p/x.s2'/></disk></disks></domainsnapshot>`
	copied := []api.MigrationDisk{{Name: "root"}}
	shared := []api.MigrationDisk{{Name: "root", Shared: true}}
	flat := []api.VMDisk{{Name: "root"}}
	overlay := []api.VMDisk{{Name: "root", Backing: "/img/base.qcow2"}}
	cases := []struct {
		what  string
		mode  string
		snaps []string
		disks []api.MigrationDisk
		vm    []api.VMDisk
		want  string // "" for allowed
	}{
		{"no snapshots", api.MigrateLive, nil, copied, flat, ""},
		{"shared storage, external", api.MigrateLive, []string{external}, shared, flat, ""},
		{"shared storage, internal, live", api.MigrateLive, []string{internal}, shared, flat, "internal snapshots"},
		{"shared storage, internal, offline", api.MigrateOffline, []string{internal}, shared, flat, ""},
		{"live copy, internal", api.MigrateLive, []string{internal}, copied, flat, "--offline"},
		{"live copy, external", api.MigrateLive, []string{external}, copied, flat, "external snapshots"},
		{"offline copy, internal", api.MigrateOffline, []string{internal}, copied, flat, ""},
		{"cold copy, internal", api.MigrateCold, []string{internal}, copied, flat, ""},
		{"offline copy, external", api.MigrateOffline, []string{external}, copied, flat, "external snapshots"},
		{"offline copy of an overlay", api.MigrateOffline, []string{internal}, copied, overlay, "flattens"},
	}
	for _, c := range cases {
		err := snapshotsMove("web1", c.mode, c.snaps, c.disks, c.vm)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: refused: %v", c.what, err)
		case c.want != "" && (api.Status(err) != 409 || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want a 409 mentioning %q", c.what, err, c.want)
		}
	}
}

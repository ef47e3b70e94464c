package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
)

// Bad input from the CLI: a clear message naming the problem, exit code 1
// (2 for a usage mistake), and nothing created.
func TestBadSpecs(t *testing.T) {
	concurrent(t)
	d := StartDaemon(t)
	g := Guest(t)
	good := "cpus: 1\nmemory: 128MiB\nboot: {kernel: " + g.Kernel + "}\n"
	long := strings.Repeat("a", 200)
	cases := []struct {
		name, spec, want string
	}{
		{"malformed YAML", "name: [oops\n", "did not find expected"},
		{"unknown field", "name: x1\n" + good + "colour: blue\n", `line 5: field colour is not a spec field`},
		{"unknown nested field", "name: x1\n" + good + "disks: [{name: d, size: 1GiB, speed: fast}]\n", "field speed is not a spec field"},
		{"missing name", good, "name: missing"},
		{"name with spaces", "name: my vm\n" + good, "may only hold letters"},
		{"name with slash", "name: a/b\n" + good, "must not contain '/'"},
		{"name with dots", "name: a..b\n" + good, "must not contain '..'"},
		{"name of 200 characters", "name: " + long + "\n" + good, "200 characters is too long"},
		{"zero cpus", "name: x1\ncpus: 0\nmemory: 128MiB\nboot: {kernel: " + g.Kernel + "}\n", "cpus: missing or 0"},
		{"absurd cpus", "name: x1\ncpus: 100000\nmemory: 128MiB\nboot: {kernel: " + g.Kernel + "}\n", "cpus: 100000 is more than"},
		{"negative cpus", "name: x1\ncpus: -2\nmemory: 128MiB\nboot: {kernel: " + g.Kernel + "}\n", "cpus: -2 is not a positive number"},
		{"zero memory", "name: x1\ncpus: 1\nmemory: 0\nboot: {kernel: " + g.Kernel + "}\n", "memory: missing or 0"},
		{"memory without unit", "name: x1\ncpus: 1\nmemory: 512\nboot: {kernel: " + g.Kernel + "}\n", "did you forget the unit"},
		{"absurd memory", "name: x1\ncpus: 1\nmemory: 64TiB\nboot: {kernel: " + g.Kernel + "}\n", "is more than this host's"},
		{"bad size unit", "name: x1\ncpus: 1\nmemory: 1XB\nboot: {kernel: " + g.Kernel + "}\n", `unknown unit "XB"`},
		{"bad disk size unit", "name: x1\n" + good + "disks: [{name: d, size: 10 gigs}]\n", `unknown unit`},
		{"unknown kernel", "name: x1\ncpus: 1\nmemory: 128MiB\nboot: {kernel: /nonexistent/vmlinuz}\n", "boot.kernel: /nonexistent/vmlinuz: no such file"},
		{"unknown image", "name: x1\n" + good + "disks: [{name: d, image: /nonexistent.qcow2}]\n", "disks[0].image: /nonexistent.qcow2: no such file"},
		{"relative image", "name: x1\n" + good + "disks: [{name: d, image: base.qcow2}]\n", "a file must be an absolute path"},
		{"relative image path", "name: x1\n" + good + "disks: [{name: d, image: images/base.qcow2}]\n", "is a relative path"},
		{"no disk, no kernel", "name: x1\ncpus: 1\nmemory: 128MiB\n", "has no disks"},
		{"empty file", "", "the spec is empty"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, errOut, code := d.CLIInput(c.spec, "vm", "create", "-f", "-")
			if code != 1 || !strings.Contains(errOut, c.want) {
				t.Fatalf("exit %d, stderr %q; want exit 1 and %q", code, errOut, c.want)
			}
		})
	}
	// A truncated image is not an image.
	dir := t.TempDir()
	img := filepath.Join(dir, "base.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", img, "64M").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	raw, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(img, raw[:200], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := d.CLIInput("name: x1\n"+good+"disks: [{name: d, image: "+img+"}]\n", "vm", "create", "-f", "-"); code != 1 || !strings.Contains(errOut, "not a readable disk image") {
		t.Fatalf("truncated image: exit %d, %q", code, errOut)
	}
	// Usage mistakes exit 2.
	for _, args := range [][]string{{"vm", "create"}, {"vm", "show"}, {"vm", "list", "--bogus"}, {"vm", "list", "-o", "xml"}} {
		if _, _, code := d.CLI(args...); code != 2 {
			t.Errorf("godwit %v: exit %d, want 2", args, code)
		}
	}
	// None of that left a VM, a domain or an operation behind.
	if vms, err := d.C.ListVMs(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	} else {
		for _, v := range vms {
			if v.Name == "x1" {
				t.Fatalf("a VM x1 exists after bad specs: %+v", v)
			}
		}
	}
	if st := domainState(t, "x1"); st != "absent" {
		t.Fatalf("libvirt has a domain x1 (%s)", st)
	}
	if ops, err := d.C.ListOperations(ctxT(t, 10*time.Second), client.OperationFilter{}); err != nil || len(ops) != 0 {
		t.Fatalf("bad specs started operations: %+v (%v)", ops, err)
	}
}

// Names and states: 404 for unknown VMs, 409 for duplicates and wrong states.
func TestUnknownDuplicateAndWrongState(t *testing.T) {
	concurrent(t)
	d := StartDaemon(t)
	ctx := ctxT(t, 2*time.Minute)
	for _, call := range []func() error{
		func() error { _, err := d.C.GetVM(ctx, "nope"); return err },
		func() error { _, err := d.C.StartVM(ctx, "nope"); return err },
		func() error { _, err := d.C.StopVM(ctx, "nope", api.StopRequest{}); return err },
		func() error { _, err := d.C.PauseVM(ctx, "nope"); return err },
		func() error { _, err := d.C.DeleteVM(ctx, "nope", client.DeleteOptions{}); return err },
		func() error { _, err := d.C.Console(ctx, "nope", client.ConsoleOptions{}); return err },
		func() error { _, err := d.C.GetOperation(ctx, "nope"); return err },
	} {
		if err := call(); api.Status(err) != 404 {
			t.Errorf("unknown VM: %v, want 404", err)
		}
	}
	name := "e2e-dup-" + uniq()
	spec := guestSpec(t, name)
	d.createVM(spec, false)
	if _, err := d.C.CreateVM(ctx, spec, client.CreateOptions{}); api.Status(err) != 409 || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("duplicate create: %v, want 409", err)
	}
	for what, call := range map[string]func() error{
		"stop a stopped VM":   func() error { _, err := d.C.StopVM(ctx, name, api.StopRequest{}); return err },
		"pause a stopped VM":  func() error { _, err := d.C.PauseVM(ctx, name); return err },
		"resume a stopped VM": func() error { _, err := d.C.ResumeVM(ctx, name); return err },
		"reboot a stopped VM": func() error { _, err := d.C.RebootVM(ctx, name); return err },
	} {
		if err := call(); api.Status(err) != 409 {
			t.Errorf("%s: %v, want 409", what, err)
		}
	}
	d.waitOp(d.C.StartVM(ctx, name))
	if _, err := d.C.StartVM(ctx, name); api.Status(err) != 409 {
		t.Fatalf("start a running VM: %v, want 409", err)
	}
	if _, err := d.C.DeleteVM(ctx, name, client.DeleteOptions{}); api.Status(err) != 409 || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("delete a running VM: %v, want 409 mentioning --force", err)
	}
}

// A create that fails half-way (the kernel is not a kernel, so QEMU cannot
// start it after the disks and the domain exist) leaves nothing behind.
func TestFailedCreateLeavesNothing(t *testing.T) {
	concurrent(t)
	d := StartDaemon(t)
	name := "e2e-fail-" + uniq()
	bogus := filepath.Join(d.Dir, "not-a-kernel")
	os.WriteFile(bogus, []byte("this is not a kernel\n"), 0o644)
	spec := guestSpec(t, name)
	spec.Boot.Kernel = bogus
	spec.Disks = append(spec.Disks, api.Disk{Name: "data", Size: 32 * api.MiB})
	ctx := ctxT(t, 2*time.Minute)
	op, err := d.C.CreateVM(ctx, spec, client.CreateOptions{Start: true})
	if err != nil {
		t.Fatal(err)
	}
	op, err = d.C.WaitOperation(ctx, op.ID, nil)
	if err == nil || op.State != api.OpFailed || !strings.Contains(op.Error, "start") {
		t.Fatalf("create with a bogus kernel: %+v, %v; want a failed start", op, err)
	}
	if st := domainState(t, name); st != "absent" {
		t.Fatalf("libvirt kept domain %s (%s)", name, st)
	}
	if _, err := d.C.GetVM(ctx, name); api.Status(err) != 404 {
		t.Fatalf("godwit kept the VM: %v", err)
	}
	pool := filepath.Join(d.Dir, "state", "pool")
	entries, err := os.ReadDir(pool)
	if err != nil {
		t.Fatalf("the pool directory: %v", err)
	}
	for _, e := range entries {
		t.Errorf("disk left in the pool: %s", e.Name())
	}
	if out, err := virsh(t, "vol-list", "--pool", poolOf(t, d)); err != nil || strings.Contains(out, name) {
		t.Errorf("libvirt still lists volumes of %s (%v):\n%s", name, err, out)
	}
	logs, _ := filepath.Glob(filepath.Join(d.Dir, "state", "console", name+"*"))
	if len(logs) > 0 {
		t.Errorf("console log left: %v", logs)
	}
	// And the name is free again.
	spec.Boot.Kernel = Guest(t).Kernel
	d.createVM(spec, false)
}

func poolOf(t *testing.T, d *Daemon) string {
	h, err := d.C.Host(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return h.Pool
}

package e2e

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
)

// A VM through its whole life, driven by the CLI as a user would, checked
// through libvirt and the guest's own serial console.
func TestVMLifecycle(t *testing.T) {
	concurrent(t)
	d := StartDaemon(t)
	name := "e2e-life-" + uniq()
	spec := guestSpec(t, name)
	spec.Labels = map[string]string{"app": "e2e"}
	file := specYAML(t, spec)

	out := d.MustCLI("vm", "create", "-f", file, "--start", "--wait-for", "GODWIT-GUEST-UP")
	if !strings.Contains(out, "created and started") {
		t.Fatalf("create said %q", out)
	}
	if st := domainState(t, name); st != "running" {
		t.Fatalf("virsh domstate %s = %q, want running", name, st)
	}
	// virsh lists the same domain godwit lists.
	if out, _ := virsh(t, "list", "--name"); !strings.Contains(out, name) {
		t.Fatalf("virsh list does not show %s:\n%s", name, out)
	}
	var list api.VMList
	if err := json.Unmarshal([]byte(d.MustCLI("vm", "list", "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, v := range list.VMs {
		if v.Name == name {
			found = v.State == api.VMRunning && v.Managed && v.Spec.Labels["app"] == "e2e" && len(v.Disks) == 1
		}
	}
	if !found {
		t.Fatalf("vm list -o json does not show %s running and managed: %+v", name, list)
	}
	if out := d.MustCLI("vm", "list", "-o", "yaml"); !strings.Contains(out, "name: "+name) {
		t.Fatalf("vm list -o yaml:\n%s", out)
	}

	// The heartbeat counts up.
	d.waitConsole(name, `^tick 3 `, 0, guestWait)

	// Pause freezes the guest: no new ticks; resume unfreezes it.
	d.MustCLI("vm", "pause", name)
	if st := domainState(t, name); st != "paused" {
		t.Fatalf("after pause, virsh says %q", st)
	}
	before := lastTick(d.console(name))
	time.Sleep(3 * time.Second)
	if after := lastTick(d.console(name)); after != before {
		t.Fatalf("paused guest ticked on: %d -> %d", before, after)
	}
	d.MustCLI("vm", "resume", name)
	d.waitConsole(name, `^tick `+itoa(before+2)+` `, 0, guestWait)

	// Reboot: the guest boots again (a second GODWIT-GUEST-UP) and its
	// counter restarts.
	size := consoleSize(t, d, name)
	d.MustCLI("vm", "reboot", name)
	d.waitConsole(name, `GODWIT-GUEST-UP`, size, guestWait)
	d.waitConsole(name, `^tick 1 `, size, guestWait)

	// Stop presses the power button; the guest powers itself off.
	d.MustCLI("vm", "stop", name)
	if st := domainState(t, name); st != "shut off" {
		t.Fatalf("after stop, virsh says %q", st)
	}
	if !strings.Contains(d.console(name), "GUEST-POWEROFF") {
		t.Fatal("the guest did not see the ACPI power button")
	}
	if _, errOut, code := d.CLI("vm", "stop", name); code != 1 || !strings.Contains(errOut, "not running") {
		t.Fatalf("stopping a stopped VM: exit %d, %q", code, errOut)
	}

	// Start again, with --wait-for matching only this boot's output.
	d.MustCLI("vm", "start", name, "--wait-for", "GODWIT-GUEST-UP")
	if _, errOut, code := d.CLI("vm", "start", name); code != 1 || !strings.Contains(errOut, "already running") {
		t.Fatalf("starting a running VM: exit %d, %q", code, errOut)
	}
	d.MustCLI("vm", "kill", name)
	if st := domainState(t, name); st != "shut off" {
		t.Fatalf("after kill, virsh says %q", st)
	}

	// Delete removes the domain, the disk file and the console log.
	v, err := d.C.GetVM(ctxT(t, 10*time.Second), name)
	if err != nil {
		t.Fatal(err)
	}
	disk, logPath := v.Disks[0].Path, v.ConsoleLog
	for _, p := range []string{disk, logPath} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("before delete: %v", err)
		}
	}
	d.MustCLI("vm", "delete", name)
	if st := domainState(t, name); st != "absent" {
		t.Fatalf("after delete, virsh still has %s (%s)", name, st)
	}
	for _, p := range []string{disk, logPath} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Fatalf("after delete %s remains (%v)", p, err)
		}
	}
	if _, err := d.C.GetVM(ctxT(t, 10*time.Second), name); api.Status(err) != 404 {
		t.Fatalf("show after delete: %v, want 404", err)
	}

	// Every step ran as an operation, and they all succeeded.
	ops, err := d.C.ListOperations(ctxT(t, 10*time.Second), client.OperationFilter{Target: "vm/" + name})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, o := range ops {
		if o.State != api.OpSucceeded {
			t.Errorf("operation %s %s: %s %s", o.ID, o.Kind, o.State, o.Error)
		}
		kinds[o.Kind] = true
	}
	for _, k := range []string{"vm.create", "vm.start", "vm.stop", "vm.reboot", "vm.delete"} {
		if !kinds[k] {
			t.Errorf("no %s operation in %v", k, kinds)
		}
	}
}

func consoleSize(t *testing.T, d *Daemon, vm string) int64 {
	t.Helper()
	v, err := d.C.GetVM(ctxT(t, 10*time.Second), vm)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(v.ConsoleLog)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

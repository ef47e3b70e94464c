// Command demo-migrate shows a live migration between two simulated hosts
// on this machine: two network namespaces, each with its own libvirtd and
// godwit daemon, joined as peers; a VM boots on the first and moves, live,
// to the second. It ends with the line
//
//	migrated <vm> from <a> to <b>: total <ms> ms, downtime <ms> ms, <MiB> MiB
//
// and removes everything it made (unless -keep). Run it as root through
// `make demo-migrate`, which installs and builds what it needs.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
	"github.com/godwit-project/godwit/test/testbed"
)

func main() {
	godwit := flag.String("godwit", "bin/godwit", "the godwit binary")
	guest := flag.String("guest", ".cache/guest", "directory with the test guest's vmlinuz and initrd.gz")
	keep := flag.Bool("keep", false, "leave the hosts running (stop them with Ctrl-C)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	line, err := run(ctx, *godwit, *guest, *keep)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo-migrate:", err)
		os.Exit(1)
	}
	fmt.Println(line) // last, after the hosts are gone
}

func say(format string, args ...any) { fmt.Printf("==> "+format+"\n", args...) }

func run(ctx context.Context, godwit, guest string, keep bool) (string, error) {
	bin, err := filepath.Abs(godwit)
	if err != nil {
		return "", err
	}
	kernel, _ := filepath.Abs(filepath.Join(guest, "vmlinuz"))
	initrd, _ := filepath.Abs(filepath.Join(guest, "initrd.gz"))
	for _, f := range []string{bin, kernel, initrd} {
		if _, err := os.Stat(f); err != nil {
			return "", fmt.Errorf("%v (run it through make demo-migrate)", err)
		}
	}
	say("starting two simulated hosts (network namespaces, a libvirtd and a godwit daemon each; shared storage)")
	bed, err := testbed.Up(ctx, testbed.Options{Hosts: 2, Godwit: bin, SharedPool: true})
	if err != nil {
		return "", err
	}
	defer func() {
		if keep && ctx.Err() == nil {
			say("hosts kept; press Ctrl-C to remove them")
			<-ctx.Done()
		}
		say("removing the simulated hosts")
		bed.Down()
	}()
	a, b := bed.Hosts[0], bed.Hosts[1]
	for _, h := range bed.Hosts {
		say("%s: %s, daemon socket %s", h.Name, h.URL(), h.Socket)
	}

	say("joining the hosts: 'godwit host token' on %s, 'godwit host add' on %s", b.Name, a.Name)
	tok, err := b.C.CreateJoinToken(ctx, 10*time.Minute)
	if err != nil {
		return "", err
	}
	if out, err := a.CLI("host", "add", b.Name, b.URL(), "--token", tok.Token); err != nil {
		return "", fmt.Errorf("host add: %v: %s", err, out)
	}
	out, _ := a.CLI("host", "list")
	fmt.Print(out)

	vm := "demo-vm"
	say("creating %s on %s from the test guest and waiting for it to boot", vm, a.Name)
	spec := api.VMSpec{Name: vm, CPUs: 1, Memory: 256 * api.MiB,
		Boot:  &api.Boot{Kernel: kernel, Initrd: initrd, Cmdline: "console=ttyS0 quiet diskcounter=1"},
		Disks: []api.Disk{{Name: "root", Size: 64 * api.MiB}}}
	op, err := a.C.CreateVM(ctx, spec, client.CreateOptions{Start: true})
	if err == nil {
		_, err = a.C.WaitOperation(ctx, op.ID, nil)
	}
	if err != nil {
		return "", err
	}
	last, err := waitLine(ctx, a, vm, "tick 3 ")
	if err != nil {
		return "", err
	}
	say("%s runs on %s: %s", vm, a.Name, last)

	say("migrating %s live to %s: godwit migrate %s --to %s", vm, b.Name, vm, b.Name)
	op, err = a.C.MigrateVM(ctx, vm, api.MigrateRequest{To: b.Name})
	if err != nil {
		return "", err
	}
	final, err := a.C.WaitOperation(ctx, op.ID, func(o api.Operation) {
		if o.Progress.Message != "" && !o.State.Final() {
			fmt.Printf("    %s\n", o.Progress.Message)
		}
	})
	if err != nil {
		return "", err
	}
	var rep api.MigrationReport
	if err := decode(final.Result, &rep); err != nil {
		return "", err
	}
	line, err := waitLine(ctx, b, vm, "tick ")
	if err != nil {
		return "", err
	}
	say("%s now runs on %s, its counter going on where it was: %s", vm, b.Name, line)
	if out, err := b.CLI("vm", "list"); err == nil {
		fmt.Print(out)
	}
	return fmt.Sprintf("migrated %s from %s to %s: total %d ms, downtime %d ms, %.1f MiB",
		rep.VM, rep.From, rep.To, rep.TotalMs, rep.DowntimeMs, float64(rep.Bytes)/(1<<20)), nil
}

// waitLine waits for the VM's console to show a line holding needle.
func waitLine(ctx context.Context, h *testbed.Host, vm, needle string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	rc, err := h.C.Console(ctx, vm, client.ConsoleOptions{Follow: true})
	if err != nil {
		return "", err
	}
	defer rc.Close()
	sc := bufio.NewScanner(rc)
	for sc.Scan() {
		if strings.Contains(sc.Text(), needle) {
			return sc.Text(), nil
		}
	}
	return "", fmt.Errorf("vm %s on %s never printed %q", vm, h.Name, needle)
}

func decode(b []byte, v any) error {
	if len(b) == 0 {
		return fmt.Errorf("the migration reported nothing")
	}
	return json.Unmarshal(b, v)
}

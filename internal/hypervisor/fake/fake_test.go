package fake

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/godwit-project/godwit/internal/hypervisor"
)

func domXML(name, uuid string) string {
	return fmt.Sprintf("<domain type='qemu'><name>%s</name><uuid>%s</uuid></domain>", name, uuid)
}

func state(t *testing.T, f *Fake, name string) hypervisor.State {
	t.Helper()
	d, err := f.Lookup(context.Background(), name)
	if err != nil {
		t.Fatalf("Lookup %s: %v", name, err)
	}
	return d.State
}

func TestDomainStates(t *testing.T) {
	ctx := context.Background()
	f := New()
	if _, err := f.Define(ctx, domXML("a", "")); err != nil {
		t.Fatal(err)
	}
	if s := state(t, f, "a"); s != hypervisor.StateShutoff {
		t.Fatalf("new domain is %s", s)
	}
	// What libvirt refuses on an inactive domain.
	for name, call := range map[string]func() error{
		"Shutdown": func() error { return f.Shutdown(ctx, "a") },
		"Destroy":  func() error { return f.Destroy(ctx, "a") },
		"Reboot":   func() error { return f.Reboot(ctx, "a") },
		"Suspend":  func() error { return f.Suspend(ctx, "a") },
		"Resume":   func() error { return f.Resume(ctx, "a") },
	} {
		if err := call(); !errors.Is(err, hypervisor.ErrInvalidState) {
			t.Errorf("%s on a shut-off domain: %v, want ErrInvalidState", name, err)
		}
	}
	if err := f.Start(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := f.Start(ctx, "a"); !errors.Is(err, hypervisor.ErrInvalidState) {
		t.Fatalf("second Start: %v, want ErrInvalidState", err)
	}
	if err := f.Suspend(ctx, "a"); err != nil || state(t, f, "a") != hypervisor.StatePaused {
		t.Fatalf("Suspend: %v, state %s", err, state(t, f, "a"))
	}
	if err := f.Resume(ctx, "a"); err != nil || state(t, f, "a") != hypervisor.StateRunning {
		t.Fatalf("Resume: %v, state %s", err, state(t, f, "a"))
	}
	if err := f.Shutdown(ctx, "a"); err != nil || state(t, f, "a") != hypervisor.StateShutoff {
		t.Fatalf("Shutdown: %v, state %s", err, state(t, f, "a"))
	}
	for _, op := range []func(context.Context, string) error{f.Start, f.Undefine} {
		if err := op(ctx, "nope"); !errors.Is(err, hypervisor.ErrNotFound) {
			t.Fatalf("call on a missing domain: %v, want ErrNotFound", err)
		}
	}
	// Redefining keeps the UUID; another UUID under the same name is refused.
	d, _ := f.Lookup(ctx, "a")
	if _, err := f.Define(ctx, domXML("a", d.UUID)); err != nil {
		t.Fatalf("redefine: %v", err)
	}
	if _, err := f.Define(ctx, domXML("a", "00000000-0000-4000-8000-000000000001")); !errors.Is(err, hypervisor.ErrExists) {
		t.Fatalf("define with another uuid: %v, want ErrExists", err)
	}
	// Undefining a running domain leaves it transient until it stops.
	if err := f.Start(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := f.Undefine(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := f.SetAutostart(ctx, "a", true); !errors.Is(err, hypervisor.ErrInvalidState) {
		t.Fatalf("autostart of a transient domain: %v", err)
	}
	if err := f.Destroy(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Lookup(ctx, "a"); !errors.Is(err, hypervisor.ErrNotFound) {
		t.Fatalf("a stopped transient domain is still there: %v", err)
	}
}

func TestGuestShutdownBehaviour(t *testing.T) {
	ctx := context.Background()
	f := New()
	f.SetGuest("stubborn", Guest{IgnoreACPI: true})
	f.SetGuest("slow", Guest{ShutdownDelay: 50 * time.Millisecond})
	for _, n := range []string{"stubborn", "slow"} {
		if _, err := f.Define(ctx, domXML(n, "")); err != nil {
			t.Fatal(err)
		}
		if err := f.Start(ctx, n); err != nil {
			t.Fatal(err)
		}
		if err := f.Shutdown(ctx, n); err != nil {
			t.Fatal(err)
		}
		if s := state(t, f, n); s != hypervisor.StateRunning {
			t.Fatalf("%s right after Shutdown: %s, want running", n, s)
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for state(t, f, "slow") != hypervisor.StateShutoff {
		if time.Now().After(deadline) {
			t.Fatal("slow guest never shut down")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if s := state(t, f, "stubborn"); s != hypervisor.StateRunning {
		t.Fatalf("stubborn guest is %s, want running", s)
	}
}

func TestVolumes(t *testing.T) {
	ctx := context.Background()
	f := New()
	if _, err := f.CreateVolume(ctx, "p", hypervisor.Volume{Name: "v", Capacity: 1 << 20}); !errors.Is(err, hypervisor.ErrNotFound) {
		t.Fatalf("volume in a missing pool: %v", err)
	}
	if _, err := f.EnsurePool(ctx, hypervisor.Pool{Name: "p", Path: "/pool"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.EnsurePool(ctx, hypervisor.Pool{Name: "p", Path: "/elsewhere"}); err == nil {
		t.Fatal("a pool repointed to another path was accepted")
	}
	v, err := f.CreateVolume(ctx, "p", hypervisor.Volume{Name: "v", Capacity: 1 << 20})
	if err != nil || v.Path != "/pool/v" {
		t.Fatalf("CreateVolume = %+v, %v", v, err)
	}
	if _, err := f.CreateVolume(ctx, "p", hypervisor.Volume{Name: "v", Capacity: 1 << 20}); !errors.Is(err, hypervisor.ErrExists) {
		t.Fatalf("duplicate volume: %v, want ErrExists", err)
	}
	if err := f.ResizeVolume(ctx, "p", "v", 1<<19); err == nil {
		t.Fatal("shrinking was accepted")
	}
	if err := f.ResizeVolume(ctx, "p", "v", 1<<21); err != nil {
		t.Fatal(err)
	}
	if info, _ := f.VolumeInfo(ctx, "p", "v"); info.Capacity != 1<<21 {
		t.Fatalf("capacity after resize = %d", info.Capacity)
	}
	if err := f.DeleteVolume(ctx, "p", "v"); err != nil {
		t.Fatal(err)
	}
	if err := f.DeleteVolume(ctx, "p", "v"); !errors.Is(err, hypervisor.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := f.VolumeInfo(ctx, "p", "v"); !errors.Is(err, hypervisor.ErrNotFound) {
		t.Fatalf("info of a deleted volume: %v", err)
	}
}

func TestFaultsAndDown(t *testing.T) {
	ctx := context.Background()
	f := New()
	if _, err := f.EnsurePool(ctx, hypervisor.Pool{Name: "p", Path: "/pool"}); err != nil {
		t.Fatal(err)
	}
	// The second matching call fails, once; other names are untouched.
	f.Inject(Fault{Method: "CreateVolume", Name: "b", After: 1})
	for _, name := range []string{"a", "b"} {
		if _, err := f.CreateVolume(ctx, "p", hypervisor.Volume{Name: name, Capacity: 1}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if _, err := f.CreateVolume(ctx, "p", hypervisor.Volume{Name: "a", Capacity: 1}); !errors.Is(err, hypervisor.ErrExists) {
		t.Fatalf("fault on b fired on a: %v", err)
	}
	_ = f.DeleteVolume(ctx, "p", "b")
	if _, err := f.CreateVolume(ctx, "p", hypervisor.Volume{Name: "b", Capacity: 1}); !errors.Is(err, ErrInjected) {
		t.Fatalf("second create of b: %v, want the injected error", err)
	}
	if len(f.Volumes("p")) != 1 {
		t.Fatalf("a failed create made a volume: %v", f.Volumes("p"))
	}
	if _, err := f.CreateVolume(ctx, "p", hypervisor.Volume{Name: "b", Capacity: 1}); err != nil {
		t.Fatalf("the fault fired twice: %v", err)
	}
	mine := errors.New("mine")
	f.FailNext("Ping", mine)
	if err := f.Ping(ctx); !errors.Is(err, mine) {
		t.Fatalf("Ping = %v, want the injected error", err)
	}

	f.SetDown(true)
	for name, call := range map[string]func() error{
		"Ping":     func() error { return f.Ping(ctx) },
		"List":     func() error { _, err := f.List(ctx); return err },
		"HostInfo": func() error { _, err := f.HostInfo(ctx); return err },
		"Lookup":   func() error { _, err := f.Lookup(ctx, "x"); return err },
		"Volume":   func() error { _, err := f.VolumeInfo(ctx, "p", "a"); return err },
	} {
		if err := call(); !errors.Is(err, hypervisor.ErrUnavailable) {
			t.Errorf("%s while down: %v, want ErrUnavailable", name, err)
		}
	}
	f.SetDown(false)
	if _, err := f.VolumeInfo(ctx, "p", "a"); err != nil {
		t.Fatalf("after coming back: %v", err)
	}

	defer func() {
		if recover() == nil {
			t.Fatal("a fault on an unknown method was accepted")
		}
	}()
	f.FailNext("Strat", nil)
}

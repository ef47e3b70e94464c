package health

import (
	"errors"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/hypervisor"
)

func checker(t *testing.T) *Checker {
	var th Thresholds
	if err := th.Complete(); err != nil {
		t.Fatal(err)
	}
	return New(th)
}

func status(r api.HealthReport, name string) api.Check {
	for _, c := range r.Checks {
		if c.Name == name {
			return c
		}
	}
	return api.Check{}
}

func TestPoolThresholds(t *testing.T) {
	c := checker(t)
	for _, tc := range []struct {
		avail  uint64
		active bool
		want   string
	}{{50, true, api.CheckOK}, {14, true, api.CheckWarning}, {4, true, api.CheckCritical}, {90, false, api.CheckWarning}} {
		r := c.Run(Input{Pools: []hypervisor.PoolInfo{{Name: "godwit", Capacity: 100, Available: tc.avail, Active: tc.active}}})
		if got := status(r, CheckPoolSpace); got.Status != tc.want {
			t.Errorf("pool with %d%% free, active %v: %s (%s), want %s", tc.avail, tc.active, got.Status, got.Message, tc.want)
		}
	}
	bad := Thresholds{PoolWarnPercent: 90, PoolCritPercent: 80}
	if err := bad.Complete(); err == nil {
		t.Error("warn above crit was accepted")
	}
}

func TestUnexpectedStops(t *testing.T) {
	c := checker(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c.now = func() time.Time { return now }
	managed := map[string]bool{"web": true, "db": true, "asked": true, "crashy": true}
	doms := []hypervisor.DomainStats{
		{Name: "web", State: hypervisor.StateShutoff, Reason: "shut down"},
		{Name: "db", State: hypervisor.StateRunning},
		{Name: "asked", State: hypervisor.StateShutoff, Reason: "destroyed"},
		{Name: "crashy", State: hypervisor.StateShutoff, Reason: "crashed"},
		{Name: "foreign", State: hypervisor.StateCrashed},
	}
	c.DomainEvent(hypervisor.DomainEvent{Domain: "web", Event: hypervisor.EventStopped, Detail: "shut down"})
	c.OperationChanged(api.Operation{Kind: "vm.stop", Target: "vm/asked", State: api.OpRunning})
	c.DomainEvent(hypervisor.DomainEvent{Domain: "asked", Event: hypervisor.EventStopped, Detail: "destroyed"})
	r := c.Run(Input{Domains: doms, Managed: managed})
	got := status(r, CheckUnexpectedStop)
	if got.Status != api.CheckCritical || len(got.Items) != 2 || r.Status != api.CheckCritical {
		t.Fatalf("unexpected stops: %+v", got)
	}
	if got.Items[0][:7] != "crashy:" || got.Items[1][:4] != "web:" {
		t.Fatalf("items: %v (want crashy and web, not asked nor the foreign domain)", got.Items)
	}
	// web runs again: only crashy (its state says crashed) remains.
	doms[0].State = hypervisor.StateRunning
	if got := c.Unexpected(Input{Domains: doms, Managed: managed}); len(got) != 1 || got["crashy"] == "" {
		t.Fatalf("after web restarted: %v", got)
	}
	// An expectation runs out.
	now = now.Add(expectFor + time.Second)
	c.DomainEvent(hypervisor.DomainEvent{Domain: "asked", Event: hypervisor.EventStopped, Detail: "destroyed"})
	if got := c.Unexpected(Input{Domains: doms, Managed: managed}); got["asked"] == "" {
		t.Fatalf("a stop long after godwit was asked: %v", got)
	}
	// libvirt down: critical libvirtd, the rest unknown (warning).
	r = c.Run(Input{LibvirtErr: errors.New("gone")})
	if status(r, CheckLibvirt).Status != api.CheckCritical || status(r, CheckUnexpectedStop).Status != api.CheckWarning {
		t.Fatalf("libvirt down: %+v", r)
	}
}

func TestFailedBackupAndMigration(t *testing.T) {
	c := checker(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c.OperationChanged(api.Operation{ID: "1", Kind: KindBackup, Target: "vm/web", State: api.OpFailed, Error: "disk full", CreatedAt: t0, FinishedAt: t0})
	c.OperationChanged(api.Operation{ID: "2", Kind: KindMigrate, Target: "vm/db", State: api.OpSucceeded, CreatedAt: t0, FinishedAt: t0})
	r := c.Run(Input{})
	if b := status(r, CheckFailedBackup); b.Status != api.CheckCritical || len(b.Items) != 1 {
		t.Fatalf("failed backup: %+v", b)
	}
	if m := status(r, CheckFailedMigration); m.Status != api.CheckOK {
		t.Fatalf("migration: %+v", m)
	}
	// A later success clears it; an older failure arriving late does not undo that.
	c.OperationChanged(api.Operation{ID: "3", Kind: KindBackup, Target: "vm/web", State: api.OpSucceeded, CreatedAt: t0.Add(time.Hour)})
	c.OperationChanged(api.Operation{ID: "0", Kind: KindBackup, Target: "vm/web", State: api.OpFailed, CreatedAt: t0.Add(-time.Hour)})
	if b := status(c.Run(Input{}), CheckFailedBackup); b.Status != api.CheckOK {
		t.Fatalf("after a successful backup: %+v", b)
	}
}

func TestHostSetup(t *testing.T) {
	c := checker(t)
	if got := status(c.Run(Input{}), CheckHostSetup); got.Status != api.CheckOK {
		t.Errorf("nothing missing: %+v", got)
	}
	dnsmasq := "NAT and isolated networks (DHCP and DNS): dnsmasq is not installed (Debian package dnsmasq-base)"
	got := status(c.Run(Input{Missing: []string{dnsmasq}}), CheckHostSetup)
	if got.Status != api.CheckWarning || len(got.Items) != 1 || got.Items[0] != dnsmasq {
		t.Errorf("dnsmasq missing: %+v", got)
	}
	got = status(c.Run(Input{Missing: []string{dnsmasq}, Unreachable: []string{"pool /root/x: QEMU runs as ..."}}), CheckHostSetup)
	if got.Status != api.CheckCritical || len(got.Items) != 2 {
		t.Errorf("pool unreachable: %+v", got)
	}
}

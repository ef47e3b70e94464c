package libvirt

import (
	"context"
	"fmt"

	golibvirt "github.com/digitalocean/go-libvirt"

	"github.com/godwit-project/godwit/internal/hypervisor"
)

func (c *Conn) lookup(l *golibvirt.Libvirt, name string) (golibvirt.Domain, error) {
	return l.DomainLookupByName(name)
}

// onDomain runs f on the named domain.
func (c *Conn) onDomain(ctx context.Context, what, name string, f func(l *golibvirt.Libvirt, d golibvirt.Domain) error) error {
	return do0(ctx, c, what+" "+name, func(l *golibvirt.Libvirt) error {
		d, err := c.lookup(l, name)
		if err != nil {
			return err
		}
		return f(l, d)
	})
}

// Define defines (or redefines) a persistent domain from XML, validating it
// against libvirt's schema.
func (c *Conn) Define(ctx context.Context, xml string) (hypervisor.Domain, error) {
	d, err := do(ctx, c, "define domain", func(l *golibvirt.Libvirt) (golibvirt.Domain, error) {
		return l.DomainDefineXMLFlags(xml, golibvirt.DomainDefineValidate)
	})
	if err != nil {
		return hypervisor.Domain{}, err
	}
	return c.Lookup(ctx, d.Name)
}

// Undefine removes the definition with its managed save, snapshot and
// checkpoint metadata and UEFI variables.
func (c *Conn) Undefine(ctx context.Context, name string) error {
	return c.onDomain(ctx, "undefine domain", name, func(l *golibvirt.Libvirt, d golibvirt.Domain) error {
		return l.DomainUndefineFlags(d, golibvirt.DomainUndefineManagedSave|golibvirt.DomainUndefineSnapshotsMetadata|
			golibvirt.DomainUndefineCheckpointsMetadata|golibvirt.DomainUndefineNvram)
	})
}

// Start boots a defined domain.
func (c *Conn) Start(ctx context.Context, name string) error {
	return c.onDomain(ctx, "start domain", name, func(l *golibvirt.Libvirt, d golibvirt.Domain) error {
		_, err := l.DomainCreateWithFlags(d, 0)
		return err
	})
}

// Shutdown presses the ACPI power button.
func (c *Conn) Shutdown(ctx context.Context, name string) error {
	return c.onDomain(ctx, "shut down domain", name, func(l *golibvirt.Libvirt, d golibvirt.Domain) error {
		return l.DomainShutdownFlags(d, golibvirt.DomainShutdownAcpiPowerBtn)
	})
}

// Destroy stops the domain at once.
func (c *Conn) Destroy(ctx context.Context, name string) error {
	return c.onDomain(ctx, "destroy domain", name, func(l *golibvirt.Libvirt, d golibvirt.Domain) error {
		return l.DomainDestroyFlags(d, 0)
	})
}

// Reboot asks the guest to reboot through ACPI (libvirt powers it down and
// starts it again in the same QEMU).
func (c *Conn) Reboot(ctx context.Context, name string) error {
	return c.onDomain(ctx, "reboot domain", name, func(l *golibvirt.Libvirt, d golibvirt.Domain) error {
		return l.DomainReboot(d, golibvirt.DomainRebootAcpiPowerBtn)
	})
}

// Suspend pauses the vCPUs.
func (c *Conn) Suspend(ctx context.Context, name string) error {
	return c.onDomain(ctx, "pause domain", name, func(l *golibvirt.Libvirt, d golibvirt.Domain) error {
		return l.DomainSuspend(d)
	})
}

// Resume unpauses the vCPUs.
func (c *Conn) Resume(ctx context.Context, name string) error {
	return c.onDomain(ctx, "resume domain", name, func(l *golibvirt.Libvirt, d golibvirt.Domain) error {
		return l.DomainResume(d)
	})
}

// SetAutostart turns libvirt's autostart on or off.
func (c *Conn) SetAutostart(ctx context.Context, name string, on bool) error {
	v := int32(0)
	if on {
		v = 1
	}
	return c.onDomain(ctx, "set autostart of", name, func(l *golibvirt.Libvirt, d golibvirt.Domain) error {
		return l.DomainSetAutostart(d, v)
	})
}

// XML returns the live XML, or the persistent one when inactive is set.
func (c *Conn) XML(ctx context.Context, name string, inactive bool) (string, error) {
	var flags golibvirt.DomainXMLFlags
	if inactive {
		flags = golibvirt.DomainXMLInactive
	}
	return do(ctx, c, "get XML of domain "+name, func(l *golibvirt.Libvirt) (string, error) {
		d, err := c.lookup(l, name)
		if err != nil {
			return "", err
		}
		return l.DomainGetXMLDesc(d, flags)
	})
}

// RunTransient starts a transient domain that libvirt destroys when this
// connection closes (so a crashed daemon leaves no probe VM behind).
func (c *Conn) RunTransient(ctx context.Context, xml string) error {
	return do0(ctx, c, "start transient domain", func(l *golibvirt.Libvirt) error {
		_, err := l.DomainCreateXML(xml, golibvirt.DomainStartAutodestroy)
		return err
	})
}

// Lookup returns one domain with its state.
func (c *Conn) Lookup(ctx context.Context, name string) (hypervisor.Domain, error) {
	return do(ctx, c, "look up domain "+name, func(l *golibvirt.Libvirt) (hypervisor.Domain, error) {
		d, err := c.lookup(l, name)
		if err != nil {
			return hypervisor.Domain{}, err
		}
		state, reason, err := l.DomainGetState(d, 0)
		if err != nil {
			return hypervisor.Domain{}, err
		}
		persistent, err := l.DomainIsPersistent(d)
		if err != nil {
			return hypervisor.Domain{}, err
		}
		autostart, err := l.DomainGetAutostart(d)
		if err != nil {
			return hypervisor.Domain{}, err
		}
		s := hypervisor.State(state)
		return hypervisor.Domain{
			Name: d.Name, UUID: uuidString(d.UUID), State: s, Reason: stateReason(s, reason),
			Persistent: persistent == 1, Autostart: autostart == 1,
		}, nil
	})
}

// List returns every domain with its state, in three calls whatever the
// number of domains.
func (c *Conn) List(ctx context.Context) ([]hypervisor.Domain, error) {
	return do(ctx, c, "list domains", func(l *golibvirt.Libvirt) ([]hypervisor.Domain, error) {
		recs, err := l.ConnectGetAllDomainStats(nil, uint32(golibvirt.DomainStatsState), 0)
		if err != nil {
			return nil, err
		}
		persistent, _, err := l.ConnectListAllDomains(1, golibvirt.ConnectListDomainsPersistent)
		if err != nil {
			return nil, err
		}
		autostart, _, err := l.ConnectListAllDomains(1, golibvirt.ConnectListDomainsAutostart)
		if err != nil {
			return nil, err
		}
		has := func(list []golibvirt.Domain, name string) bool {
			for _, d := range list {
				if d.Name == name {
					return true
				}
			}
			return false
		}
		out := make([]hypervisor.Domain, 0, len(recs))
		for _, r := range recs {
			var state, reason int32
			for _, p := range r.Params {
				v, _ := p.Value.I.(int32)
				switch p.Field {
				case "state.state":
					state = v
				case "state.reason":
					reason = v
				}
			}
			s := hypervisor.State(state)
			out = append(out, hypervisor.Domain{
				Name: r.Dom.Name, UUID: uuidString(r.Dom.UUID), State: s, Reason: stateReason(s, reason),
				Persistent: has(persistent, r.Dom.Name), Autostart: has(autostart, r.Dom.Name),
			})
		}
		return out, nil
	})
}

func uuidString(u golibvirt.UUID) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// stateReason names libvirt's state reasons that users meet.
func stateReason(s hypervisor.State, r int32) string {
	var names []string
	switch s {
	case hypervisor.StateRunning:
		names = []string{"", "booted", "migrated", "restored", "from snapshot", "unpaused", "migration cancelled", "save cancelled", "woken up", "crashed", "postcopy"}
	case hypervisor.StatePaused:
		names = []string{"", "paused by user", "migrating", "saving", "dumping", "I/O error", "watchdog", "from snapshot", "shutting down", "snapshot", "crashed", "starting up", "postcopy", "postcopy failed"}
	case hypervisor.StateShutoff:
		names = []string{"", "shut down", "destroyed", "crashed", "migrated", "saved", "failed to start", "from snapshot", "daemon"}
	case hypervisor.StateCrashed:
		names = []string{"", "panicked"}
	}
	if int(r) < len(names) {
		return names[r]
	}
	return ""
}

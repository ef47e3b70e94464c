package fake

import (
	"context"
	"encoding/xml"
	"sort"

	"github.com/godwit-project/godwit/internal/hypervisor"
)

// monitorState is the fake's stats and event subscribers.
type monitorState struct {
	counters map[string]hypervisor.DomainStats // SetCounters, by domain name
	subs     map[chan hypervisor.DomainEvent]struct{}
}

// SetCounters sets the counters DomainStats reports for a running domain
// (CPU time, memory RSS, disks, NICs); state, vCPUs and memory sizes come
// from the domain itself.
func (f *Fake) SetCounters(name string, s hypervisor.DomainStats) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mon.counters == nil {
		f.mon.counters = map[string]hypervisor.DomainStats{}
	}
	f.mon.counters[name] = s
}

// sizes is what DomainStats reads of the domain XML.
type sizes struct {
	VCPU   int    `xml:"vcpu"`
	Memory uint64 `xml:"memory"` // KiB, libvirt's default unit
}

// DomainStats returns every domain's state, sizes and counters, sorted by
// name, in one call.
func (f *Fake) DomainStats(ctx context.Context) ([]hypervisor.DomainStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(ctx, "DomainStats", ""); err != nil {
		return nil, err
	}
	out := make([]hypervisor.DomainStats, 0, len(f.domains))
	for _, d := range f.domains {
		s := hypervisor.DomainStats{}
		if d.State.Active() {
			s = f.mon.counters[d.Name]
		}
		s.Name, s.UUID, s.State, s.Reason = d.Name, d.UUID, d.State, d.Reason
		doc := d.xml
		if d.liveXML != "" {
			doc = d.liveXML
		}
		var sz sizes
		if xml.Unmarshal([]byte(doc), &sz) == nil {
			s.MemoryMax = sz.Memory * 1024
			if d.State.Active() {
				s.VCPUs = sz.VCPU
				s.MemoryCurrent = sz.Memory * 1024
			}
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// DomainEvents subscribes to lifecycle events: the fake emits them as
// libvirt would when its domains change. The channel closes when ctx ends.
// Events a slow reader has no room for are dropped.
func (f *Fake) DomainEvents(ctx context.Context) (<-chan hypervisor.DomainEvent, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(ctx, "DomainEvents", ""); err != nil {
		return nil, err
	}
	ch := make(chan hypervisor.DomainEvent, 256)
	if f.mon.subs == nil {
		f.mon.subs = map[chan hypervisor.DomainEvent]struct{}{}
	}
	f.mon.subs[ch] = struct{}{}
	go func() {
		<-ctx.Done()
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, ok := f.mon.subs[ch]; ok {
			delete(f.mon.subs, ch)
			close(ch)
		}
	}()
	return ch, nil
}

// DropSubscribers closes every event subscription, as a lost connection
// to libvirtd would.
func (f *Fake) DropSubscribers() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ch := range f.mon.subs {
		delete(f.mon.subs, ch)
		close(ch)
	}
}

// emit sends an event to the subscribers. Callers hold f.mu.
func (f *Fake) emit(d *domain, event, detail string) {
	e := hypervisor.DomainEvent{Domain: d.Name, UUID: d.UUID, Event: event, Detail: detail}
	for ch := range f.mon.subs {
		select {
		case ch <- e:
		default:
		}
	}
}

// stopDetail is the "stopped" event detail for a shut-off reason.
func stopDetail(reason string) string {
	switch reason {
	case "shut down", "destroyed", "crashed", "migrated", "saved", "from snapshot":
		return reason
	case "failed to start":
		return "failed"
	}
	return reason
}

package libvirt

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	golibvirt "github.com/digitalocean/go-libvirt"

	"github.com/godwit-project/godwit/internal/hypervisor"
)

// statsTypes are the groups DomainStats asks libvirt for.
const statsTypes = golibvirt.DomainStatsState | golibvirt.DomainStatsCPUTotal | golibvirt.DomainStatsBalloon |
	golibvirt.DomainStatsVCPU | golibvirt.DomainStatsInterface | golibvirt.DomainStatsBlock

// DomainStats reads every domain's state and counters in one call.
func (c *Conn) DomainStats(ctx context.Context) ([]hypervisor.DomainStats, error) {
	recs, err := do(ctx, c, "read domain stats", func(l *golibvirt.Libvirt) ([]golibvirt.DomainStatsRecord, error) {
		return l.ConnectGetAllDomainStats(nil, uint32(statsTypes), 0)
	})
	if err != nil {
		return nil, err
	}
	out := make([]hypervisor.DomainStats, 0, len(recs))
	for _, r := range recs {
		out = append(out, parseStats(r))
	}
	return out, nil
}

// parseStats reads one record's typed parameters ("state.state",
// "block.0.rd.bytes", ...).
func parseStats(r golibvirt.DomainStatsRecord) hypervisor.DomainStats {
	s := hypervisor.DomainStats{Name: r.Dom.Name, UUID: uuidString(r.Dom.UUID)}
	var reason int32
	disks := map[int]*hypervisor.DiskStats{}
	nics := map[int]*hypervisor.NICStats{}
	for _, p := range r.Params {
		v := statUint(p.Value.I)
		switch p.Field {
		case "state.state":
			s.State = hypervisor.State(v)
		case "state.reason":
			reason = int32(v)
		case "cpu.time":
			s.CPUTime = v
		case "vcpu.current":
			s.VCPUs = int(v)
		case "balloon.current":
			s.MemoryCurrent = v * 1024
		case "balloon.maximum":
			s.MemoryMax = v * 1024
		case "balloon.rss":
			s.MemoryRSS = v * 1024
		}
		group, rest, ok := strings.Cut(p.Field, ".")
		if !ok || (group != "block" && group != "net") {
			continue
		}
		idx, field, ok := strings.Cut(rest, ".")
		i, err := strconv.Atoi(idx)
		if !ok || err != nil {
			continue
		}
		if group == "block" {
			d := entry(disks, i)
			switch field {
			case "name":
				d.Name, _ = p.Value.I.(string)
			case "rd.bytes":
				d.ReadBytes = v
			case "wr.bytes":
				d.WriteBytes = v
			case "rd.reqs":
				d.ReadOps = v
			case "wr.reqs":
				d.WriteOps = v
			}
			continue
		}
		n := entry(nics, i)
		switch field {
		case "name":
			n.Name, _ = p.Value.I.(string)
		case "rx.bytes":
			n.RxBytes = v
		case "tx.bytes":
			n.TxBytes = v
		case "rx.pkts":
			n.RxPackets = v
		case "tx.pkts":
			n.TxPackets = v
		}
	}
	s.Reason = stateReason(s.State, reason)
	s.Disks, s.NICs = byIndex(disks), byIndex(nics)
	return s
}

// entry returns m[i], adding a zero T there first.
func entry[T any](m map[int]*T, i int) *T {
	if m[i] == nil {
		m[i] = new(T)
	}
	return m[i]
}

// byIndex returns m's values in index order (nil when m is empty).
func byIndex[T any](m map[int]*T) []T {
	var out []T
	for _, i := range slices.Sorted(maps.Keys(m)) {
		out = append(out, *m[i])
	}
	return out
}

func statUint(v any) uint64 {
	switch x := v.(type) {
	case int32:
		return uint64(max(x, 0))
	case uint32:
		return uint64(x)
	case int64:
		return uint64(max(x, 0))
	case uint64:
		return x
	case float64:
		return uint64(max(x, 0))
	}
	return 0
}

// eventDetails names each lifecycle event's details, as libvirt's
// virDomainEvent*DetailType enums (in order).
var eventDetails = map[string][]string{
	hypervisor.EventDefined:     {"added", "updated", "renamed", "from snapshot"},
	hypervisor.EventUndefined:   {"removed", "renamed"},
	hypervisor.EventStarted:     {"booted", "migrated", "restored", "from snapshot", "woken up", "recreated"},
	hypervisor.EventSuspended:   {"paused", "migrated", "I/O error", "watchdog", "restored", "from snapshot", "API error", "postcopy", "postcopy failed"},
	hypervisor.EventResumed:     {"unpaused", "migrated", "from snapshot", "postcopy", "postcopy failed"},
	hypervisor.EventStopped:     {"shut down", "destroyed", "crashed", "migrated", "saved", "failed", "from snapshot", "recreated"},
	hypervisor.EventShutdown:    {"finished", "guest", "host"},
	hypervisor.EventPMSuspended: {"memory", "disk"},
	hypervisor.EventCrashed:     {"panicked", "crashloaded"},
}

// eventNames are libvirt's virDomainEventType, in order.
var eventNames = []string{hypervisor.EventDefined, hypervisor.EventUndefined, hypervisor.EventStarted, hypervisor.EventSuspended,
	hypervisor.EventResumed, hypervisor.EventStopped, hypervisor.EventShutdown, hypervisor.EventPMSuspended, hypervisor.EventCrashed}

func lifecycleEvent(m golibvirt.DomainEventLifecycleMsg) hypervisor.DomainEvent {
	e := hypervisor.DomainEvent{Domain: m.Dom.Name, UUID: uuidString(m.Dom.UUID), Event: fmt.Sprintf("event-%d", m.Event)}
	if int(m.Event) >= 0 && int(m.Event) < len(eventNames) {
		e.Event = eventNames[m.Event]
		if d := eventDetails[e.Event]; int(m.Detail) >= 0 && int(m.Detail) < len(d) {
			e.Detail = d[m.Detail]
		}
	}
	return e
}

// DomainEvents subscribes to lifecycle events on a connection of its own
// (so that a slow reader never holds up the calls of the main one). The
// channel closes when ctx ends or libvirt goes away.
func (c *Conn) DomainEvents(ctx context.Context) (<-chan hypervisor.DomainEvent, error) {
	l, answered, err := c.dial(ctx)
	switch {
	case !answered:
		return nil, err
	case err != nil:
		return nil, fmt.Errorf("subscribe to libvirt events: libvirt is not reachable at %s: %v: %w", c.socket, err, hypervisor.ErrUnavailable)
	}
	sctx, cancel := context.WithCancel(ctx)
	in, err := l.LifecycleEvents(sctx)
	if err != nil {
		cancel()
		_ = l.Disconnect()
		return nil, c.mapError("subscribe to libvirt events", err)
	}
	out := make(chan hypervisor.DomainEvent, 64)
	go func() {
		defer close(out)
		defer func() {
			// Close the connection before go-libvirt deregisters the
			// callback: its goroutine sends the deregister only after
			// closing our channel, so a Disconnect after draining it raced
			// that RPC, and libvirtd 9.0 crashes (NULL callback list in
			// its close handler) when a client closes while a deregister
			// is being served. A closed connection makes libvirtd drop the
			// callbacks itself.
			_ = l.Disconnect()
			cancel()
			for range in { // let go-libvirt's goroutine finish
			}
		}()
		for {
			select {
			case m, ok := <-in:
				if !ok {
					return
				}
				select {
				case out <- lifecycleEvent(m):
				case <-ctx.Done():
					return
				}
			case <-l.Disconnected():
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

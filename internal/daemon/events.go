package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/godwit-project/godwit/api"
)

// How often the stream sends a comment to keep proxies from closing it,
// and how long to wait before subscribing to libvirt's events again.
const (
	keepAliveEvery = 15 * time.Second
	resubscribeMin = time.Second
	resubscribeMax = 10 * time.Second
)

// watchLibvirtEvents keeps a subscription to libvirt's lifecycle events,
// subscribing again after libvirt outages, and feeds them to the health
// checks and the event stream.
func (d *Daemon) watchLibvirtEvents(ctx context.Context) {
	wait := resubscribeMin
	subscribed := false
	for ctx.Err() == nil {
		ch, err := d.hv.DomainEvents(ctx)
		if err != nil {
			if subscribed {
				d.log.Warn("cannot subscribe to libvirt events; retrying", "err", err)
				subscribed = false
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, resubscribeMax)
			continue
		}
		d.log.Debug("subscribed to libvirt lifecycle events")
		subscribed, wait = true, resubscribeMin
		for e := range ch {
			d.mon.health.DomainEvent(e)
			d.mon.bus.Publish(api.Event{Type: api.EventVM, VM: e.Domain, Lifecycle: &api.Lifecycle{Event: e.Event, Detail: e.Detail}})
		}
		if ctx.Err() == nil {
			d.log.Warn("lost the libvirt event subscription; subscribing again")
		}
	}
}

// opEvents publishes operation changes: every state change, and progress
// at most twice a second per operation.
type opEvents struct {
	d    *Daemon
	mu   sync.Mutex
	last map[string]opSeen
}

type opSeen struct {
	state api.OpState
	at    time.Time
}

const progressEvery = 500 * time.Millisecond

func (o *opEvents) changed(op api.Operation) {
	o.mu.Lock()
	prev, ok := o.last[op.ID]
	now := time.Now()
	if ok && prev.state == op.State && now.Sub(prev.at) < progressEvery {
		o.mu.Unlock()
		return
	}
	if op.State.Final() {
		delete(o.last, op.ID)
	} else {
		o.last[op.ID] = opSeen{op.State, now}
	}
	o.mu.Unlock()
	vm, _ := strings.CutPrefix(op.Target, "vm/")
	if vm == op.Target {
		vm = ""
	}
	o.d.mon.bus.Publish(api.Event{Type: api.EventOperation, VM: vm, Operation: &op})
}

type eventsInput struct {
	VM          string `query:"vm" doc:"Only events about this VM (in a cluster: from the VM's host)."`
	Host        string `query:"host" doc:"In a cluster: the events of this host (default: of the host asked, or of the VM's)."`
	Type        string `query:"type" enum:"vm,operation," doc:"Only events of this type."`
	LastEventID string `header:"Last-Event-ID" doc:"Resume after this event id (what SSE clients send when they reconnect)."`
	After       uint64 `query:"after" doc:"Resume after this event id (for clients that cannot set Last-Event-ID)."`
}

// registerEvents streams events as server-sent events.
func (d *Daemon) registerEvents(a huma.API, o huma.Operation) {
	o.Responses = map[string]*huma.Response{"200": {
		Description: "A stream of server-sent events: 'event: vm|operation|lost', 'id: N', 'data: <an Event as JSON>'",
		// The schema is that of each event's data line.
		Content: map[string]*huma.MediaType{"text/event-stream": {
			Schema: a.OpenAPI().Components.Schemas.Schema(reflect.TypeOf(api.Event{}), true, "Event"),
		}},
	}}
	huma.Register(a, o, func(ctx context.Context, in *eventsInput) (*huma.StreamResponse, error) {
		after := in.After
		if in.LastEventID != "" {
			id, err := strconv.ParseUint(strings.TrimSpace(in.LastEventID), 10, 64)
			if err != nil {
				return nil, toStatus(api.BadRequest("Last-Event-ID: %q is not an event id", in.LastEventID))
			}
			after = id
		}
		filter := func(e api.Event) bool {
			return (in.VM == "" || e.VM == in.VM || e.Type == api.EventLost) && (in.Type == "" || e.Type == in.Type || e.Type == api.EventLost)
		}
		return &huma.StreamResponse{Body: func(hc huma.Context) {
			hc.SetHeader("Content-Type", "text/event-stream")
			hc.SetHeader("Cache-Control", "no-store")
			hc.SetHeader("X-Accel-Buffering", "no")
			w := flushWriter{hc.BodyWriter()}
			backlog, sub := d.mon.bus.Subscribe(after, filter)
			defer sub.Close()
			fmt.Fprint(w, ": godwit events\n\n")
			w.Flush()
			for _, e := range backlog {
				if writeEvent(w, e) != nil {
					return
				}
			}
			w.Flush()
			tick := time.NewTicker(keepAliveEvery)
			defer tick.Stop()
			sctx := hc.Context()
			for {
				select {
				case <-sctx.Done():
					return
				case <-tick.C:
					if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
						return
					}
					w.Flush()
				case e, ok := <-sub.C:
					if !ok {
						// Fell behind: end the stream; the client resumes
						// from its last id and gets the rest from the ring.
						return
					}
					if writeEvent(w, e) != nil {
						return
					}
					w.Flush()
				}
			}
		}}, nil
	})
}

func writeEvent(w flushWriter, e api.Event) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", e.ID, e.Type, b)
	return err
}

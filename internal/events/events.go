// Package events is the daemon's event stream: libvirt lifecycle events
// and operation changes, numbered with increasing ids and kept in a ring
// buffer, so a client that lost its connection resumes where it stopped
// (SSE's Last-Event-ID). Ids start from the daemon's start time in
// microseconds, so they keep increasing across restarts and an id from
// before a restart is recognised as too old (the client hears of the gap).
//
// It neither reads libvirt nor serves HTTP: the daemon feeds it and
// streams what subscribers receive.
package events

import (
	"fmt"
	"sync"
	"time"

	"github.com/godwit-project/godwit/api"
)

// DefaultSize is how many events the ring keeps.
const DefaultSize = 4096

// subBuffer is how many events a subscriber may lag behind before it is
// dropped (it then resumes from the ring with its last id).
const subBuffer = 512

// Bus numbers, keeps and fans out events.
type Bus struct {
	mu   sync.Mutex
	ring []api.Event // oldest first once full: ring[head:] + ring[:head]
	head int
	full bool
	next uint64
	subs map[*Sub]struct{}
	now  func() time.Time
}

// New returns a bus keeping the last size events.
func New(size int) *Bus {
	if size <= 0 {
		size = DefaultSize
	}
	return &Bus{ring: make([]api.Event, size), next: uint64(time.Now().UnixMicro()), subs: map[*Sub]struct{}{}, now: time.Now}
}

// Sub is a subscription. C closes when the subscriber fell too far behind
// (Dropped reports it) or Close was called.
type Sub struct {
	C       <-chan api.Event
	c       chan api.Event
	b       *Bus
	filter  func(api.Event) bool
	dropped bool
	last    uint64
}

// Publish numbers e, keeps it and sends it to the subscribers. It never
// blocks: a subscriber with no room left is dropped.
func (b *Bus) Publish(e api.Event) api.Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	e.ID = b.next
	b.next++
	if e.Time.IsZero() {
		e.Time = b.now().UTC()
	}
	b.ring[b.head] = e
	b.head = (b.head + 1) % len(b.ring)
	if b.head == 0 {
		b.full = true
	}
	for s := range b.subs {
		if s.filter != nil && !s.filter(e) {
			continue
		}
		select {
		case s.c <- e:
			s.last = e.ID
		default:
			s.dropped = true
			delete(b.subs, s)
			close(s.c)
		}
	}
	return e
}

// kept returns the ring's events, oldest first. Callers hold b.mu.
func (b *Bus) kept() []api.Event {
	if !b.full {
		return append([]api.Event(nil), b.ring[:b.head]...)
	}
	return append(append([]api.Event(nil), b.ring[b.head:]...), b.ring[:b.head]...)
}

// LastID is the id of the newest event (0 when none yet).
func (b *Bus) LastID() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.head == 0 && !b.full {
		return 0
	}
	return b.next - 1
}

// Subscribe returns the kept events after id after (none when after is 0)
// that pass filter, and a subscription to the ones to come. When after
// is older than the oldest kept event, the backlog starts with an event of
// type lost saying so.
func (b *Bus) Subscribe(after uint64, filter func(api.Event) bool) ([]api.Event, *Sub) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var backlog []api.Event
	if after > 0 {
		kept := b.kept()
		oldest := b.next // next id when nothing is kept
		if len(kept) > 0 {
			oldest = kept[0].ID
		}
		if after+1 < oldest || after >= b.next {
			// Too old, or from another run of the daemon (ids restart
			// from the start time): some events in between are gone.
			backlog = append(backlog, api.Event{ID: max(oldest, 1) - 1, Time: b.now().UTC(), Type: api.EventLost,
				Message: fmt.Sprintf("events after id %d are no longer kept (the daemon keeps the last %d, and none from before a restart); re-read the state", after, len(b.ring))})
			after = 0
			for _, e := range kept {
				if filter == nil || filter(e) {
					backlog = append(backlog, e)
				}
			}
		} else {
			for _, e := range kept {
				if e.ID > after && (filter == nil || filter(e)) {
					backlog = append(backlog, e)
				}
			}
		}
	}
	c := make(chan api.Event, subBuffer)
	s := &Sub{C: c, c: c, b: b, filter: filter}
	b.subs[s] = struct{}{}
	return backlog, s
}

// Dropped reports whether the subscription ended because it fell behind.
func (s *Sub) Dropped() bool {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	return s.dropped
}

// Close ends the subscription.
func (s *Sub) Close() {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	if _, ok := s.b.subs[s]; ok {
		delete(s.b.subs, s)
		close(s.c)
	}
}

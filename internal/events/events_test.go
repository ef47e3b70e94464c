package events

import (
	"fmt"
	"testing"

	"github.com/godwit-project/godwit/api"
)

func vmEvent(vm string) api.Event { return api.Event{Type: api.EventVM, VM: vm} }

func TestResume(t *testing.T) {
	b := New(8)
	var ids []uint64
	for i := range 5 {
		ids = append(ids, b.Publish(vmEvent(fmt.Sprint("vm", i))).ID)
	}
	for i := 1; i < len(ids); i++ {
		if ids[i] != ids[i-1]+1 {
			t.Fatalf("ids not consecutive: %v", ids)
		}
	}
	// Resume after the second: the last three, then live ones.
	backlog, sub := b.Subscribe(ids[1], nil)
	defer sub.Close()
	if len(backlog) != 3 || backlog[0].ID != ids[2] || backlog[2].VM != "vm4" {
		t.Fatalf("backlog after %d: %+v", ids[1], backlog)
	}
	e := b.Publish(vmEvent("vm5"))
	if got := <-sub.C; got.ID != e.ID || got.VM != "vm5" {
		t.Fatalf("live event %+v, want %+v", got, e)
	}
	// From the newest: nothing missed, nothing lost.
	if backlog, s := b.Subscribe(e.ID, nil); len(backlog) != 0 {
		t.Fatalf("resume from the newest: %+v", backlog)
	} else {
		s.Close()
	}
	// No id: only what comes.
	if backlog, s := b.Subscribe(0, nil); len(backlog) != 0 {
		t.Fatalf("no id: %+v", backlog)
	} else {
		s.Close()
	}
}

func TestTooOldSaysLost(t *testing.T) {
	b := New(4)
	first := b.Publish(vmEvent("a")).ID
	for range 10 {
		b.Publish(vmEvent("b"))
	}
	backlog, sub := b.Subscribe(first, nil)
	defer sub.Close()
	if len(backlog) != 5 || backlog[0].Type != api.EventLost || backlog[1].ID != first+7 {
		t.Fatalf("backlog: %+v", backlog)
	}
	// An id from an earlier run of the daemon (older than its start).
	b2 := New(4)
	b2.Publish(vmEvent("c"))
	if backlog, s := b2.Subscribe(first, nil); len(backlog) != 2 || backlog[0].Type != api.EventLost {
		t.Fatalf("id from an earlier run: %+v", backlog)
	} else {
		s.Close()
	}
}

func TestFilterAndSlowSubscriber(t *testing.T) {
	b := New(16)
	_, web := b.Subscribe(0, func(e api.Event) bool { return e.VM == "web" })
	_, slow := b.Subscribe(0, nil)
	b.Publish(vmEvent("db"))
	b.Publish(vmEvent("web"))
	if got := <-web.C; got.VM != "web" {
		t.Fatalf("filtered subscriber got %+v", got)
	}
	for range subBuffer + 1 {
		b.Publish(vmEvent("x"))
	}
	n := 0
	for range slow.C {
		n++
	}
	if !slow.Dropped() || n != subBuffer {
		t.Fatalf("slow subscriber: dropped %v after %d events", slow.Dropped(), n)
	}
	web.Close()
	web.Close() // twice is fine
}

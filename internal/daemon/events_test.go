package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
	"github.com/godwit-project/godwit/internal/hypervisor"
)

// collect reads events until n match want or the time is up.
func collect(t *testing.T, c *client.Client, opts client.EventsOptions, n int, want func(api.Event) bool, during func()) []api.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []api.Event
	errDone := errors.New("done")
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- c.Events(ctx, opts, func(e api.Event) error {
			if want(e) {
				got = append(got, e)
			}
			if len(got) >= n {
				return errDone
			}
			return nil
		})
	}()
	// The stream is subscribed once its first byte arrived; give it a moment.
	go func() { time.Sleep(100 * time.Millisecond); close(started) }()
	<-started
	if during != nil {
		during()
	}
	if err := <-done; !errors.Is(err, errDone) {
		t.Fatalf("events: %v after %d events: %+v", err, len(got), got)
	}
	return got
}

func describe(e api.Event) string {
	switch {
	case e.Lifecycle != nil:
		return fmt.Sprintf("vm %s %s/%s", e.VM, e.Lifecycle.Event, e.Lifecycle.Detail)
	case e.Operation != nil:
		return fmt.Sprintf("op %s %s %s", e.Operation.Kind, e.Operation.Target, e.Operation.State)
	}
	return e.Type + " " + e.Message
}

func TestEventsStreamAndResume(t *testing.T) {
	td := newDaemon(t)
	td.waitReady()
	ctx := context.Background()
	td.createVM(td.spec("db"), false)
	td.createVM(td.spec("web1"), false)

	// Follow web1: its start operation and libvirt's "started" event.
	got := collect(t, td.c, client.EventsOptions{VM: "web1"}, 3, func(e api.Event) bool { return true }, func() {
		op, err := td.c.StartVM(ctx, "web1")
		if err != nil {
			t.Error(err)
			return
		}
		td.wait(op)
		if op, err := td.c.StartVM(ctx, "db"); err == nil { // not web1: filtered out
			td.wait(op)
		}
	})
	var lines []string
	for _, e := range got {
		lines = append(lines, describe(e))
		if e.VM != "web1" || e.ID == 0 || e.Time.IsZero() {
			t.Errorf("event %+v", e)
		}
	}
	all := strings.Join(lines, "\n")
	for _, w := range []string{"op vm.start vm/web1 running", "vm web1 started/booted"} {
		if !strings.Contains(all, w) {
			t.Errorf("events lack %q:\n%s", w, all)
		}
	}
	last := got[len(got)-1].ID

	// What happens while no one listens is there on resume, in order.
	if err := td.f.SetState("web1", hypervisor.StateShutoff, "crashed"); err != nil {
		t.Fatal(err)
	}
	resumed := collect(t, td.c, client.EventsOptions{VM: "web1", LastEventID: last}, 1, func(e api.Event) bool {
		return e.Lifecycle != nil && e.Lifecycle.Event == hypervisor.EventStopped
	}, nil)
	if resumed[0].ID <= last || resumed[0].Lifecycle.Detail != "crashed" {
		t.Fatalf("resumed with %+v after %d", resumed[0], last)
	}
	// An id the daemon no longer keeps says events were lost.
	lost := collect(t, td.c, client.EventsOptions{LastEventID: 5}, 1, func(e api.Event) bool { return e.Type == api.EventLost }, nil)
	if !strings.Contains(lost[0].Message, "no longer kept") {
		t.Fatalf("lost event: %+v", lost[0])
	}
	// A bad Last-Event-ID is a 400.
	status, h, body := td.doHeader("GET", "/v1/events", "Last-Event-ID", "yesterday")
	wantError(t, "bad Last-Event-ID", status, h, body, 400, "Last-Event-ID")
}

// libvirt going away ends the subscription; the daemon subscribes again.
func TestEventsResubscribeAfterOutage(t *testing.T) {
	td := newDaemon(t)
	td.waitReady()
	td.createVM(td.spec("web1"), false)
	td.f.DropSubscribers() // the connection to libvirtd broke
	got := collect(t, td.c, client.EventsOptions{Type: api.EventVM}, 1, func(e api.Event) bool {
		return e.Lifecycle != nil && e.Lifecycle.Event == hypervisor.EventStarted
	}, func() {
		// The daemon subscribes again within a few seconds.
		waitFor(t, "a new subscription", func() bool { return countCalls(td.f.Calls(), "DomainEvents") >= 2 })
		op, err := td.c.StartVM(context.Background(), "web1")
		if err != nil {
			t.Error(err)
			return
		}
		td.wait(op)
	})
	if got[0].VM != "web1" {
		t.Fatalf("event after the outage: %+v", got[0])
	}
}

// doHeader is do with one request header.
func (td *testDaemon) doHeader(method, path, key, value string) (int, http.Header, []byte) {
	td.t.Helper()
	req, err := http.NewRequest(method, "http://godwit"+path, nil)
	if err != nil {
		td.t.Fatal(err)
	}
	req.Header.Set(key, value)
	resp, err := td.raw.Do(req)
	if err != nil {
		td.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

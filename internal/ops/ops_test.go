package ops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/store"
	"github.com/godwit-project/godwit/internal/store/bolt"
)

func newManager(t *testing.T, path string) (*Manager, store.Store) {
	t.Helper()
	s, err := bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return NewManager(s, slog.New(slog.NewTextHandler(io.Discard, nil))), s
}

func wait(t *testing.T, m *Manager, id string) api.Operation {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	op, err := m.Wait(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !op.State.Final() {
		t.Fatalf("operation %s still %s after 5s", id, op.State)
	}
	return op
}

func TestLifecycle(t *testing.T) {
	m, s := newManager(t, filepath.Join(t.TempDir(), "db"))
	defer s.Close()
	ctx := context.Background()

	release := make(chan struct{})
	op := m.Start("vm.create", "vm/a", func(ctx context.Context, o *Op) error {
		o.Progress("defining", 1, 3, "steps")
		<-release
		o.SetResult(map[string]int{"n": 7})
		return nil
	})
	if op.State != api.OpRunning || op.ID == "" {
		t.Fatalf("started op = %+v", op)
	}
	active, _ := m.List(ctx, Filter{Active: true})
	if len(active) != 1 {
		t.Fatalf("active = %d, want 1", len(active))
	}
	close(release)
	done := wait(t, m, op.ID)
	if done.State != api.OpSucceeded || string(done.Result) != `{"n":7}` || done.FinishedAt.IsZero() {
		t.Fatalf("finished op = %+v", done)
	}
	// Finished operations are served from the store.
	got, err := m.Get(ctx, op.ID)
	if err != nil || got.State != api.OpSucceeded || got.Progress.Message != "defining" {
		t.Fatalf("Get after end = %+v, %v", got, err)
	}
	if _, err := m.Cancel(ctx, op.ID); api.Status(err) != 409 {
		t.Fatalf("cancel of an ended op: %v, want 409", err)
	}
	if _, err := m.Get(ctx, "nope"); api.Status(err) != 404 {
		t.Fatalf("Get unknown: %v, want 404", err)
	}
}

func TestFailureKeepsStatus(t *testing.T) {
	m, s := newManager(t, filepath.Join(t.TempDir(), "db"))
	defer s.Close()
	op := m.Start("vm.start", "vm/a", func(ctx context.Context, o *Op) error {
		return api.Conflict("vm a is already running")
	})
	done := wait(t, m, op.ID)
	if done.State != api.OpFailed || done.ErrorCode != 409 || done.Error != "vm a is already running" {
		t.Fatalf("failed op = %+v", done)
	}
	op = m.Start("boom", "x", func(ctx context.Context, o *Op) error { panic("bad") })
	if done := wait(t, m, op.ID); done.State != api.OpFailed || done.Error != "internal error: bad" {
		t.Fatalf("panicking op = %+v", done)
	}
}

func TestCancel(t *testing.T) {
	m, s := newManager(t, filepath.Join(t.TempDir(), "db"))
	defer s.Close()
	op := m.Start("slow", "x", func(ctx context.Context, o *Op) error {
		<-ctx.Done()
		return ctx.Err()
	})
	if _, err := m.Cancel(context.Background(), op.ID); err != nil {
		t.Fatal(err)
	}
	if done := wait(t, m, op.ID); done.State != api.OpCancelled {
		t.Fatalf("cancelled op = %+v", done)
	}
	// An op that fails for its own reasons after a cancel reports that reason.
	op = m.Start("slow", "x", func(ctx context.Context, o *Op) error {
		<-ctx.Done()
		return errors.New("rollback failed")
	})
	m.Cancel(context.Background(), op.ID)
	if done := wait(t, m, op.ID); done.State != api.OpFailed || done.Error != "rollback failed" {
		t.Fatalf("op failing on cancel = %+v", done)
	}
}

// An operation running when the process died ends as failed at next start.
func TestRecoverAfterRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	m, s := newManager(t, path)
	block := make(chan struct{})
	defer close(block)
	op := m.Start("vm.create", "vm/a", func(ctx context.Context, o *Op) error { <-block; return nil })
	s.Close() // the "crash": the op never finishes in this store

	m2, s2 := newManager(t, path)
	defer s2.Close()
	n, err := m2.Recover(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("Recover = %d, %v; want 1", n, err)
	}
	got, err := m2.Get(context.Background(), op.ID)
	if err != nil || got.State != api.OpFailed || got.Error == "" {
		t.Fatalf("recovered op = %+v, %v", got, err)
	}
}

// An operation cut off by the daemon stopping ends failed with the same
// reason as one found running after a crash, not a bare "context canceled".
func TestShutdownFailsRunningOpsWithAReason(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	m, s := newManager(t, path)
	op := m.Start("vm.stop", "vm/a", func(ctx context.Context, o *Op) error {
		<-ctx.Done()
		return fmt.Errorf("stop vm a: %w", ctx.Err())
	})
	cancelled := m.Start("vm.stop", "vm/b", func(ctx context.Context, o *Op) error {
		<-ctx.Done()
		return ctx.Err()
	})
	if _, err := m.Cancel(context.Background(), cancelled.ID); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m.Shutdown(ctx)
	s.Close()

	m2, s2 := newManager(t, path)
	defer s2.Close()
	if n, err := m2.Recover(context.Background()); err != nil || n != 0 {
		t.Fatalf("Recover = %d, %v; the stop should have settled every op", n, err)
	}
	got, err := m2.Get(context.Background(), op.ID)
	if err != nil || got.State != api.OpFailed || !strings.Contains(got.Error, "daemon stopped") {
		t.Fatalf("op cut off by shutdown = %s %q, %v; want failed saying the daemon stopped", got.State, got.Error, err)
	}
	if got, _ := m2.Get(context.Background(), cancelled.ID); got.State != api.OpCancelled {
		t.Fatalf("op cancelled before the shutdown = %s %q", got.State, got.Error)
	}
}

// In a cluster ids name their host; a Recover run late (the store came
// back) leaves the operations of this process alone.
func TestHostIDsAndLateRecover(t *testing.T) {
	m, s := newManager(t, filepath.Join(t.TempDir(), "db"))
	defer s.Close()
	ctx := context.Background()
	if HostOf("18f-abc") != "" {
		t.Fatal("a single host's id names a host")
	}
	m.SetHost("hosta")
	release := make(chan struct{})
	op := m.Start("vm.stop", "vm/a", func(ctx context.Context, o *Op) error { <-release; return nil })
	if HostOf(op.ID) != "hosta" || !strings.HasSuffix(op.ID, "@hosta") {
		t.Fatalf("id %s does not name hosta", op.ID)
	}
	if n, err := m.Recover(ctx); err != nil || n != 0 {
		t.Fatalf("late Recover marked %d of this process's operations (%v)", n, err)
	}
	close(release)
	if got := wait(t, m, op.ID); got.State != api.OpSucceeded {
		t.Fatalf("operation after a late Recover: %s %s", got.State, got.Error)
	}
}

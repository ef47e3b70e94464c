package ops

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
)

// Every listener sees every change: the start, progress, and the end.
func TestOnChangeFansOut(t *testing.T) {
	m, s := newManager(t, filepath.Join(t.TempDir(), "ops.db"))
	defer s.Close()
	var mu sync.Mutex
	seen := map[string][]api.OpState{}
	for _, name := range []string{"events", "metrics"} {
		m.OnChange(func(op api.Operation) {
			mu.Lock()
			seen[name] = append(seen[name], op.State)
			mu.Unlock()
		})
	}
	op := m.Start("vm.test", "vm/x", func(ctx context.Context, o *Op) error {
		o.Progress("half", 1, 2, "")
		return nil
	})
	wait(t, m, op.ID)
	// The final change is delivered right after waiters are released.
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(seen["events"]) + len(seen["metrics"])
		mu.Unlock()
		if n == 6 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, name := range []string{"events", "metrics"} {
		got := seen[name]
		if len(got) != 3 || got[0] != api.OpRunning || got[2] != api.OpSucceeded {
			t.Errorf("listener %s saw %v, want running, running, succeeded", name, got)
		}
	}
}

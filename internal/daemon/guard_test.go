package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/godwit-project/godwit/internal/fenceguard"
)

// The daemon's fence guards are this test binary run again as
// "fence-guard", as godwit runs itself.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == fenceguard.Command {
		os.Exit(fenceguard.Main(os.Args[2:], os.Stderr))
	}
	os.Exit(m.Run())
}

// In a cluster the daemon keeps a fence guard. A daemon killed (no more
// feeds) leaves it to fire at its deadline, and the next daemon waits
// for it before it rejoins, then keeps a guard of its own; a clean stop
// (the host frozen) stands that one down.
func TestFenceGuardFollowsTheDaemon(t *testing.T) {
	hosts := clusterWith(t, func(c *Config) { c.FenceGuard = os.Args[0] }, "a")
	a := hosts[0]
	first := waitGuard(t, a, 0)

	a.kill()
	t0 := time.Now()
	a.start()
	took := time.Since(t0)
	if fenceguard.IsGuard(first, a.d.guardPIDFile()) {
		t.Fatalf("the killed daemon's guard (pid %d) still runs after the new daemon started", first)
	}
	log := guardLog(a)
	if !strings.Contains(log, fmt.Sprintf("fence-guard[%d]: exits: not fed before its deadline", first)) {
		t.Fatalf("the killed daemon's guard did not fire on its deadline; its log:\n%s", log)
	}
	second := waitGuard(t, a, first)
	t.Logf("the new daemon started in %s, after the old guard (pid %d) fired; its own guard is pid %d", took.Round(time.Millisecond), first, second)

	a.cancel()
	for end := time.Now().Add(20 * time.Second); fenceguard.IsGuard(second, a.d.guardPIDFile()); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("the guard (pid %d) still runs 20 s after a clean stop; its log:\n%s", second, guardLog(a))
		}
	}
	if log := guardLog(a); !strings.Contains(log, fmt.Sprintf("fence-guard[%d]: exits: told to stand down", second)) || strings.Contains(log, fmt.Sprintf("fence-guard[%d]: fencing", second)) {
		t.Fatalf("the guard of a clean stop did not stand down; its log:\n%s", log)
	}
}

// waitGuard waits for h's daemon to run a fence guard other than not.
func waitGuard(t *testing.T, h *host, not int) int {
	t.Helper()
	pidFile := filepath.Join(h.cfg.StateDir, "fence-guard.pid")
	for end := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		b, _ := os.ReadFile(pidFile)
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid != not && fenceguard.IsGuard(pid, pidFile) {
			return pid
		}
		if time.Now().After(end) {
			t.Fatalf("%s runs no fence guard after 20 s; its log:\n%s", h.name, guardLog(h))
		}
	}
}

func guardLog(h *host) string {
	b, _ := os.ReadFile(filepath.Join(h.cfg.StateDir, "fence-guard.log"))
	return string(b)
}

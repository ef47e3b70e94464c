// Package membertest starts embedded etcd members for tests: loopback
// addresses on free ports, a throwaway CA, and short raft timings (10ms
// heartbeat, 100ms election) that only tests may use.
package membertest

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/godwit-project/godwit/internal/cluster/member"
	"github.com/godwit-project/godwit/internal/pki"
)

// CA makes a CA for a test cluster.
func CA(t testing.TB) *pki.Identity {
	t.Helper()
	id, err := pki.LoadOrCreate(t.TempDir(), "test", []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// Config is a member named name on two free loopback ports, its data and
// certificate (from ca) under dir.
func Config(t testing.TB, ca *pki.Identity, dir, name string) member.Config {
	t.Helper()
	files, err := ca.WriteMemberTLS(filepath.Join(dir, "tls"), name, []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	return member.Config{
		Name:         name,
		DataDir:      filepath.Join(dir, "etcd"),
		PeerURL:      fmt.Sprintf("https://127.0.0.1:%d", FreePort(t)),
		ClientURL:    fmt.Sprintf("https://127.0.0.1:%d", FreePort(t)),
		TLS:          files,
		ReadyTimeout: 5 * time.Second,
		TickMs:       10,
		ElectionMs:   100,
	}
}

// FreePort is a TCP port on 127.0.0.1 that nothing listened on a moment
// ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Single starts a one-member cluster, stopped when the test ends.
func Single(t testing.TB) *member.Member {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m, err := member.Init(ctx, Config(t, CA(t), t.TempDir(), "m1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/testenv"
	"github.com/godwit-project/godwit/test/testbed"
)

// newBed starts n simulated hosts (namespaces, private libvirtds, daemons)
// and removes them when the test ends, whatever happened.
func newBed(t *testing.T, n int) *testbed.Bed {
	return newBedOpts(t, testbed.Options{Hosts: n})
}

func newBedOpts(t *testing.T, opts testbed.Options) *testbed.Bed {
	t.Helper()
	testenv.RequireLibvirt(t)
	testenv.RequireCommand(t, "nsenter")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	opts.Godwit, opts.Log = godwitBin, testLog{t}
	b, err := testbed.Up(ctx, opts)
	if err != nil {
		t.Fatalf("test bed: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, h := range b.Hosts {
				t.Logf("%s daemon log:\n%s", h.Name, h.DaemonLog())
			}
		}
		b.Down()
	})
	return b
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Hosts join with a one-time token and then see each other over mutual TLS.
func TestPeersJoin(t *testing.T) {
	concurrent(t)
	b := newBed(t, 2)
	a, bb := b.Hosts[0], b.Hosts[1]
	ctx := ctxT(t, time.Minute)

	tok, err := bb.C.CreateJoinToken(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// A wrong name is refused and leaves no peer behind on this side.
	if _, err := a.C.AddPeer(ctx, api.PeerAdd{Name: "nothostb", URL: bb.URL(), Token: tok.Token}); api.Status(err) != 409 {
		t.Fatalf("join under a wrong name: %v, want 409", err)
	}
	// The token was spent by that attempt.
	if _, err := a.C.AddPeer(ctx, api.PeerAdd{Name: bb.Name, URL: bb.URL(), Token: tok.Token}); api.Status(err) != 403 || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("second use of a token: %v, want 403", err)
	}
	bb.C.RemovePeer(ctx, a.Name) // the half-joined first attempt
	tok, _ = bb.C.CreateJoinToken(ctx, time.Minute)
	out, err := a.CLI("host", "add", bb.Name, bb.URL(), "--token", tok.Token)
	if err != nil || !strings.Contains(out, "is now a peer") {
		t.Fatalf("host add: %v\n%s", err, out)
	}
	for _, h := range []*testbed.Host{a, bb} {
		l, err := h.C.ListPeers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Peers) != 1 || !l.Peers[0].Reachable || l.Peers[0].Host == nil || l.Peers[0].Host.CPUs == 0 {
			t.Fatalf("%s peers: %+v", h.Name, l.Peers)
		}
	}
	if out, err := a.CLI("host", "list"); err != nil || !strings.Contains(out, "hostb") || strings.Contains(out, "UNREACHABLE") {
		t.Fatalf("host list:\n%s", out)
	}
	// A token that does not match the host's CA is refused before any data
	// is sent; garbage is refused as such.
	other, err := a.C.CreateJoinToken(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// hosta's token, used against hostb's own URL: hostb's CA is not the
	// one the token pins.
	if _, err := bb.C.AddPeer(ctx, api.PeerAdd{Name: "hostc", URL: b.Hosts[1].URL(), Token: other.Token}); err == nil || !strings.Contains(err.Error(), "CA is not the one the token names") {
		t.Fatalf("a token of another host: %v, want the CA mismatch", err)
	}
	if _, err := a.C.AddPeer(ctx, api.PeerAdd{Name: "hostc", URL: "https://10.1.1.1:1", Token: "garbage"}); api.Status(err) != 400 {
		t.Fatalf("garbage token: %v, want 400", err)
	}
	// When a peer is unreachable, host list says so.
	if err := bb.Cut(); err != nil {
		t.Fatal(err)
	}
	l, err := a.C.ListPeers(ctx)
	if err != nil || len(l.Peers) != 1 || l.Peers[0].Reachable {
		t.Fatalf("cut peer listed as %+v (%v)", l.Peers, err)
	}
	bb.Restore()
}

package member_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/cluster/member"
	"github.com/godwit-project/godwit/internal/cluster/member/membertest"
	"github.com/godwit-project/godwit/internal/pki"
	"github.com/godwit-project/godwit/internal/store"
	"github.com/godwit-project/godwit/internal/store/etcd"
)

func bounded(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// host is one test host: its config (kept for restarts) and member.
type host struct {
	cfg member.Config
	m   *member.Member
}

func newHost(t *testing.T, ca *pki.Identity, name string) *host {
	h := &host{cfg: membertest.Config(t, ca, filepath.Join(t.TempDir(), name), name)}
	t.Cleanup(func() {
		if h.m != nil {
			h.m.Close()
		}
	})
	return h
}

func (h *host) store() *etcd.Store {
	return etcd.New(h.m.Client(), etcd.Options{Explain: h.m.Explain, Ready: h.m.HasLeader, Stale: h.m.LastView, Lost: h.m.LostNotify, Timeout: 2 * time.Second})
}

// learnerState asks the cluster (through m) whether name is a learner.
func learnerState(m *member.Member, name string) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := m.Client().MemberList(ctx)
	if err != nil {
		return false, err
	}
	for _, mm := range resp.Members {
		if mm.Name == name {
			return mm.IsLearner, nil
		}
	}
	return false, fmt.Errorf("%s is no member", name)
}

func isLearner(t *testing.T, m *member.Member, name string) bool {
	t.Helper()
	l, err := learnerState(m, name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// putEventually writes until a write succeeds (an election may be under
// way), within d.
func putEventually(t *testing.T, s store.Store, key string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := s.Put(context.Background(), "vms", key, []byte(key))
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no write of %s succeeded within %s: %v", key, d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCluster forms a 3-member cluster by Init and two learner Joins, then
// loses members one by one: one down still serves; two down is a minority
// that refuses writes with a 503 naming the lost members; a restart with
// no quorum returns instead of blocking; a dead member is removed.
func TestCluster(t *testing.T) {
	ca := membertest.CA(t)
	ctx := bounded(t, 80*time.Second)
	t0 := time.Now()
	step := func(what string) { t.Logf("%s after %s", what, time.Since(t0).Round(time.Millisecond)) }
	h1, h2, h3 := newHost(t, ca, "m1"), newHost(t, ca, "m2"), newHost(t, ca, "m3")
	var err error
	if h1.m, err = member.Init(ctx, h1.cfg); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h1.m.Promoted():
	default:
		t.Fatal("the first member does not vote")
	}

	for _, h := range []*host{h2, h3} {
		var sawLearner bool
		var hookErr error
		member.OnLearner(&h.cfg, func(m *member.Member) {
			// Asked of the cluster, through the existing member.
			sawLearner, hookErr = learnerState(h1.m, h.cfg.Name)
			sawLearner = sawLearner && m.Health(ctx).Learner
		})
		if h.m, err = member.Join(ctx, h.cfg, []string{h1.cfg.ClientURL}); err != nil {
			t.Fatal(err)
		}
		if !sawLearner || hookErr != nil {
			t.Fatalf("%s was not a learner before its promotion (%v)", h.cfg.Name, hookErr)
		}
		if isLearner(t, h1.m, h.cfg.Name) {
			t.Fatalf("%s is still a learner after Join", h.cfg.Name)
		}
	}

	step("formed")
	st, err := h1.m.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Members) != 3 || st.Leader == "" || st.Local != "m1" {
		t.Fatalf("status: %+v", st)
	}
	for _, ms := range st.Members {
		if !ms.Reachable || !ms.Healthy || ms.Learner || ms.RaftIndex == 0 || ms.DBSize == 0 {
			t.Fatalf("member status: %+v", ms)
		}
	}
	if h := h1.m.Health(ctx); h.Phase != member.PhaseReady || h.Voters != 3 || h.Reachable != 3 {
		t.Fatalf("health: %+v", h)
	}

	// A write on one member is read on another.
	s1, s3 := h1.store(), h3.store()
	if err := s1.Put(ctx, "vms", "before", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if v, err := s3.Get(ctx, "vms", "before"); err != nil || string(v) != "x" {
		t.Fatalf("read on m3: %q %v", v, err)
	}
	// In a quorum, a read that may be stale is not.
	sctx, note := store.AllowStale(ctx)
	if v, err := s3.Get(sctx, "vms", "before"); err != nil || string(v) != "x" {
		t.Fatalf("read on m3 allowing stale: %q %v", v, err)
	}
	if stale, _ := note.Stale(); stale {
		t.Fatal("a read in a quorum was noted stale")
	}

	// The voters are full: a fourth host is told to be a client.
	h4 := newHost(t, ca, "m4")
	if _, err := member.Join(ctx, h4.cfg, []string{h1.cfg.ClientURL}); !errors.Is(err, member.ErrVotersFull) {
		t.Fatalf("fourth Join: %v, want ErrVotersFull", err)
	}

	step("checked")
	// A watch served by m3 goes on, from where it was, when m3 dies.
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	ws, watched := watchVia(t, wctx, s1, h1.m, h3.cfg.ClientURL)
	ws.Client().SetEndpoints(h3.cfg.ClientURL, h1.cfg.ClientURL)
	if err := s1.Put(ctx, "watched", "w1", nil); err != nil {
		t.Fatal(err)
	}

	// One member down: the other two still serve writes.
	h3.m.Close()
	putEventually(t, s1, "one-down", 5*time.Second)
	for _, k := range []string{"w2", "w3"} {
		if err := s1.Put(ctx, "watched", k, nil); err != nil {
			t.Fatal(err)
		}
	}
	var keys []string
	for len(keys) < 3 {
		select {
		case ev := <-watched:
			keys = append(keys, ev.Key)
		case <-time.After(10 * time.Second):
			t.Fatalf("the watch stopped when m3 died, after %v", keys)
		}
	}
	if !slices.Equal(keys, []string{"w1", "w2", "w3"}) {
		t.Fatalf("watch across m3's death saw %v", keys)
	}
	stopWatch()

	// A watch on m1 alone: when m1 loses the quorum etcd cancels it (no
	// leader); it is watched again, and carries on once the quorum is back.
	_, seen := watchVia(t, ctx, s1, h1.m, h1.cfg.ClientURL)
	waitFor(t, 3*time.Second, "health to name m3 unreachable", func() bool {
		return slices.Equal(h1.m.Health(ctx).Unreachable, []string{"m3"})
	})
	if h := h1.m.Health(ctx); h.Phase != member.PhaseReady || h.Reachable != 2 {
		t.Fatalf("health with m3 down: %+v", h)
	}

	step("one down")
	// Two down: m1 alone is a minority and refuses, saying why.
	h2.m.Close()
	waitFor(t, 5*time.Second, "m1 to see it lost the quorum", func() bool {
		return h1.m.Health(ctx).Phase == member.PhaseWaiting
	})
	err = s1.Put(ctx, "vms", "minority", []byte("x"))
	var qe *member.QuorumError
	if !errors.Is(err, store.ErrUnavailable) || api.Status(err) != http.StatusServiceUnavailable || !errors.As(err, &qe) {
		t.Fatalf("write in a minority: %v (status %d), want a 503 QuorumError", err, api.Status(err))
	}
	if msg := err.Error(); !strings.Contains(msg, "cluster store has no quorum since") || !strings.Contains(msg, "m2, m3") || !strings.Contains(msg, "1 of 3") {
		t.Fatalf("minority error does not name the lost quorum: %s", msg)
	}
	// A read that may be stale is answered from m1's last view, and says
	// since when; one that may not is refused.
	sctx, note = store.AllowStale(ctx)
	if v, err := s1.Get(sctx, "vms", "one-down"); err != nil || string(v) != "one-down" {
		t.Fatalf("stale read in a minority: %q %v", v, err)
	}
	if items, _, err := s1.ListItems(sctx, "vms"); err != nil || len(items) < 2 {
		t.Fatalf("stale list in a minority: %v %v", items, err)
	}
	if stale, since := note.Stale(); !stale || since.IsZero() || time.Since(since) > 10*time.Second || !since.Equal(h1.m.QuorumLostAt()) {
		t.Fatalf("stale read in a minority noted %v since %v (lost at %v)", stale, since, h1.m.QuorumLostAt())
	}
	if _, err := s1.Get(ctx, "vms", "one-down"); api.Status(err) != http.StatusServiceUnavailable {
		t.Fatalf("read in a minority, not allowing stale: %v", err)
	}

	step("minority")
	// Let the minority last: etcd cancels the watches of a member without
	// a leader after three election timeouts; the one on m1 must rewatch.
	time.Sleep(time.Second)

	// Everyone down, then m2 restarts alone: Start returns (no quorum
	// yet) instead of blocking, and says what it waits for.
	h1.m.Close()
	h2.cfg.ReadyTimeout = 300 * time.Millisecond
	t1 := time.Now()
	if h2.m, err = member.Start(ctx, h2.cfg); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(t1); took > 3*time.Second {
		t.Fatalf("Start without quorum took %s", took)
	}
	if hh := h2.m.Health(ctx); hh.Phase != member.PhaseWaiting || !slices.Equal(hh.Unreachable, []string{"m1", "m3"}) {
		t.Fatalf("health of a lone restart: %+v", hh)
	}
	s2 := h2.store()
	if _, err := s2.Get(ctx, "vms", "before"); api.Status(err) != http.StatusServiceUnavailable || !strings.Contains(err.Error(), "m1, m3") {
		t.Fatalf("read with no quorum: %v", err)
	}
	step("lone restart")
	// m1 comes back: quorum again, m2 becomes ready by itself.
	if h1.m, err = member.Start(ctx, h1.cfg); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h2.m.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("m2 did not become ready once m1 was back")
	}
	s1 = h1.store()
	putEventually(t, s1, "recovered", 5*time.Second)
	if err := s1.Put(ctx, "watched", "w5", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-seen:
		if ev.Key != "w5" {
			t.Fatalf("the watch through the lost quorum saw %s, want w5", ev.Key)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the watch did not carry on once the quorum was back")
	}
	if v, err := s2.Get(ctx, "vms", "one-down"); err != nil || string(v) != "one-down" {
		t.Fatalf("a write from before the restarts: %q %v", v, err)
	}

	step("recovered")
	// m3's data is lost: it joins again, its old self taken out first,
	// and reads what the others wrote while it was down.
	if err := os.RemoveAll(h3.cfg.DataDir); err != nil {
		t.Fatal(err)
	}
	if h3.m, err = member.Rejoin(ctx, h3.cfg, []string{h1.cfg.ClientURL, h2.cfg.ClientURL, h3.cfg.ClientURL}); err != nil {
		t.Fatal(err)
	}
	if st, err = h1.m.Status(ctx); err != nil || len(st.Members) != 3 || isLearner(t, h1.m, "m3") {
		t.Fatalf("status after m3 rejoined: %+v %v", st, err)
	}
	if v, err := h3.store().Get(ctx, "vms", "recovered"); err != nil || string(v) != "recovered" {
		t.Fatalf("read on m3 after it rejoined: %q %v", v, err)
	}
	step("rejoined")
	h3.m.Close()
	// m3 is dead: take it out. Live members and unknown ones are refused.
	if err := h1.m.Remove(ctx, "m2"); !errors.Is(err, member.ErrAlive) {
		t.Fatalf("Remove of a live member: %v, want ErrAlive", err)
	}
	if err := h1.m.Remove(ctx, "nobody"); !errors.Is(err, member.ErrNotMember) {
		t.Fatalf("Remove of a stranger: %v", err)
	}
	if err := h1.m.Remove(ctx, "m1"); err == nil {
		t.Fatal("a member removed itself")
	}
	if err := h1.m.Remove(ctx, "m3"); err != nil {
		t.Fatal(err)
	}
	if st, err = h1.m.Status(ctx); err != nil || len(st.Members) != 2 {
		t.Fatalf("status after Remove: %+v %v", st, err)
	}
	putEventually(t, s1, "after-remove", 5*time.Second)
}

// watchVia watches bucket "watched" through a client of endpoint alone,
// and returns once the watch runs (a put through s reached it).
func watchVia(t *testing.T, ctx context.Context, s store.Store, m *member.Member, endpoint string) (*etcd.Store, <-chan store.Event) {
	t.Helper()
	ws, err := etcd.Dial(etcd.DialConfig{Endpoints: []string{endpoint}, TLS: m.ClientTLS()}, etcd.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	events := make(chan store.Event, 10)
	go func() {
		for ev, err := range ws.Watch(ctx, "watched", 0) {
			if err != nil {
				return
			}
			events <- ev
		}
	}()
	waitFor(t, 5*time.Second, "the watch on "+endpoint+" to run", func() bool {
		if err := s.Put(ctx, "watched", "probe", nil); err != nil {
			t.Fatal(err)
		}
		select {
		case <-events:
			return true
		case <-time.After(50 * time.Millisecond):
			return false
		}
	})
	for len(events) > 0 {
		<-events
	}
	return ws, events
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestOneLearnerAtATime: etcd v3.7.3 holds at most one learner (its
// default max-learners, which member keeps); Join refuses while one is
// there, and a learner that never started is removed like a dead member.
func TestOneLearnerAtATime(t *testing.T) {
	ctx := bounded(t, 30*time.Second)
	ca := membertest.CA(t)
	h1 := newHost(t, ca, "m1")
	var err error
	if h1.m, err = member.Init(ctx, h1.cfg); err != nil {
		t.Fatal(err)
	}
	cli := h1.m.Client()
	ghost := fmt.Sprintf("https://127.0.0.1:%d", membertest.FreePort(t))
	add, err := cli.MemberAddAsLearner(ctx, []string{ghost})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.MemberAddAsLearner(ctx, []string{fmt.Sprintf("https://127.0.0.1:%d", membertest.FreePort(t))}); !errors.Is(err, rpctypes.ErrTooManyLearners) {
		t.Fatalf("second learner: %v, want etcd's too-many-learners", err)
	}
	h2 := newHost(t, ca, "m2")
	if _, err := member.Join(ctx, h2.cfg, []string{h1.cfg.ClientURL}); !errors.Is(err, member.ErrJoinBusy) || !strings.Contains(err.Error(), "not started") {
		t.Fatalf("Join beside a learner: %v, want ErrJoinBusy naming it", err)
	}
	if member.Exists(h2.cfg.DataDir) {
		t.Fatal("a refused Join left a data dir")
	}
	if err := h1.m.Remove(ctx, fmt.Sprintf("%x", add.Member.ID)); err != nil {
		t.Fatal(err)
	}
	if h2.m, err = member.Join(ctx, h2.cfg, []string{h1.cfg.ClientURL}); err != nil {
		t.Fatalf("Join once the learner is gone: %v", err)
	}
}

func TestConfigAndDataDir(t *testing.T) {
	ctx := bounded(t, 20*time.Second)
	ca := membertest.CA(t)
	h := newHost(t, ca, "m1")
	bad := h.cfg
	bad.MaxVoters = 4
	if _, err := member.Init(ctx, bad); err == nil || !strings.Contains(err.Error(), "3 or 5") {
		t.Fatalf("MaxVoters 4: %v", err)
	}
	bad = h.cfg
	bad.PeerURL = "http://127.0.0.1:1"
	if _, err := member.Init(ctx, bad); err == nil {
		t.Fatal("a plain-http peer URL was accepted")
	}
	if _, err := member.Start(ctx, h.cfg); !errors.Is(err, member.ErrNotMember) {
		t.Fatalf("Start on an empty data dir: %v", err)
	}
	var err error
	if h.m, err = member.Init(ctx, h.cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := member.Init(ctx, h.cfg); !errors.Is(err, member.ErrExists) {
		t.Fatalf("Init on a member's data dir: %v", err)
	}
	if _, err := member.Join(ctx, h.cfg, []string{h.cfg.ClientURL}); !errors.Is(err, member.ErrExists) {
		t.Fatalf("Join on a member's data dir: %v", err)
	}
	// A client without a certificate from the CA is refused.
	other := membertest.CA(t)
	files, err := other.WriteMemberTLS(t.TempDir(), "intruder", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := files.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg.RootCAs = h.m.ClientTLS().RootCAs // it trusts the server, the server does not trust it
	s, err := etcd.Dial(etcd.DialConfig{Endpoints: []string{h.cfg.ClientURL}, TLS: tlsCfg}, etcd.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Put(ctx, "vms", "x", nil); err == nil {
		t.Fatal("a client with a foreign certificate wrote")
	}
}

package member

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/server/v3/etcdserver/api/membership"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/store"
)

// Phase is where a member stands.
type Phase string

const (
	// PhaseWaiting: the member runs but is not in a quorum (at start, or
	// since it lost it); the store is unavailable through it.
	PhaseWaiting Phase = "waiting-for-quorum"
	// PhaseReady: the member is in a quorum with a leader.
	PhaseReady Phase = "ready"
	// PhaseFailed: etcd stopped by itself (see Health.Err).
	PhaseFailed Phase = "failed"
	// PhaseStopped: Close was called.
	PhaseStopped Phase = "stopped"
)

// Health is what a member knows of itself and its quorum, for people and
// for /health.
type Health struct {
	Phase   Phase
	Learner bool
	// Leader is the leader's name ("" when there is none).
	Leader string
	// Voters is how many voting members the cluster has, Reachable how
	// many of them this member reaches (itself included), Quorum how
	// many it takes to serve.
	Voters, Reachable, Quorum int
	// Unreachable names the members this member cannot reach.
	Unreachable []string
	// LostAt is when the member, once in a quorum, lost it (zero when it
	// has one, or is still waiting for its first at start).
	LostAt time.Time
	// Err is why the member failed.
	Err error
	// Message says all that in a line.
	Message string
}

// probeEvery bounds how often Health probes the other members.
const probeEvery = time.Second

// probeCache is the last probe. It is used for a second at most, and not
// once the leader changed (losing the quorum is news to tell at once).
type probeCache struct {
	at   time.Time
	lead uint64
	down map[uint64]bool // member id -> did not answer
}

// Health reports the member's state. It probes the other members' peer
// URLs (at most once a second; each probe bounded by a second).
func (m *Member) Health(ctx context.Context) Health {
	m.mu.Lock()
	closed, failed := m.closed, m.failed
	m.mu.Unlock()
	switch {
	case closed:
		return Health{Phase: PhaseStopped, Message: "cluster store member " + m.cfg.Name + " is stopped"}
	case failed != nil:
		return Health{Phase: PhaseFailed, Err: failed, Message: "cluster store member " + m.cfg.Name + " failed: " + failed.Error()}
	}
	members := m.e.Server.Cluster().Members()
	lead := uint64(m.e.Server.Leader())
	down := m.probeOthers(ctx, members, lead)
	self := uint64(m.e.Server.MemberID())
	h := Health{Learner: m.e.Server.IsLearner()}
	for _, mm := range members {
		id := uint64(mm.ID)
		if id == lead {
			h.Leader = mm.Name
		}
		if down[id] && id != self {
			h.Unreachable = append(h.Unreachable, memberLabel(mm.Name, id))
		}
		if mm.IsLearner {
			continue
		}
		h.Voters++
		if !down[id] || id == self {
			h.Reachable++
		}
	}
	slices.Sort(h.Unreachable)
	h.Quorum = h.Voters/2 + 1
	ready := false
	select {
	case <-m.e.Server.ReadyNotify():
		ready = true
	default:
	}
	if ready {
		m.noteLeader(lead != 0) // the same view as the messages below
	}
	if ready && lead != 0 {
		h.Phase = PhaseReady
		h.Message = fmt.Sprintf("cluster store ready: leader %s, %d of %d voters reachable", h.Leader, h.Reachable, h.Voters)
		if len(h.Unreachable) > 0 {
			h.Message += " (unreachable: " + strings.Join(h.Unreachable, ", ") + ")"
		}
		return h
	}
	h.Phase = PhaseWaiting
	h.LostAt = m.QuorumLostAt()
	switch {
	case !h.LostAt.IsZero() && h.Reachable < h.Quorum:
		h.Message = fmt.Sprintf("cluster store has no quorum since %s (%s): %d of %d voters reachable, %d needed (unreachable: %s)",
			h.LostAt.UTC().Format(time.TimeOnly+" MST"), time.Since(h.LostAt).Round(time.Second), h.Reachable, h.Voters, h.Quorum, strings.Join(h.Unreachable, ", "))
	case !h.LostAt.IsZero():
		h.Message = fmt.Sprintf("cluster store has no quorum since %s (%s): %d of %d voters reachable, electing a leader",
			h.LostAt.UTC().Format(time.TimeOnly+" MST"), time.Since(h.LostAt).Round(time.Second), h.Reachable, h.Voters)
	case h.Reachable < h.Quorum:
		h.Message = fmt.Sprintf("cluster store waiting for quorum: %d of %d voters reachable, %d needed (unreachable: %s)",
			h.Reachable, h.Voters, h.Quorum, strings.Join(h.Unreachable, ", "))
	case !ready:
		h.Message = fmt.Sprintf("cluster store waiting for quorum: %d of %d voters reachable, catching up", h.Reachable, h.Voters)
	default:
		h.Message = fmt.Sprintf("cluster store waiting for quorum: %d of %d voters reachable, electing a leader", h.Reachable, h.Voters)
	}
	return h
}

// probeOthers says which members do not answer on their peer URL.
func (m *Member) probeOthers(ctx context.Context, members []*membership.Member, lead uint64) map[uint64]bool {
	m.mu.Lock()
	if time.Since(m.probe.at) < probeEvery && m.probe.lead == lead {
		down := m.probe.down
		m.mu.Unlock()
		return down
	}
	m.mu.Unlock()
	self := uint64(m.e.Server.MemberID())
	down := map[uint64]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, mm := range members {
		if uint64(mm.ID) == self {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !answers(ctx, m.tls, mm.PeerURLs) {
				mu.Lock()
				down[uint64(mm.ID)] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	m.mu.Lock()
	m.probe = probeCache{at: time.Now(), lead: lead, down: down}
	m.mu.Unlock()
	return down
}

// answers says whether an etcd member answers on one of its peer URLs
// (its /version, over the member's mutual TLS), within a second.
func answers(ctx context.Context, tlsCfg *tls.Config, peerURLs []string) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg.Clone(), DisableKeepAlives: true}}
	for _, u := range peerURLs {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(u, "/")+"/version", nil)
		if err != nil {
			continue
		}
		resp, err := hc.Do(req)
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return true
		}
	}
	return false
}

// QuorumError is a store call that failed because the cluster has no
// quorum (as this member sees it). It wraps the call's error, so
// errors.Is(err, store.ErrUnavailable) holds.
type QuorumError struct {
	Health Health
	Err    error
}

func (e *QuorumError) Error() string { return e.Health.Message + ": " + e.Err.Error() }
func (e *QuorumError) Unwrap() error { return e.Err }

// Explain is for internal/store/etcd's Options.Explain: it turns a store
// error that wraps store.ErrUnavailable into a 503 (*api.StatusError)
// whose message names the members this one cannot reach, wrapping a
// *QuorumError. Other errors pass through.
func (m *Member) Explain(err error) error {
	if !errors.Is(err, store.ErrUnavailable) {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	h := m.Health(ctx)
	if h.Phase == PhaseReady {
		// The quorum is back (or the trouble was elsewhere): say what failed.
		return api.StatusErrorf(http.StatusServiceUnavailable, "%w", err)
	}
	return api.StatusErrorf(http.StatusServiceUnavailable, "%w", &QuorumError{Health: h, Err: err})
}

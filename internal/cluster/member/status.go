package member

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// Status is the cluster as this member sees it, with what each member
// says of itself.
type Status struct {
	ClusterID string
	// Local is this member's name, Leader the leader's ("" when none).
	Local, Leader string
	Members       []MemberStatus
}

// MemberStatus is one member. The fields after Reachable are what it
// answered, when it did.
type MemberStatus struct {
	Name, ID   string
	PeerURLs   []string
	ClientURLs []string
	Learner    bool
	// Reachable: it answered a status call on its client URL; Err is why
	// not.
	Reachable bool
	Err       string
	// Healthy: it answered, knows a leader and raises no alarm.
	Healthy bool
	Leader  bool
	// RaftIndex and RaftTerm are its raft log position; AppliedIndex
	// what it has applied of it.
	RaftIndex, RaftTerm, AppliedIndex uint64
	// DBSize is its database file, DBSizeInUse the part holding data.
	DBSize, DBSizeInUse int64
	Version             string
	// Alarms are what it raises (e.g. "NOSPACE").
	Alarms []string
}

// statusTimeout bounds the status call to one member.
const statusTimeout = 2 * time.Second

// Status asks every member for its status, in parallel, each bounded by
// two seconds. The membership is this member's own view, so Status works
// without a quorum too (and then shows who is missing).
func (m *Member) Status(ctx context.Context) (Status, error) {
	members := m.e.Server.Cluster().Members()
	st := Status{ClusterID: m.e.Server.Cluster().ID().String(), Local: m.cfg.Name, Members: make([]MemberStatus, len(members))}
	var wg sync.WaitGroup
	for i, mm := range members {
		ms := &st.Members[i]
		*ms = MemberStatus{Name: mm.Name, ID: mm.ID.String(), PeerURLs: mm.PeerURLs, ClientURLs: mm.ClientURLs, Learner: mm.IsLearner}
		if len(mm.ClientURLs) == 0 {
			ms.Err = "not started yet"
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, statusTimeout)
			defer cancel()
			resp, err := m.cli.Status(cctx, mm.ClientURLs[0])
			if err != nil {
				ms.Err = err.Error()
				if errors.Is(err, context.DeadlineExceeded) {
					ms.Err = fmt.Sprintf("no answer on %s within %s", mm.ClientURLs[0], statusTimeout)
				}
				return
			}
			ms.Reachable = true
			ms.Leader = resp.Leader == resp.Header.MemberId
			ms.RaftIndex, ms.RaftTerm, ms.AppliedIndex = resp.RaftIndex, resp.RaftTerm, resp.RaftAppliedIndex
			ms.DBSize, ms.DBSizeInUse, ms.Version = resp.DbSize, resp.DbSizeInUse, resp.Version
			ms.Alarms = resp.Errors
			ms.Healthy = resp.Leader != 0 && len(resp.Errors) == 0
		}()
	}
	wg.Wait()
	slices.SortFunc(st.Members, func(a, b MemberStatus) int { return strings.Compare(a.Name, b.Name) })
	for _, ms := range st.Members {
		if ms.Leader {
			st.Leader = ms.Name
		}
	}
	return st, nil
}

// Remove takes a dead member out of the cluster, by name (or by hex ID,
// for a learner that never started). It refuses this member itself, and a
// member that still answers on its peer URL (ErrAlive): stop that host's
// daemon first, or it would keep running outside the cluster. etcd
// itself refuses a removal that would cost the quorum.
func (m *Member) Remove(ctx context.Context, name string) error {
	var id uint64
	var label string
	var peerURLs, clientURLs []string
	for _, mm := range m.e.Server.Cluster().Members() {
		if mm.Name == name || mm.ID.String() == name {
			id, label = uint64(mm.ID), memberLabel(mm.Name, uint64(mm.ID))
			peerURLs, clientURLs = mm.PeerURLs, mm.ClientURLs
		}
	}
	if id == 0 {
		return fmt.Errorf("%w: %s", ErrNotMember, name)
	}
	if id == uint64(m.e.Server.MemberID()) {
		return fmt.Errorf("member %s is this host: remove it from another member", name)
	}
	if m.answers(ctx, peerURLs) {
		return fmt.Errorf("%w: %s answers on %s; stop its daemon first (only a dead member is removed)", ErrAlive, label, strings.Join(peerURLs, ","))
	}
	if _, err := m.cli.MemberRemove(ctx, id); err != nil {
		if errors.Is(err, rpctypes.ErrMemberNotFound) {
			return fmt.Errorf("%w: %s", ErrNotMember, name)
		}
		return fmt.Errorf("remove member %s: %w", label, err)
	}
	m.mu.Lock()
	m.probe = probeCache{}
	m.mu.Unlock()
	m.setEndpoints(slices.DeleteFunc(m.voterClientURLs(), func(u string) bool { return slices.Contains(clientURLs, u) }))
	m.log.Info("cluster store: member removed", "member", label)
	return nil
}

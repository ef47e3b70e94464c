package member

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/types"
	clientv3 "go.etcd.io/etcd/client/v3"
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
	var ms []memberInfo
	for _, mm := range m.e.Server.Cluster().Members() {
		ms = append(ms, memberInfo{name: mm.Name, id: uint64(mm.ID), peerURLs: mm.PeerURLs, clientURLs: mm.ClientURLs, learner: mm.IsLearner})
	}
	st := probeStatus(ctx, m.cli, ms)
	st.ClusterID, st.Local = m.e.Server.Cluster().ID().String(), m.cfg.Name
	return st, nil
}

// StatusVia is Status for a host that runs no member (a client host): it
// reads the membership through cli, which needs the quorum, and asks
// every member as Status does. local names the asking host.
func StatusVia(ctx context.Context, cli *clientv3.Client, local string) (Status, error) {
	cctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	resp, err := cli.MemberList(cctx)
	if err != nil {
		return Status{Local: local}, fmt.Errorf("list the cluster's members: %w", err)
	}
	var ms []memberInfo
	for _, mm := range resp.Members {
		ms = append(ms, memberInfo{name: mm.Name, id: mm.ID, peerURLs: mm.PeerURLs, clientURLs: mm.ClientURLs, learner: mm.IsLearner})
	}
	st := probeStatus(ctx, cli, ms)
	st.ClusterID, st.Local = types.ID(resp.Header.ClusterId).String(), local
	return st, nil
}

// memberInfo is a member as the membership names it.
type memberInfo struct {
	name                 string
	id                   uint64
	peerURLs, clientURLs []string
	learner              bool
}

// probeStatus asks each member for its status on its client URL.
func probeStatus(ctx context.Context, cli *clientv3.Client, members []memberInfo) Status {
	st := Status{Members: make([]MemberStatus, len(members))}
	var wg sync.WaitGroup
	for i, mm := range members {
		ms := &st.Members[i]
		*ms = MemberStatus{Name: mm.name, ID: types.ID(mm.id).String(), PeerURLs: mm.peerURLs, ClientURLs: mm.clientURLs, Learner: mm.learner}
		if len(mm.clientURLs) == 0 {
			ms.Err = "not started yet"
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, statusTimeout)
			defer cancel()
			resp, err := cli.Status(cctx, mm.clientURLs[0])
			if err != nil {
				ms.Err = err.Error()
				if errors.Is(err, context.DeadlineExceeded) {
					ms.Err = fmt.Sprintf("no answer on %s within %s", mm.clientURLs[0], statusTimeout)
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
	return st
}

// Remove takes a dead member out of the cluster, by name (or by hex ID,
// for a learner that never started). It refuses this member itself, and a
// member that still answers on its peer URL (ErrAlive): stop that host's
// daemon first, or it would keep running outside the cluster. etcd
// itself refuses a removal that would cost the quorum.
func (m *Member) Remove(ctx context.Context, name string) error {
	var members []memberInfo
	for _, mm := range m.e.Server.Cluster().Members() {
		members = append(members, memberInfo{name: mm.Name, id: uint64(mm.ID), peerURLs: mm.PeerURLs, clientURLs: mm.ClientURLs, learner: mm.IsLearner})
	}
	gone, err := remove(ctx, m.cli, m.tls, members, uint64(m.e.Server.MemberID()), name)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.probe = probeCache{}
	m.mu.Unlock()
	m.setEndpoints(slices.DeleteFunc(m.voterClientURLs(), func(u string) bool { return slices.Contains(gone.clientURLs, u) }))
	m.log.Info("cluster store: member removed", "member", memberLabel(gone.name, gone.id))
	return nil
}

// RemoveVia is Remove for a host that runs no member: it reads the
// membership through cli (which needs the quorum) and probes the member
// with tlsCfg, the host's member identity.
func RemoveVia(ctx context.Context, cli *clientv3.Client, tlsCfg *tls.Config, name string) error {
	cctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	resp, err := cli.MemberList(cctx)
	if err != nil {
		return fmt.Errorf("list the cluster's members: %w", err)
	}
	var members []memberInfo
	for _, mm := range resp.Members {
		members = append(members, memberInfo{name: mm.Name, id: mm.ID, peerURLs: mm.PeerURLs, clientURLs: mm.ClientURLs, learner: mm.IsLearner})
	}
	_, err = remove(ctx, cli, tlsCfg, members, 0, name)
	return err
}

// remove takes name out of members, unless it is self or still answers.
func remove(ctx context.Context, cli *clientv3.Client, tlsCfg *tls.Config, members []memberInfo, self uint64, name string) (memberInfo, error) {
	var gone memberInfo
	for _, mm := range members {
		if mm.name == name || types.ID(mm.id).String() == name {
			gone = mm
		}
	}
	if gone.id == 0 {
		return gone, fmt.Errorf("%w: %s", ErrNotMember, name)
	}
	label := memberLabel(gone.name, gone.id)
	if gone.id == self {
		return gone, fmt.Errorf("member %s is this host: remove it from another member", name)
	}
	if answers(ctx, tlsCfg, gone.peerURLs) {
		return gone, fmt.Errorf("%w: %s answers on %s; stop its daemon first (only a dead member is removed)", ErrAlive, label, strings.Join(gone.peerURLs, ","))
	}
	if _, err := cli.MemberRemove(ctx, gone.id); err != nil {
		if errors.Is(err, rpctypes.ErrMemberNotFound) {
			return gone, fmt.Errorf("%w: %s", ErrNotMember, name)
		}
		return gone, fmt.Errorf("remove member %s: %w", label, err)
	}
	return gone, nil
}

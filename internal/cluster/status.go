package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/cluster/member"
	"github.com/godwit-project/godwit/internal/store"
)

// statusTimeout bounds each store read of Status.
const statusTimeout = 2 * time.Second

// Health says whether the cluster store serves this host, and why not.
func (n *Node) Health(ctx context.Context) (ready bool, message string) {
	if n.m != nil {
		h := n.m.Health(ctx)
		return h.Phase == member.PhaseReady, h.Message
	}
	cctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	_, err := n.shared.GetItem(cctx, hostsBucket, n.cfg.Name)
	if err == nil || errors.Is(err, store.ErrNotFound) {
		return true, "cluster store ready (this host is a client of the voters at " + strings.Join(n.cli.Endpoints(), ", ") + ")"
	}
	return false, "cluster store unreachable from this client host: " + err.Error()
}

// Status is the cluster as this host sees it: the store's members (what
// each says of itself), the registry's hosts with their heartbeats.
func (n *Node) Status(ctx context.Context) api.ClusterStatus {
	out := api.ClusterStatus{Enabled: true, ID: n.st.ClusterID, Self: n.cfg.Name, Role: n.Role()}
	out.Ready, out.Message = n.Health(ctx)
	var ms member.Status
	var merr error
	if n.m != nil {
		ms, merr = n.m.Status(ctx)
	} else {
		ms, merr = member.StatusVia(ctx, n.cli, n.cfg.Name)
	}
	if ms.ClusterID != "" {
		out.ID = ms.ClusterID
	}
	out.Leader = ms.Leader
	cctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	out.MaxVoters, _ = member.MaxVoters(cctx, n.cli)

	hosts := n.Hosts()
	if items, _, err := n.shared.ListItems(cctx, hostsBucket); err == nil {
		hosts = hosts[:0]
		for _, it := range items {
			var h Host
			if json.Unmarshal(it.Value, &h) == nil {
				hosts = append(hosts, h)
			}
		}
	}
	byName := map[string]*api.ClusterHost{}
	get := func(name string) *api.ClusterHost {
		if ch := byName[name]; ch != nil {
			return ch
		}
		ch := &api.ClusterHost{Name: name}
		byName[name] = ch
		return ch
	}
	for _, h := range hosts {
		ch := get(h.Name)
		ch.URL, ch.Schedulable, ch.Labels, ch.CPUs, ch.Memory, ch.JoinedAt = h.URL, h.Schedulable, h.Labels, h.CPUs, api.Size(h.Memory), h.JoinedAt
		ch.Role = api.RoleClient
		ch.VMs = len(n.VMs(h.Name))
		if !h.Removed.IsZero() {
			ch.Removed = h.Removed
			ch.Error = fmt.Sprintf("removed from the cluster; its record stays while it holds VM records (%d; HA VMs restart elsewhere)", ch.VMs)
		}
	}
	for _, mm := range ms.Members {
		name := mm.Name
		if name == "" {
			name = "member " + mm.ID
		}
		ch := get(name)
		ch.Role = api.RoleVoter
		if mm.Learner {
			ch.Role = api.RoleLearner
		} else {
			out.Voters++
		}
		ch.Member = &api.ClusterMember{ID: mm.ID, PeerURLs: mm.PeerURLs, ClientURLs: mm.ClientURLs, Reachable: mm.Reachable,
			Healthy: mm.Healthy, Leader: mm.Leader, RaftIndex: mm.RaftIndex, RaftTerm: mm.RaftTerm, AppliedIndex: mm.AppliedIndex,
			DBSize: api.Size(mm.DBSize), DBSizeInUse: api.Size(mm.DBSizeInUse), Version: mm.Version, Alarms: mm.Alarms, Error: mm.Err}
		if mm.Err != "" {
			ch.Error = "store member: " + mm.Err
		}
	}
	now := time.Now()
	if beats, _, err := n.shared.ListItems(cctx, heartbeatsBucket); err == nil {
		for _, it := range beats {
			ch := byName[it.Key]
			if ch == nil {
				continue
			}
			// The heartbeat is written once a lease (and rarely again):
			// how long ago the host last showed it is alive is the
			// lease's last renewal, which the store counts in seconds
			// left; the record's time is for a lease it cannot read.
			var hb Heartbeat
			_ = json.Unmarshal(it.Value, &hb)
			ch.Alive, ch.Heartbeat = true, hb.At
			ch.Lease = fmt.Sprintf("%x", int64(it.Lease))
			if ttl, err := n.cli.TimeToLive(cctx, clientv3.LeaseID(it.Lease)); err == nil {
				ch.LeaseTTL = int(ttl.GrantedTTL)
				if ttl.TTL > 0 && ttl.TTL <= ttl.GrantedTTL {
					ch.Heartbeat = now.Add(-time.Duration(ttl.GrantedTTL-ttl.TTL) * time.Second).UTC()
				}
			}
			ch.HeartbeatAgeMs = now.Sub(ch.Heartbeat).Milliseconds()
		}
	} else if merr == nil {
		merr = err
	}
	for _, ch := range byName {
		if !ch.Alive && ch.Error == "" {
			ch.Error = "no heartbeat: its lease ran out (the host is down or cut off from the cluster)"
		}
		out.Hosts = append(out.Hosts, *ch)
	}
	slices.SortFunc(out.Hosts, func(a, b api.ClusterHost) int { return strings.Compare(a.Name, b.Name) })
	if merr != nil && out.Ready {
		out.Message += "; " + merr.Error()
	}
	return out
}

// Admit is the cluster's side of a host's join (its token already
// checked): the cluster CA with its key and the voters' client URLs.
// A host of that name that is alive is refused.
func (n *Node) Admit(ctx context.Context, name string) (api.ClusterAdmitted, error) {
	if name == n.cfg.Name {
		return api.ClusterAdmitted{}, api.Conflict("name: %s is this host's own name", name)
	}
	if _, err := n.shared.GetItem(ctx, heartbeatsBucket, name); err == nil {
		return api.ClusterAdmitted{}, api.Conflict("a live host named %s is in the cluster already", name)
	} else if !errors.Is(err, store.ErrNotFound) {
		return api.ClusterAdmitted{}, err
	}
	key, err := n.ca.CAKeyPEM()
	if err != nil {
		return api.ClusterAdmitted{}, err
	}
	eps := n.cli.Endpoints()
	if n.m != nil {
		eps = n.m.Endpoints()
	}
	return api.ClusterAdmitted{ClusterID: n.st.ClusterID, ClusterCA: n.ca.CAPEM(), ClusterCAKey: key, Endpoints: eps}, nil
}

package member

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/godwit-project/godwit/internal/revert"
)

// policyKey holds the cluster's membership policy, outside the store's
// keys (internal/store/etcd.DefaultPrefix).
const policyKey = "/godwit-member/policy"

type policy struct {
	MaxVoters int `json:"maxVoters"`
}

func writePolicy(ctx context.Context, cli *clientv3.Client, p policy) error {
	b, _ := json.Marshal(p)
	if _, err := cli.Put(ctx, policyKey, string(b)); err != nil {
		return fmt.Errorf("record the cluster's membership policy: %w", err)
	}
	return nil
}

func readPolicy(ctx context.Context, cli *clientv3.Client) (policy, error) {
	p := policy{MaxVoters: DefaultMaxVoters}
	resp, err := cli.Get(ctx, policyKey)
	if err != nil {
		return p, fmt.Errorf("read the cluster's membership policy: %w", err)
	}
	if len(resp.Kvs) > 0 {
		if err := json.Unmarshal(resp.Kvs[0].Value, &p); err != nil {
			return p, fmt.Errorf("the cluster's membership policy: %w", err)
		}
	}
	return p, nil
}

// Join adds this host to the cluster one of whose members answers at
// endpoints (client URLs), and starts its member in an empty DataDir:
//
//  1. refuse when the name or peer URL is taken, a learner exists
//     (ErrJoinBusy), or the voters are full (ErrVotersFull);
//  2. add this member as a learner (MemberAddAsLearner): it does not
//     count for the quorum, so a dead or slow joiner costs nothing;
//  3. start it with initial-cluster-state=existing and the membership
//     the add returned;
//  4. promote it (MemberPromote), trying again while etcd says the
//     learner has not caught up.
//
// Join returns once the member votes. If ctx ends after step 3, Join
// returns the running learner with an error wrapping ErrLearner; the
// member goes on trying to be promoted (callers may keep it or Close it;
// a closed learner blocks other joins until it is Removed). Before step
// 3 a failure leaves nothing behind.
func Join(ctx context.Context, cfg Config, endpoints []string) (*Member, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if Exists(cfg.DataDir) {
		return nil, fmt.Errorf("%s: %w of a cluster: start it instead", cfg.DataDir, ErrExists)
	}
	tlsCfg, err := cfg.TLS.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("member TLS: %w", err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, TLS: tlsCfg, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("reach the cluster at %s: %w", strings.Join(endpoints, ","), err)
	}
	defer cli.Close()
	pol, err := readPolicy(ctx, cli)
	if err != nil {
		return nil, fmt.Errorf("join the cluster at %s: %w", strings.Join(endpoints, ","), err)
	}
	list, err := cli.MemberList(ctx)
	if err != nil {
		return nil, fmt.Errorf("join the cluster at %s: list members: %w", strings.Join(endpoints, ","), err)
	}
	if err := admit(cfg, pol, list.Members); err != nil {
		return nil, err
	}
	add, err := addLearner(ctx, cli, cfg.PeerURL)
	if errors.Is(err, rpctypes.ErrTooManyLearners) {
		return nil, fmt.Errorf("%w: the cluster takes %d learner at a time; try again once it is promoted", ErrJoinBusy, MaxLearners)
	}
	if err != nil {
		return nil, fmt.Errorf("add %s to the cluster as a learner: %w", cfg.Name, err)
	}
	id := add.Member.ID
	cfg.Log.Info("cluster store: added as a learner", "member", cfg.Name, "id", fmt.Sprintf("%x", id))

	r := revert.New()
	defer r.Fail()
	r.Add(func() {
		// A fresh context: ctx may be why we are undoing.
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := cli.MemberRemove(rctx, id); err != nil {
			cfg.Log.Error("cluster store: could not take back the learner this join added; remove it by hand", "member", cfg.Name, "id", fmt.Sprintf("%x", id), "err", err)
		}
		_ = os.RemoveAll(cfg.DataDir)
	})
	initial, err := initialCluster(cfg.Name, id, add.Members)
	if err != nil {
		return nil, err
	}
	var eps []string
	for _, mm := range add.Members {
		if !mm.IsLearner {
			eps = append(eps, mm.ClientURLs...)
		}
	}
	m, err := startJoined(ctx, cfg, initial, eps)
	if err != nil {
		return nil, err
	}
	r.Success()
	select {
	case <-m.promoted:
		cfg.Log.Info("cluster store: promoted to voter", "member", cfg.Name)
		return m, nil
	case <-ctx.Done():
		return m, fmt.Errorf("%s %w (it goes on catching up and will be promoted): %v", cfg.Name, ErrLearner, ctx.Err())
	}
}

// addLearner adds a learner, waiting while etcd refuses as unhealthy:
// its strict reconfiguration check takes a member only once the voters
// have been connected to each other for 5s (etcdserver.HealthInterval),
// so a join right after another waits that long.
func addLearner(ctx context.Context, cli *clientv3.Client, peerURL string) (*clientv3.MemberAddResponse, error) {
	for {
		add, err := cli.MemberAddAsLearner(ctx, []string{peerURL})
		if !errors.Is(err, rpctypes.ErrUnhealthy) {
			return add, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (the members have not been connected to each other for 5s yet)", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// admit applies the membership policy to a join.
func admit(cfg Config, pol policy, members []*etcdserverpb.Member) error {
	voters, learners := 0, []string{}
	for _, mm := range members {
		if mm.Name == cfg.Name {
			return fmt.Errorf("%w: the cluster has a member named %s (%x); remove it first if it is this host's old self", ErrExists, cfg.Name, mm.ID)
		}
		for _, u := range mm.PeerURLs {
			if u == cfg.PeerURL {
				return fmt.Errorf("%w: member %s (%x) has peer URL %s already", ErrExists, mm.Name, mm.ID, u)
			}
		}
		if mm.IsLearner {
			learners = append(learners, memberLabel(mm.Name, mm.ID))
		} else {
			voters++
		}
	}
	if len(learners) >= MaxLearners {
		return fmt.Errorf("%w: %s is still joining as a learner (if that host is gone, remove it)", ErrJoinBusy, strings.Join(learners, ", "))
	}
	if voters >= pol.MaxVoters {
		return fmt.Errorf("%w: it has %d of %d; use it as a client instead of running a member", ErrVotersFull, voters, pol.MaxVoters)
	}
	return nil
}

func memberLabel(name string, id uint64) string {
	if name == "" {
		return fmt.Sprintf("member %x (not started)", id)
	}
	return name
}

// initialCluster is the --initial-cluster for a joining member: every
// member by name, the new one (not started, so nameless) by ours.
func initialCluster(name string, id uint64, members []*etcdserverpb.Member) (string, error) {
	var parts []string
	for _, mm := range members {
		n := mm.Name
		if mm.ID == id {
			n = name
		}
		if n == "" {
			return "", fmt.Errorf("%w: member %x was added but never started; remove it first", ErrJoinBusy, mm.ID)
		}
		for _, u := range mm.PeerURLs {
			parts = append(parts, n+"="+u)
		}
	}
	return strings.Join(parts, ","), nil
}

// promoteInBackground promotes this learner once it has caught up: etcd
// refuses (ErrLearnerNotReady) until the learner's log is close to the
// leader's, so it tries again, with a growing pause, until it votes or
// the member closes.
func (m *Member) promoteInBackground() {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-m.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		select {
		case <-m.e.Server.ReadyNotify():
		case <-ctx.Done():
			return
		}
		if m.cfg.onLearner != nil {
			m.cfg.onLearner(m)
		}
		id := uint64(m.e.Server.MemberID())
		pause := 20 * time.Millisecond
		for tries := 1; ; tries++ {
			cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := m.cli.MemberPromote(cctx, id)
			ccancel()
			if err == nil || errors.Is(err, rpctypes.ErrMemberNotLearner) {
				m.log.Info("cluster store: learner promoted", "member", m.cfg.Name, "tries", tries)
				m.setEndpoints(m.voterClientURLsWith(m.cfg.ClientURL))
				close(m.promoted)
				return
			}
			if !errors.Is(err, rpctypes.ErrMemberLearnerNotReady) {
				m.log.Warn("cluster store: promote failed; trying again", "member", m.cfg.Name, "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(pause):
			}
			pause = min(2*pause, time.Second)
		}
	}()
}

// voterClientURLsWith is voterClientURLs plus extra (this member's own,
// right after its promotion is applied elsewhere but maybe not here).
func (m *Member) voterClientURLsWith(extra string) []string {
	eps := m.voterClientURLs()
	for _, e := range eps {
		if e == extra {
			return eps
		}
	}
	return append(eps, extra)
}

// MaxVoters is how many voting members the cluster behind cli takes (its
// membership policy, recorded by Init).
func MaxVoters(ctx context.Context, cli *clientv3.Client) (int, error) {
	p, err := readPolicy(ctx, cli)
	return p.MaxVoters, err
}

// Rejoin brings back this host's member after its data dir was lost (a
// disk replaced, the directory removed), through the voters at
// endpoints: etcd takes no member back without its data, so its old self
// is removed from the membership (refused, ErrAlive, while a member
// answers on this host's peer URL) and it joins again as a learner, as
// Join does, its data copied from the others.
func Rejoin(ctx context.Context, cfg Config, endpoints []string) (*Member, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if Exists(cfg.DataDir) {
		return nil, fmt.Errorf("%s: %w of a cluster: start it instead", cfg.DataDir, ErrExists)
	}
	var eps []string
	for _, e := range endpoints {
		if e != cfg.ClientURL {
			eps = append(eps, e)
		}
	}
	if len(eps) == 0 {
		return nil, fmt.Errorf("member %s lost its data, and this host knows no other voter to rejoin through", cfg.Name)
	}
	tlsCfg, err := cfg.TLS.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("member TLS: %w", err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, TLS: tlsCfg, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("reach the cluster at %s: %w", strings.Join(eps, ","), err)
	}
	err = RemoveVia(ctx, cli, tlsCfg, cfg.Name)
	cli.Close()
	if err != nil && !errors.Is(err, ErrNotMember) {
		return nil, fmt.Errorf("take out member %s, which lost its data, before it joins again: %w", cfg.Name, err)
	}
	cfg.Log.Warn("cluster store: this member lost its data; its old self is out of the membership, it joins again", "member", cfg.Name)
	return Join(ctx, cfg, eps)
}

// startJoined starts the member a join added. etcd checks the new
// member's initial cluster against the membership a voter reports, and a
// voter that has not applied the MemberAdd yet reports one member fewer
// ("member count is unequal", seen in a fresh root when a third host
// joined right after a second): that is waited out, a few times.
func startJoined(ctx context.Context, cfg Config, initial string, eps []string) (*Member, error) {
	for try := 1; ; try++ {
		m, err := start(ctx, cfg, cfg.embedConfig(embed.ClusterStateFlagExisting, initial), eps, true)
		if err == nil || try == joinStartTries || !strings.Contains(err.Error(), "member count is unequal") {
			return m, err
		}
		cfg.Log.Info("cluster store: a voter has not applied this member's addition yet; starting again", "member", cfg.Name, "try", try)
		_ = os.RemoveAll(cfg.DataDir)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// joinStartTries bounds startJoined's tries (about 3 s).
const joinStartTries = 10

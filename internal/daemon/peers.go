package daemon

import (
	"context"
	"net/http"
	"time"

	"github.com/godwit-project/godwit/api"
)

func (d *Daemon) peerRoutes() []route {
	return []route{
		{Read, op("list-hosts", http.MethodGet, "/v1/hosts", "List this host and its peers, each asked whether it answers", "hosts"), handle(d.listPeers)},
		{Admin, op("add-host", http.MethodPost, "/v1/hosts", "Join another host (with a token from it)", "hosts"), handle(d.addPeer)},
		{Admin, op("remove-host", http.MethodDelete, "/v1/hosts/{name}", "Forget a peer", "hosts"), handle(d.removePeer)},
		{Admin, op("create-join-token", http.MethodPost, "/v1/host/token", "Make a one-time token another host joins with", "hosts"), handle(d.createJoinToken)},
		{Public, op("peer-join", http.MethodPost, "/v1/peer/join", "A host joins with a token (daemon to daemon)", "peer"), handle(d.peerJoin)},
	}
}

func (d *Daemon) listPeers(ctx context.Context, _ *struct{}) (*struct{ Body api.PeerList }, error) {
	peers, err := d.peers.List(ctx, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &struct{ Body api.PeerList }{api.PeerList{Self: d.host.describe(ctx), Peers: peers}}, nil
}

func (d *Daemon) addPeer(ctx context.Context, in *struct{ Body api.PeerAdd }) (*struct{ Body api.Peer }, error) {
	p, err := d.peers.Add(ctx, in.Body)
	if err != nil {
		return nil, err
	}
	return &struct{ Body api.Peer }{p}, nil
}

func (d *Daemon) removePeer(ctx context.Context, in *nameInput) (*struct{}, error) {
	return &struct{}{}, d.peers.Remove(ctx, in.Name)
}

func (d *Daemon) createJoinToken(ctx context.Context, in *struct{ Body *api.JoinTokenRequest }) (*struct{ Body api.JoinToken }, error) {
	ttl := time.Duration(0)
	if in.Body != nil {
		if in.Body.TTLSeconds < 0 {
			return nil, api.BadRequest("ttlSeconds: %d is negative", in.Body.TTLSeconds)
		}
		ttl = time.Duration(in.Body.TTLSeconds) * time.Second
	}
	t, err := d.peers.CreateToken(ctx, ttl)
	if err != nil {
		return nil, err
	}
	return &struct{ Body api.JoinToken }{t}, nil
}

func (d *Daemon) peerJoin(ctx context.Context, in *struct{ Body api.PeerJoin }) (*struct{ Body api.PeerJoined }, error) {
	j, err := d.peers.Join(ctx, in.Body)
	if err != nil {
		return nil, err
	}
	return &struct{ Body api.PeerJoined }{j}, nil
}

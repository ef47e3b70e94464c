package client

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/godwit-project/godwit/api"
)

// ListPeers lists this host and its peers (each asked whether it answers).
func (c *Client) ListPeers(ctx context.Context) (api.PeerList, error) {
	var out api.PeerList
	err := c.do(ctx, http.MethodGet, "/v1/hosts", nil, nil, &out)
	return out, err
}

// AddPeer joins the daemon to another host, with a token from that host.
func (c *Client) AddPeer(ctx context.Context, add api.PeerAdd) (api.Peer, error) {
	var out api.Peer
	err := c.do(ctx, http.MethodPost, "/v1/hosts", nil, add, &out)
	return out, err
}

// RemovePeer forgets a peer.
func (c *Client) RemovePeer(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/hosts/"+url.PathEscape(name), nil, nil, nil)
}

// CreateJoinToken makes a one-time token another host joins with.
func (c *Client) CreateJoinToken(ctx context.Context, ttl time.Duration) (api.JoinToken, error) {
	var out api.JoinToken
	err := c.do(ctx, http.MethodPost, "/v1/host/token", nil, api.JoinTokenRequest{TTLSeconds: int(ttl.Seconds())}, &out)
	return out, err
}

package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/godwit-project/godwit/api"
)

// ClusterStatus shows the cluster as the daemon's host sees it.
func (c *Client) ClusterStatus(ctx context.Context) (api.ClusterStatus, error) {
	var out api.ClusterStatus
	err := c.do(ctx, http.MethodGet, "/v1/cluster", nil, nil, &out)
	return out, err
}

// InitCluster makes the daemon's host the first member of a new cluster.
func (c *Client) InitCluster(ctx context.Context, req api.ClusterInit) (api.ClusterStatus, error) {
	var out api.ClusterStatus
	err := c.do(ctx, http.MethodPost, "/v1/cluster/init", nil, req, &out)
	return out, err
}

// JoinCluster joins the daemon's host to the cluster of the host at
// req.URL, with a token from that host.
func (c *Client) JoinCluster(ctx context.Context, req api.ClusterJoin) (api.ClusterStatus, error) {
	var out api.ClusterStatus
	err := c.do(ctx, http.MethodPost, "/v1/cluster/join", nil, req, &out)
	return out, err
}

// RemoveClusterHost takes a dead host out of the cluster. force says the
// host is down even though its daemon stopped cleanly leaving HA VMs
// running there (they then restart on other hosts).
func (c *Client) RemoveClusterHost(ctx context.Context, name string, force bool) error {
	q := url.Values{}
	flag(q, "force", force)
	return c.do(ctx, http.MethodDelete, "/v1/cluster/hosts/"+url.PathEscape(name), q, nil, nil)
}

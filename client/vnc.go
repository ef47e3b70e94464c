package client

import (
	"context"
	"net"
	"net/url"

	"github.com/coder/websocket"
)

// AttachVNC opens name's graphical console (spec graphics: vnc): the
// returned connection carries the RFB stream of its display both ways,
// ready for a VNC client's handshake. A read-scope token gets a view-only
// display (the daemon drops its input). Closing it ends the session.
func (c *Client) AttachVNC(ctx context.Context, name string) (net.Conn, error) {
	ws, err := c.dialWS(ctx, "/v1/vms/"+url.PathEscape(name)+"/vnc/ws", []string{"binary"})
	if err != nil {
		return nil, err
	}
	// Not ctx: it bounds the dial; the session lasts until Close.
	return websocket.NetConn(context.Background(), ws, websocket.MessageBinary), nil
}

package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/coder/websocket"

	"github.com/godwit-project/godwit/api"
)

// ConsoleConn is a VM's serial console both ways, over the daemon's
// websocket: Next returns output (or a note), Type sends input.
type ConsoleConn struct {
	ws *websocket.Conn
}

// AttachConsole opens name's console; lines > 0 starts with only the
// last lines of its log.
func (c *Client) AttachConsole(ctx context.Context, name string, lines int) (*ConsoleConn, error) {
	path := "/v1/vms/" + url.PathEscape(name) + "/console/ws"
	if lines > 0 {
		path += fmt.Sprintf("?lines=%d", lines)
	}
	ws, err := c.dialWS(ctx, path, nil)
	if err != nil {
		return nil, err
	}
	return &ConsoleConn{ws: ws}, nil
}

// dialWS opens one of the daemon's websockets, with the token; the
// daemon's refusal comes back as its API error.
func (c *Client) dialWS(ctx context.Context, path string, subprotocols []string) (*websocket.Conn, error) {
	h := http.Header{}
	if c.token != "" {
		h.Set("Authorization", "Bearer "+c.token)
	}
	ws, resp, err := websocket.Dial(ctx, c.base+path, &websocket.DialOptions{HTTPClient: c.stream, HTTPHeader: h, Subprotocols: subprotocols})
	if err != nil {
		if resp != nil && resp.StatusCode >= 300 {
			return nil, decodeError(resp) // Dial keeps the start of the body
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("cannot reach the godwit daemon at %s: %w", c.where, err)
	}
	ws.SetReadLimit(1 << 20)
	return ws, nil
}

// Next waits for the next output (out) or note from the daemon.
func (cc *ConsoleConn) Next(ctx context.Context) (out []byte, note *api.ConsoleNote, err error) {
	typ, b, err := cc.ws.Read(ctx)
	if err != nil {
		return nil, nil, err
	}
	if typ == websocket.MessageText {
		var n api.ConsoleNote
		if err := json.Unmarshal(b, &n); err != nil {
			return nil, nil, fmt.Errorf("console: a note that is not JSON: %q", b)
		}
		return nil, &n, nil
	}
	return b, nil, nil
}

// Type sends input to the serial port.
func (cc *ConsoleConn) Type(ctx context.Context, b []byte) error {
	return cc.ws.Write(ctx, websocket.MessageBinary, b)
}

// Close ends the session.
func (cc *ConsoleConn) Close() error { return cc.ws.Close(websocket.StatusNormalClosure, "") }

// Package vnc relays a viewer's side of a VNC (RFB) session to a VM's
// display: the proxy between the daemon's websocket and QEMU's unix
// socket. It reads the viewer's handshake, so that every viewer shares
// the display (a second viewer never disconnects or freezes the first),
// and for a view-only viewer it reads every message and passes on only
// those that ask for pictures, never those that reach the guest (keys,
// the pointer, the clipboard, a new screen size). A message it does not
// know ends the session: it cannot tell where such a message ends, and
// passing it on could pass input.
//
// It knows RFB 3.3, 3.7 and 3.8 (RFC 6143) with security type None, the
// messages QEMU's VNC server understands and noVNC sends. It does not
// dial, listen or authenticate: the daemon does.
package vnc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Client-to-server message types (RFC 6143 section 7.5, and the
// extensions QEMU knows).
const (
	msgSetPixelFormat     = 0
	msgSetEncodings       = 2
	msgUpdateRequest      = 3
	msgKeyEvent           = 4
	msgPointerEvent       = 5
	msgClientCutText      = 6
	msgContinuousUpdates  = 150
	msgClientFence        = 248
	msgSetDesktopSize     = 251
	msgQEMU               = 255
	qemuExtendedKeyEvent  = 0
	qemuAudio             = 1
	qemuAudioSetFormat    = 2
	securityNone          = 1
	maxClientFencePayload = 64
)

// ErrSecurity is a viewer choosing a security type but None: the display
// is a local socket behind the daemon's own authentication, and a type
// with further handshake bytes would pass unread.
var ErrSecurity = errors.New("vnc: the viewer chose a security type other than None (1)")

// Stats counts what a view-only relay held back.
type Stats struct {
	Dropped int // input messages not passed on
}

// Relay copies the viewer's stream src to the display dst until src ends
// or a write fails. It sets the shared flag of the viewer's ClientInit.
// With viewOnly it passes on only the messages that ask for pictures.
func Relay(dst io.Writer, src io.Reader, viewOnly bool) (Stats, error) {
	var st Stats
	if err := handshake(dst, src); err != nil {
		return st, err
	}
	if !viewOnly {
		_, err := io.Copy(dst, src)
		return st, err
	}
	for {
		msg, input, err := next(src)
		if err != nil {
			if err == io.EOF {
				return st, nil
			}
			return st, err
		}
		if input {
			st.Dropped++
			continue
		}
		if _, err := dst.Write(msg); err != nil {
			return st, err
		}
	}
}

// handshake passes the viewer's protocol version and security choice on
// and rewrites its ClientInit to shared: QEMU's default share policy
// lets a viewer that asks for the display alone disconnect the others.
func handshake(dst io.Writer, src io.Reader) error {
	version := make([]byte, 12)
	if _, err := io.ReadFull(src, version); err != nil {
		return fmt.Errorf("vnc: the viewer's protocol version: %w", err)
	}
	var major, minor int
	if n, _ := fmt.Sscanf(string(version), "RFB %03d.%03d\n", &major, &minor); n != 2 || major != 3 {
		return fmt.Errorf("vnc: the viewer sent %q, not an RFB 3.x version", version)
	}
	// Each part goes on as it comes: the server answers each before the
	// viewer sends the next.
	if _, err := dst.Write(version); err != nil {
		return err
	}
	if minor >= 7 {
		// 3.7 and 3.8: the viewer picks one of the server's types.
		sec := make([]byte, 1)
		if _, err := io.ReadFull(src, sec); err != nil {
			return fmt.Errorf("vnc: the viewer's security type: %w", err)
		}
		if sec[0] != securityNone {
			return ErrSecurity
		}
		if _, err := dst.Write(sec); err != nil {
			return err
		}
	}
	init := make([]byte, 1)
	if _, err := io.ReadFull(src, init); err != nil {
		return fmt.Errorf("vnc: the viewer's ClientInit: %w", err)
	}
	_, err := dst.Write([]byte{1})
	return err
}

// next reads one whole client message; input says it would reach the
// guest. io.EOF only between messages.
func next(src io.Reader) (msg []byte, input bool, err error) {
	r := &reader{src: src}
	typ := r.bytes(1)
	if r.err != nil {
		if r.err == io.ErrUnexpectedEOF {
			return nil, false, io.EOF
		}
		return nil, false, r.err
	}
	switch typ[0] {
	case msgSetPixelFormat:
		r.bytes(19)
	case msgSetEncodings:
		h := r.bytes(3)
		if r.err == nil {
			r.bytes(4 * int(binary.BigEndian.Uint16(h[1:])))
		}
	case msgUpdateRequest:
		r.bytes(9)
	case msgContinuousUpdates:
		r.bytes(9)
	case msgClientFence:
		h := r.bytes(8)
		if r.err == nil {
			if n := int(h[7]); n <= maxClientFencePayload {
				r.bytes(n)
			} else {
				r.err = fmt.Errorf("vnc: a fence of %d bytes (at most %d)", n, maxClientFencePayload)
			}
		}
	case msgKeyEvent:
		input = true
		r.bytes(7)
	case msgPointerEvent:
		input = true
		r.bytes(5)
	case msgClientCutText:
		input = true
		h := r.bytes(7)
		if r.err == nil {
			// A negative length is the extended clipboard's.
			n := int64(int32(binary.BigEndian.Uint32(h[3:])))
			if n < 0 {
				n = -n
			}
			r.skip(n)
		}
	case msgSetDesktopSize:
		input = true
		h := r.bytes(7)
		if r.err == nil {
			r.skip(16 * int64(h[5]))
		}
	case msgQEMU:
		sub := r.bytes(1)
		if r.err != nil {
			break
		}
		switch sub[0] {
		case qemuExtendedKeyEvent:
			input = true
			r.bytes(10)
		case qemuAudio:
			op := r.bytes(2)
			if r.err == nil && binary.BigEndian.Uint16(op) == qemuAudioSetFormat {
				r.bytes(6)
			}
		default:
			r.err = fmt.Errorf("vnc: QEMU client message %d is not one a view-only viewer may send", sub[0])
		}
	default:
		r.err = fmt.Errorf("vnc: client message type %d is not one a view-only viewer may send", typ[0])
	}
	if r.err != nil {
		if r.err == io.ErrUnexpectedEOF || r.err == io.EOF {
			r.err = fmt.Errorf("vnc: the viewer's message %d ends early", typ[0])
		}
		return nil, false, r.err
	}
	return r.msg, input, nil
}

// reader reads a message's parts, keeping them and the first error.
type reader struct {
	src io.Reader
	msg []byte
	err error
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	start := len(r.msg)
	r.msg = append(r.msg, make([]byte, n)...)
	if _, err := io.ReadFull(r.src, r.msg[start:]); err != nil {
		r.err = err
		if err == io.EOF {
			r.err = io.ErrUnexpectedEOF
		}
		return nil
	}
	return r.msg[start:]
}

// skip reads n bytes of an input message that is dropped anyway,
// without keeping them (a clipboard can be large).
func (r *reader) skip(n int64) {
	if r.err != nil {
		return
	}
	if got, err := io.CopyN(io.Discard, r.src, n); err != nil || got != n {
		r.err = io.ErrUnexpectedEOF
	}
}

// Package nbd is a small client of the NBD protocol (fixed newstyle
// handshake, structured replies, meta contexts) for what godwit's backups
// need: list extents of a meta context (base:allocation, a QEMU dirty
// bitmap), read ranges, write and flush. It speaks to QEMU's NBD server
// (libvirt's pull-mode backup export, qemu-nbd) over a unix socket.
//
// A Conn runs one request at a time; callers that want parallel reads open
// several connections. It knows nothing about backups or repositories.
package nbd

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

var be = binary.BigEndian

// Protocol constants (NBD proto.md).
const (
	optGo             = 7
	optStructuredRepl = 8
	optSetMetaContext = 10

	repAck         = 1
	repMetaContext = 4
	repInfo        = 3
	infoExport     = 0

	cmdRead        = 0
	cmdWrite       = 1
	cmdDisc        = 2
	cmdFlush       = 3
	cmdWriteZeroes = 6
	cmdBlockStatus = 7

	requestMagic    = 0x25609513
	simpleMagic     = 0x67446698
	structuredMagic = 0x668e33ef

	chunkDone         = 1
	chunkNone         = 0
	chunkOffsetData   = 1
	chunkOffsetHole   = 2
	chunkBlockStatus  = 5
	chunkErrorBit     = 1 << 15
	flagReadOnly      = 1 << 1
	writeZeroesNoHole = 0 // leave holes allowed
)

// Meta context names.
const (
	// BaseAllocation: extent flag 1 is a hole, 2 reads as zeroes.
	BaseAllocation = "base:allocation"
)

// Extent flags of base:allocation and of dirty bitmaps.
const (
	FlagHole  = 1 // base:allocation
	FlagZero  = 2 // base:allocation
	FlagDirty = 1 // qemu:dirty-bitmap:*
)

// MaxRequest is the largest read or write one request carries (QEMU's
// server allows 32 MiB).
const MaxRequest = 32 << 20

// Conn is one NBD connection to one export.
type Conn struct {
	c        net.Conn
	size     uint64
	readOnly bool
	ctxIDs   map[string]uint32
	handle   uint64
	stop     func() bool
}

// Extent is a run of bytes with the same flags in one meta context.
type Extent struct {
	Offset, Length uint64
	Flags          uint32
}

// Dial connects to the unix socket, negotiates structured replies and the
// given meta contexts, and opens export.
func Dial(ctx context.Context, socket, export string, contexts ...string) (*Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, fmt.Errorf("nbd: connect %s: %w", socket, err)
	}
	c := &Conn{c: nc, ctxIDs: map[string]uint32{}}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	} else {
		_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	}
	if err := c.handshake(export, contexts); err != nil {
		nc.Close()
		return nil, fmt.Errorf("nbd: export %q on %s: %w", export, socket, err)
	}
	_ = nc.SetDeadline(time.Time{})
	// Cancelling ctx later cuts a request short.
	c.stop = context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	return c, nil
}

// Size is the export's size in bytes.
func (c *Conn) Size() uint64 { return c.size }

// ReadOnly reports whether the server exports read-only.
func (c *Conn) ReadOnly() bool { return c.readOnly }

// HasContext reports whether the server agreed to a meta context.
func (c *Conn) HasContext(name string) bool { _, ok := c.ctxIDs[name]; return ok }

func (c *Conn) readFull(n int) ([]byte, error) {
	b := make([]byte, n)
	_, err := io.ReadFull(c.c, b)
	return b, err
}

func (c *Conn) option(op uint32, data []byte) error {
	b := make([]byte, 16, 16+len(data))
	copy(b, "IHAVEOPT")
	be.PutUint32(b[8:], op)
	be.PutUint32(b[12:], uint32(len(data)))
	_, err := c.c.Write(append(b, data...))
	return err
}

type optReply struct {
	typ  uint32
	data []byte
}

// optionReplies reads replies to one option until the ACK.
func (c *Conn) optionReplies(what string) ([]optReply, error) {
	var out []optReply
	for {
		h, err := c.readFull(20)
		if err != nil {
			return nil, err
		}
		typ, l := be.Uint32(h[12:]), be.Uint32(h[16:])
		if l > 1<<20 {
			return nil, fmt.Errorf("%s: option reply of %d bytes", what, l)
		}
		d, err := c.readFull(int(l))
		if err != nil {
			return nil, err
		}
		if typ&(1<<31) != 0 {
			return nil, fmt.Errorf("%s refused (error %#x): %s", what, typ, d)
		}
		if typ == repAck {
			return out, nil
		}
		out = append(out, optReply{typ, d})
	}
}

func (c *Conn) handshake(export string, contexts []string) error {
	h, err := c.readFull(18)
	if err != nil {
		return err
	}
	if string(h[:16]) != "NBDMAGICIHAVEOPT" {
		return errors.New("not an NBD server speaking the fixed newstyle handshake")
	}
	if err := binary.Write(c.c, be, uint32(1|2)); err != nil { // FIXED_NEWSTYLE | NO_ZEROES
		return err
	}
	if err := c.option(optStructuredRepl, nil); err != nil {
		return err
	}
	if _, err := c.optionReplies("structured replies"); err != nil {
		return err
	}
	if len(contexts) > 0 {
		q := be.AppendUint32(nil, uint32(len(export)))
		q = append(q, export...)
		q = be.AppendUint32(q, uint32(len(contexts)))
		for _, s := range contexts {
			q = be.AppendUint32(q, uint32(len(s)))
			q = append(q, s...)
		}
		if err := c.option(optSetMetaContext, q); err != nil {
			return err
		}
		reps, err := c.optionReplies("meta contexts")
		if err != nil {
			return err
		}
		for _, r := range reps {
			if r.typ == repMetaContext && len(r.data) >= 4 {
				c.ctxIDs[string(r.data[4:])] = be.Uint32(r.data)
			}
		}
		for _, s := range contexts {
			if _, ok := c.ctxIDs[s]; !ok {
				return fmt.Errorf("the server does not offer meta context %q", s)
			}
		}
	}
	g := be.AppendUint32(nil, uint32(len(export)))
	g = append(g, export...)
	g = append(g, 0, 0) // no info requests
	if err := c.option(optGo, g); err != nil {
		return err
	}
	reps, err := c.optionReplies("open export")
	if err != nil {
		return err
	}
	got := false
	for _, r := range reps {
		if r.typ == repInfo && len(r.data) >= 12 && be.Uint16(r.data) == infoExport {
			c.size = be.Uint64(r.data[2:])
			c.readOnly = be.Uint16(r.data[10:])&flagReadOnly != 0
			got = true
		}
	}
	if !got {
		return errors.New("the server did not say the export's size")
	}
	return nil
}

func (c *Conn) request(typ, flags uint16, off uint64, length uint32, data []byte) (uint64, error) {
	c.handle++
	b := make([]byte, 28, 28+len(data))
	be.PutUint32(b, requestMagic)
	be.PutUint16(b[4:], flags)
	be.PutUint16(b[6:], typ)
	be.PutUint64(b[8:], c.handle)
	be.PutUint64(b[16:], off)
	be.PutUint32(b[24:], length)
	_, err := c.c.Write(append(b, data...))
	return c.handle, err
}

// replies reads the reply to request handle: a simple reply, or structured
// chunks until DONE, handing each chunk to f (which may be nil).
// dst, when set, receives the data of a read at dstOff: a simple reply or
// OFFSET_DATA chunks (which f never sees).
func (c *Conn) replies(handle uint64, dst []byte, dstOff uint64, f func(typ uint16, payload []byte) error) error {
	for {
		h, err := c.readFull(4)
		if err != nil {
			return err
		}
		switch be.Uint32(h) {
		case simpleMagic:
			r, err := c.readFull(12)
			if err != nil {
				return err
			}
			if e := be.Uint32(r); e != 0 {
				return fmt.Errorf("server error %d (%s)", e, errnoName(e))
			}
			if be.Uint64(r[4:]) != handle {
				return errors.New("reply to an unknown request")
			}
			if dst != nil {
				_, err = io.ReadFull(c.c, dst)
			}
			return err
		case structuredMagic:
			r, err := c.readFull(16)
			if err != nil {
				return err
			}
			flags, typ, l := be.Uint16(r), be.Uint16(r[2:]), be.Uint32(r[12:])
			if be.Uint64(r[4:]) != handle {
				return errors.New("reply to an unknown request")
			}
			if typ == chunkOffsetData && dst != nil {
				// The bulk of a backup: straight into dst, no copy.
				if err := c.readData(dst, dstOff, l); err != nil {
					return err
				}
				if flags&chunkDone != 0 {
					return nil
				}
				continue
			}
			p, err := c.readFull(int(l))
			if err != nil {
				return err
			}
			if typ&chunkErrorBit != 0 {
				msg := ""
				if len(p) >= 6 {
					ml := int(be.Uint16(p[4:]))
					if 6+ml <= len(p) {
						msg = string(p[6 : 6+ml])
					}
					return fmt.Errorf("server error %d (%s) %s", be.Uint32(p), errnoName(be.Uint32(p)), msg)
				}
				return fmt.Errorf("server error chunk %d", typ)
			}
			if f != nil && typ != chunkNone {
				if err := f(typ, p); err != nil {
					return err
				}
			}
			if flags&chunkDone != 0 {
				return nil
			}
		default:
			return fmt.Errorf("unexpected reply magic %#x", be.Uint32(h))
		}
	}
}

// readData reads the payload of an OFFSET_DATA chunk of l bytes into
// dst, which holds the export's bytes from dstOff on.
func (c *Conn) readData(dst []byte, dstOff uint64, l uint32) error {
	if l < 8 {
		return errors.New("short data chunk")
	}
	h, err := c.readFull(8)
	if err != nil {
		return err
	}
	o := be.Uint64(h) - dstOff
	n := uint64(l - 8)
	if o > uint64(len(dst)) || n > uint64(len(dst))-o {
		return errors.New("data chunk out of range")
	}
	_, err = io.ReadFull(c.c, dst[o:o+n])
	return err
}

func errnoName(e uint32) string {
	switch e {
	case 1:
		return "EPERM"
	case 5:
		return "EIO"
	case 12:
		return "ENOMEM"
	case 22:
		return "EINVAL"
	case 28:
		return "ENOSPC"
	case 75:
		return "EOVERFLOW"
	case 95:
		return "ENOTSUP"
	case 108:
		return "ESHUTDOWN"
	}
	return "errno"
}

// Extents returns the extents of meta context name over [off, off+length).
func (c *Conn) Extents(name string, off, length uint64) ([]Extent, error) {
	id, ok := c.ctxIDs[name]
	if !ok {
		return nil, fmt.Errorf("nbd: meta context %q was not negotiated", name)
	}
	end := off + length
	if end > c.size {
		end = c.size
	}
	var out []Extent
	for off < end {
		l := end - off
		if l > 1<<31 {
			l = 1 << 31
		}
		h, err := c.request(cmdBlockStatus, 0, off, uint32(l), nil)
		if err != nil {
			return nil, fmt.Errorf("nbd: block status: %w", err)
		}
		got := off
		err = c.replies(h, nil, 0, func(typ uint16, p []byte) error {
			if typ != chunkBlockStatus || len(p) < 4 || be.Uint32(p) != id {
				return nil
			}
			for d := p[4:]; len(d) >= 8; d = d[8:] {
				n := uint64(be.Uint32(d))
				if got+n > end {
					n = end - got
				}
				if n == 0 {
					continue
				}
				if k := len(out); k > 0 && out[k-1].Flags == be.Uint32(d[4:]) && out[k-1].Offset+out[k-1].Length == got {
					out[k-1].Length += n
				} else {
					out = append(out, Extent{got, n, be.Uint32(d[4:])})
				}
				got += n
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("nbd: block status at %d: %w", off, err)
		}
		if got == off {
			return nil, fmt.Errorf("nbd: block status at %d: no progress", off)
		}
		off = got
	}
	return out, nil
}

// ReadAt reads len(dst) bytes at off (at most MaxRequest).
func (c *Conn) ReadAt(dst []byte, off uint64) error {
	if len(dst) > MaxRequest {
		return fmt.Errorf("nbd: read of %d bytes is over %d", len(dst), MaxRequest)
	}
	h, err := c.request(cmdRead, 0, off, uint32(len(dst)), nil)
	if err != nil {
		return fmt.Errorf("nbd: read: %w", err)
	}
	err = c.replies(h, dst, off, func(typ uint16, p []byte) error {
		switch typ {
		case chunkOffsetHole:
			if len(p) < 12 {
				return errors.New("short hole chunk")
			}
			o, n := be.Uint64(p)-off, uint64(be.Uint32(p[8:]))
			if o+n > uint64(len(dst)) {
				return errors.New("hole chunk out of range")
			}
			clear(dst[o : o+n])
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("nbd: read %d bytes at %d: %w", len(dst), off, err)
	}
	return nil
}

// WriteAt writes data at off (at most MaxRequest bytes).
func (c *Conn) WriteAt(data []byte, off uint64) error {
	if len(data) > MaxRequest {
		return fmt.Errorf("nbd: write of %d bytes is over %d", len(data), MaxRequest)
	}
	h, err := c.request(cmdWrite, 0, off, uint32(len(data)), data)
	if err != nil {
		return fmt.Errorf("nbd: write: %w", err)
	}
	if err := c.replies(h, nil, 0, nil); err != nil {
		return fmt.Errorf("nbd: write %d bytes at %d: %w", len(data), off, err)
	}
	return nil
}

// WriteZeroes makes [off, off+length) read as zeroes.
func (c *Conn) WriteZeroes(off uint64, length uint32) error {
	h, err := c.request(cmdWriteZeroes, writeZeroesNoHole, off, length, nil)
	if err != nil {
		return fmt.Errorf("nbd: write zeroes: %w", err)
	}
	if err := c.replies(h, nil, 0, nil); err != nil {
		return fmt.Errorf("nbd: write zeroes at %d: %w", off, err)
	}
	return nil
}

// Flush makes the writes so far durable.
func (c *Conn) Flush() error {
	h, err := c.request(cmdFlush, 0, 0, 0, nil)
	if err != nil {
		return fmt.Errorf("nbd: flush: %w", err)
	}
	if err := c.replies(h, nil, 0, nil); err != nil {
		return fmt.Errorf("nbd: flush: %w", err)
	}
	return nil
}

// Close says goodbye and closes the connection.
func (c *Conn) Close() error {
	if c.stop != nil {
		c.stop()
	}
	_, _ = c.request(cmdDisc, 0, 0, 0, nil)
	return c.c.Close()
}

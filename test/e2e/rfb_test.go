package e2e

import (
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net"
	"os"
	"time"
)

// rfb is a small VNC client for the tests: the RFB 3.8 handshake with
// security type None, raw framebuffer updates, key events.
type rfb struct {
	conn          net.Conn
	width, height int
	bpp           int // bytes a pixel
	name          string
	fb            []byte // width*height*bpp, as the server sends pixels
}

// rfbHandshake runs the handshake on conn and reads the server's init.
func rfbHandshake(conn net.Conn) (*rfb, error) {
	c := &rfb{conn: conn}
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	version := make([]byte, 12)
	if _, err := io.ReadFull(conn, version); err != nil {
		return nil, fmt.Errorf("server version: %w", err)
	}
	if string(version) != "RFB 003.008\n" {
		return nil, fmt.Errorf("server version %q, want RFB 003.008", version)
	}
	if _, err := conn.Write(version); err != nil {
		return nil, err
	}
	n := make([]byte, 1)
	if _, err := io.ReadFull(conn, n); err != nil || n[0] == 0 {
		return nil, fmt.Errorf("security types: %v (count %d)", err, n[0])
	}
	types := make([]byte, n[0])
	if _, err := io.ReadFull(conn, types); err != nil {
		return nil, err
	}
	none := false
	for _, t := range types {
		none = none || t == 1
	}
	if !none {
		return nil, fmt.Errorf("security types %v lack None (1)", types)
	}
	if _, err := conn.Write([]byte{1}); err != nil {
		return nil, err
	}
	var result uint32
	if err := binary.Read(conn, binary.BigEndian, &result); err != nil || result != 0 {
		return nil, fmt.Errorf("security result %d: %v", result, err)
	}
	if _, err := conn.Write([]byte{0}); err != nil { // ClientInit: exclusive (the daemon makes it shared)
		return nil, err
	}
	var init struct {
		W, H   uint16
		PF     [16]byte
		Length uint32
	}
	if err := binary.Read(conn, binary.BigEndian, &init); err != nil {
		return nil, fmt.Errorf("server init: %w", err)
	}
	name := make([]byte, init.Length)
	if _, err := io.ReadFull(conn, name); err != nil {
		return nil, err
	}
	c.width, c.height, c.bpp, c.name = int(init.W), int(init.H), int(init.PF[0])/8, string(name)
	c.fb = make([]byte, c.width*c.height*c.bpp)
	// Raw encoding only: every rectangle is its pixels.
	_, err := conn.Write([]byte{2, 0, 0, 1, 0, 0, 0, 0})
	return c, err
}

// update asks for the whole screen and reads one framebuffer update,
// returning how many pixels it painted.
func (c *rfb) update() (int, error) {
	_ = c.conn.SetDeadline(time.Now().Add(60 * time.Second))
	req := []byte{3, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint16(req[6:], uint16(c.width))
	binary.BigEndian.PutUint16(req[8:], uint16(c.height))
	if _, err := c.conn.Write(req); err != nil {
		return 0, err
	}
	for {
		typ := make([]byte, 1)
		if _, err := io.ReadFull(c.conn, typ); err != nil {
			return 0, err
		}
		switch typ[0] {
		case 0: // FramebufferUpdate
		case 2: // Bell
			continue
		default:
			return 0, fmt.Errorf("server message %d, want a framebuffer update", typ[0])
		}
		var h struct {
			Pad   byte
			Rects uint16
		}
		if err := binary.Read(c.conn, binary.BigEndian, &h); err != nil {
			return 0, err
		}
		painted := 0
		for i := 0; i < int(h.Rects); i++ {
			var r struct {
				X, Y, W, H uint16
				Enc        int32
			}
			if err := binary.Read(c.conn, binary.BigEndian, &r); err != nil {
				return 0, err
			}
			if r.Enc != 0 {
				return 0, fmt.Errorf("rectangle encoding %d, asked for raw only", r.Enc)
			}
			if int(r.X)+int(r.W) > c.width || int(r.Y)+int(r.H) > c.height {
				return 0, fmt.Errorf("rectangle %+v outside the %dx%d screen", r, c.width, c.height)
			}
			row := make([]byte, int(r.W)*c.bpp)
			for y := 0; y < int(r.H); y++ {
				if _, err := io.ReadFull(c.conn, row); err != nil {
					return 0, err
				}
				copy(c.fb[((int(r.Y)+y)*c.width+int(r.X))*c.bpp:], row)
			}
			painted += int(r.W) * int(r.H)
		}
		return painted, nil
	}
}

// lit counts the pixels that are not black.
func (c *rfb) lit() int {
	n := 0
	for i := 0; i+c.bpp <= len(c.fb); i += c.bpp {
		for _, b := range c.fb[i : i+c.bpp] {
			if b != 0 {
				n++
				break
			}
		}
	}
	return n
}

// savePNG writes the framebuffer as a picture (QEMU's default pixel
// format: 32 bits, little-endian, red at bit 16).
func (c *rfb) savePNG(path string) error {
	img := image.NewRGBA(image.Rect(0, 0, c.width, c.height))
	for y := 0; y < c.height; y++ {
		for x := 0; x < c.width; x++ {
			p := c.fb[(y*c.width+x)*c.bpp:]
			img.Set(x, y, color.RGBA{R: p[2], G: p[1], B: p[0], A: 255})
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return png.Encode(f, img)
}

// X keysyms of Ctrl-Alt-Del.
const (
	keyControlL = 0xffe3
	keyAltL     = 0xffe9
	keyDelete   = 0xffff
)

// ctrlAltDel presses and releases Ctrl-Alt-Del.
func (c *rfb) ctrlAltDel() error {
	keys := []uint32{keyControlL, keyAltL, keyDelete}
	var msgs []byte
	ev := func(down byte, key uint32) {
		m := []byte{4, down, 0, 0, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(m[4:], key)
		msgs = append(msgs, m...)
	}
	for _, k := range keys {
		ev(1, k)
	}
	for i := len(keys) - 1; i >= 0; i-- {
		ev(0, keys[i])
	}
	_, err := c.conn.Write(msgs)
	return err
}

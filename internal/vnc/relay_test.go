package vnc

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// Messages as noVNC sends them.
var (
	setPixelFormat = append([]byte{0, 0, 0, 0}, make([]byte, 16)...)
	setEncodings   = []byte{2, 0, 0, 2, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x21} // raw, DesktopSize
	updateRequest  = []byte{3, 0, 0, 0, 0, 0, 2, 0xd0, 1, 0x90}
	keyDown        = []byte{4, 1, 0, 0, 0, 0, 0xff, 0xe3} // Control_L
	pointer        = []byte{5, 1, 0, 10, 0, 20}
	cutText        = []byte{6, 0, 0, 0, 0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o'}
	qemuKey        = []byte{255, 0, 0, 1, 0, 0, 0xff, 0xff, 0, 0, 0, 0x53} // Delete, scancode
	desktopSize    = append([]byte{251, 0, 4, 0, 3, 0, 1, 0}, make([]byte, 16)...)
	fence          = []byte{248, 0, 0, 0, 0, 0, 0, 3, 2, 'a', 'b'}
	hello          = []byte("RFB 003.008\n\x01\x00") // version, None, ClientInit exclusive
)

func stream(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestViewOnlyPassesPicturesAndDropsInput(t *testing.T) {
	in := stream(hello, setPixelFormat, setEncodings, updateRequest, keyDown, pointer, cutText, qemuKey, desktopSize, fence, updateRequest)
	var out bytes.Buffer
	st, err := Relay(&out, bytes.NewReader(in), true)
	if err != nil {
		t.Fatal(err)
	}
	want := stream([]byte("RFB 003.008\n\x01\x01"), setPixelFormat, setEncodings, updateRequest, fence, updateRequest)
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("passed on\n%q\nwant\n%q", out.Bytes(), want)
	}
	if st.Dropped != 5 {
		t.Errorf("dropped %d messages, want 5 (key, pointer, clipboard, QEMU key, desktop size)", st.Dropped)
	}
}

// An admin's stream goes on as it is, but for the shared flag.
func TestFullAccessPassesEverythingShared(t *testing.T) {
	in := stream(hello, setEncodings, keyDown, pointer, cutText, qemuKey, []byte{77, 1, 2, 3})
	var out bytes.Buffer
	st, err := Relay(&out, bytes.NewReader(in), false)
	if err != nil || st.Dropped != 0 {
		t.Fatalf("%+v, %v", st, err)
	}
	want := append([]byte{}, in...)
	want[13] = 1
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("passed on %q, want %q", out.Bytes(), want)
	}
}

// RFB 3.3: the server picks the security type; the viewer sends none.
func TestVersion33(t *testing.T) {
	var out bytes.Buffer
	if _, err := Relay(&out, bytes.NewReader(stream([]byte("RFB 003.003\n\x00"), updateRequest, keyDown)), true); err != nil {
		t.Fatal(err)
	}
	if want := stream([]byte("RFB 003.003\n\x01"), updateRequest); !bytes.Equal(out.Bytes(), want) {
		t.Errorf("passed on %q, want %q", out.Bytes(), want)
	}
}

// What the relay cannot read whole ends the session, having passed on
// nothing of it.
func TestViewOnlyRefuses(t *testing.T) {
	cases := []struct {
		name, want string
		in         []byte
	}{
		{"unknown message", "type 77", stream(hello, []byte{77, 4, 0, 0, 0, 0, 0, 0})},
		{"unknown QEMU message", "QEMU client message 9", stream(hello, []byte{255, 9, 0})},
		{"message cut short", "ends early", stream(hello, keyDown[:3])},
		{"VNC password auth", "security type", []byte("RFB 003.008\n\x02")},
		{"not RFB", "not an RFB", []byte("GET / HTTP/1.1\r\n")},
		{"huge fence", "fence", stream(hello, []byte{248, 0, 0, 0, 0, 0, 0, 0, 200})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			_, err := Relay(&out, bytes.NewReader(c.in), true)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one saying %q", err, c.want)
			}
			if c.want == "security type" && !errors.Is(err, ErrSecurity) {
				t.Errorf("err = %v, not ErrSecurity", err)
			}
			if out.Len() > len(hello) {
				t.Errorf("passed on more than the handshake: %q", out.Bytes())
			}
		})
	}
}

// The viewer sends each part of the handshake only after the server
// answered the one before: the relay must pass each on as it comes.
func TestHandshakeStepByStep(t *testing.T) {
	viewerR, viewerW := io.Pipe()
	serverR, serverW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := Relay(serverW, viewerR, true)
		done <- err
	}()
	got := make([]byte, 14)
	for i, part := range [][]byte{[]byte("RFB 003.008\n"), {1}, {0}} {
		if _, err := viewerW.Write(part); err != nil {
			t.Fatal(err)
		}
		at := map[int]int{0: 0, 1: 12, 2: 13}[i]
		n := len(part)
		readOrTimeout(t, serverR, got[at:at+n])
	}
	if want := "RFB 003.008\n\x01\x01"; string(got) != want {
		t.Errorf("server got %q, want %q", got, want)
	}
	viewerW.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func readOrTimeout(t *testing.T, r io.Reader, buf []byte) {
	t.Helper()
	read := make(chan error, 1)
	go func() { _, err := io.ReadFull(r, buf); read <- err }()
	select {
	case err := <-read:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("the relay held back %d bytes of the handshake", len(buf))
	}
}

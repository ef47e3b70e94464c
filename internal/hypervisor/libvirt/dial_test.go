package libvirt

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"
)

func TestDial(t *testing.T) {
	dir := t.TempDir()
	conn := func(socket string) *Conn {
		c, err := New("qemu+unix:///system?socket="+socket, slog.New(slog.DiscardHandler), Options{})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	// Nothing listens: the dial answers with an error.
	l, answered, err := conn(filepath.Join(dir, "none")).dial(context.Background())
	if l != nil || !answered || err == nil {
		t.Errorf("dial of a missing socket = %v, %t, %v; want nil, true, an error", l, answered, err)
	}

	// A socket that never speaks: ctx ends the wait.
	mute := filepath.Join(dir, "mute")
	ln, err := net.Listen("unix", mute)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	l, answered, err = conn(mute).dial(ctx)
	if l != nil || answered || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("dial of a mute socket = %v, %t, %v; want nil, false, deadline exceeded", l, answered, err)
	}
}

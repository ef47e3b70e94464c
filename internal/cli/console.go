package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/godwit-project/godwit/client"
)

// escapeKey (Ctrl-]) leaves an interactive console, as in virsh and telnet.
const escapeKey = 0x1d

// attachConsole runs `vm console --input`: the console's output to out,
// stdin typed into the serial port over the daemon's websocket. On a
// terminal, stdin goes raw (keys as typed) and Ctrl-] leaves; from a
// pipe, its lines are sent and the output followed until interrupted.
func attachConsole(ctx context.Context, c *client.Client, name string, lines int, stdin io.Reader, out, errOut io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cc, err := c.AttachConsole(ctx, name, lines)
	if err != nil {
		return err
	}
	defer cc.Close()
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		restore, err := rawInput(int(f.Fd()))
		if err != nil {
			return err
		}
		defer restore()
		fmt.Fprintf(errOut, "Connected to the console of %s; Ctrl-] leaves.\r\n", name)
	}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := stdin.Read(buf)
			if n > 0 {
				b := buf[:n]
				if i := bytes.IndexByte(b, escapeKey); i >= 0 {
					if i > 0 {
						_ = cc.Type(ctx, b[:i])
					}
					cancel()
					return
				}
				if err := cc.Type(ctx, b); err != nil {
					return
				}
			}
			if err != nil {
				return // EOF from a pipe: keep following
			}
		}
	}()
	for {
		b, note, err := cc.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, context.Canceled) {
				return nil
			}
			return fmt.Errorf("console of %s: %w", name, err)
		}
		switch {
		case note != nil && note.ReadOnly:
			fmt.Fprintf(errOut, "godwit: this login is read only: what you type is not sent to %s\r\n", name)
		case note != nil && note.Error != "":
			fmt.Fprintf(errOut, "godwit: %s\r\n", note.Error)
		default:
			if _, err := out.Write(b); err != nil {
				return err
			}
		}
	}
}

// rawInput puts the terminal in raw mode but keeps output processing
// (newlines still return the carriage).
func rawInput(fd int) (func(), error) {
	old, err := term.MakeRaw(fd)
	if err != nil {
		return nil, err
	}
	if t, err := unix.IoctlGetTermios(fd, unix.TCGETS); err == nil {
		t.Oflag |= unix.OPOST | unix.ONLCR
		_ = unix.IoctlSetTermios(fd, unix.TCSETS, t)
	}
	return func() { _ = term.Restore(fd, old) }, nil
}

package console

import (
	"io"
	"os"
	"regexp"
	"syscall"

	"golang.org/x/term"
)

// ptyRE finds the serial port's pty in a running domain's XML.
var ptyRE = regexp.MustCompile(`<serial type='pty'>\s*<source path='(/dev/pts/\d+)'`)

// PtyPath returns the serial port's pty of a running domain's XML ("" for none).
func PtyPath(domainXML string) string {
	if m := ptyRE.FindStringSubmatch(domainXML); m != nil {
		return m[1]
	}
	return ""
}

// Input writes to a VM's serial port through its pty (QEMU holds the
// other end). Output is read from the console log instead, so that every
// viewer follows the log on its own: one slow viewer stalls no other.
type Input struct {
	f *os.File
}

// OpenInput opens the pty raw (no echo back into the guest, newlines
// left alone) and drains what QEMU writes to it: a full pty buffer would
// stall the guest's serial port. The log has that output already.
func OpenInput(path string) (*Input, error) {
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	if _, err := term.MakeRaw(int(f.Fd())); err != nil {
		f.Close()
		return nil, err
	}
	go func() { _, _ = io.Copy(io.Discard, f) }()
	return &Input{f: f}, nil
}

func (in *Input) Write(p []byte) (int, error) { return in.f.Write(p) }

// Close ends the drain too.
func (in *Input) Close() error { return in.f.Close() }

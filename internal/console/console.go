// Package console reads a VM's serial console log: all of it, its tail, or
// following it as it grows (like tail -F: it survives virtlogd's rotation
// and a log that does not exist yet).
package console

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"syscall"
	"time"
)

// PollInterval is how often a followed log is checked for new output.
var PollInterval = 150 * time.Millisecond

// Options say what to read.
type Options struct {
	// Follow keeps reading new output until ctx ends.
	Follow bool
	// Lines, when > 0, starts with only the last Lines lines.
	Lines int
	// Offset, when > 0, starts at this byte (e.g. where a boot began). A
	// log shorter than Offset was rotated: it is read from its start.
	Offset int64
}

// Size returns the log's current size (0 when it does not exist yet).
func Size(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// Copy writes the log at path to w as Options say. A missing log is empty.
func Copy(ctx context.Context, path string, w io.Writer, opts Options) error {
	f, ino, err := open(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if f != nil {
		defer func() { f.Close() }()
		if opts.Offset > 0 {
			if st, err := f.Stat(); err == nil && st.Size() >= opts.Offset {
				if _, err := f.Seek(opts.Offset, io.SeekStart); err != nil {
					return err
				}
			}
		}
		if opts.Lines > 0 {
			if err := seekTail(f, opts.Lines); err != nil {
				return err
			}
		}
		if _, err := io.Copy(w, f); err != nil {
			return err
		}
		flush(w)
	}
	if !opts.Follow {
		return nil
	}
	buf := make([]byte, 32*1024)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(PollInterval):
		}
		if f == nil {
			if f, ino, err = open(path); err != nil {
				continue
			}
		}
		n, err := copyAvailable(w, f, buf)
		if err != nil {
			return err
		}
		if n > 0 {
			flush(w)
			continue
		}
		// Nothing new: has the log been rotated or truncated under us?
		st, err := os.Stat(path)
		if err != nil {
			continue
		}
		pos, _ := f.Seek(0, io.SeekCurrent)
		if inode(st) != ino || st.Size() < pos {
			f.Close()
			f, ino, _ = open(path)
		}
	}
}

func open(path string) (*os.File, uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, inode(st), nil
}

func inode(st os.FileInfo) uint64 {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return s.Ino
	}
	return 0
}

func copyAvailable(w io.Writer, f *os.File, buf []byte) (int, error) {
	total := 0
	for {
		n, err := f.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return total, werr
			}
			total += n
		}
		if err == io.EOF || n == 0 {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// seekTail positions f at the start of its last n lines.
func seekTail(f *os.File, n int) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	const chunk = 8192
	pos := size
	lines := 0
	buf := make([]byte, chunk)
	// A final newline ends the last line; it does not start a new one.
	skipLast := true
	for pos > 0 {
		step := int64(chunk)
		if pos < step {
			step = pos
		}
		pos -= step
		if _, err := f.ReadAt(buf[:step], pos); err != nil && err != io.EOF {
			return err
		}
		for i := step - 1; i >= 0; i-- {
			if buf[i] != '\n' {
				skipLast = false
				continue
			}
			if skipLast {
				skipLast = false
				continue
			}
			lines++
			if lines == n {
				_, err := f.Seek(pos+i+1, io.SeekStart)
				return err
			}
		}
	}
	_, err = f.Seek(0, io.SeekStart)
	return err
}

type flusher interface{ Flush() }

func flush(w io.Writer) {
	if f, ok := w.(flusher); ok {
		f.Flush()
	}
}

// Contains reports whether the log at path holds s (for waiting on a boot
// message). A missing log holds nothing.
func Contains(path string, s []byte) bool {
	b, err := os.ReadFile(path)
	return err == nil && bytes.Contains(b, s)
}

// Package audit keeps the audit log: one JSON line (api.AuditEntry) per
// request that could change something, appended to a file in the state
// dir (mode 0600). It writes and reads that file; it decides nothing
// about who may do what (internal/auth and internal/daemon do).
package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"sync"

	"github.com/godwit-project/godwit/api"
)

// Log is an append-only JSON-lines file.
type Log struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

// Open opens (or creates) the log at path.
func Open(path string) (*Log, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, err
	}
	return &Log{path: path, f: f}, nil
}

// Path is where the log lives.
func (l *Log) Path() string { return l.path }

// Write appends one entry. Each entry is one write(2) of one line, so
// lines never interleave.
func (l *Log) Write(e api.AuditEntry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return os.ErrClosed
	}
	_, err = l.f.Write(b)
	return err
}

// Close closes the file.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// tailWindow bounds how much of the file Tail reads.
const tailWindow = 8 << 20

// Tail returns the last n entries (every entry when n <= 0, within the
// last 8 MiB of the file), oldest first. Lines that do not parse are
// skipped.
func (l *Log) Tail(n int) ([]api.AuditEntry, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	off := max(st.Size()-tailWindow, 0)
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return nil, err
	}
	r := bufio.NewReader(f)
	if off > 0 {
		_, _ = r.ReadBytes('\n') // a partial first line
	}
	out := []api.AuditEntry{}
	for {
		line, err := r.ReadBytes('\n')
		if line = bytes.TrimSpace(line); len(line) > 0 {
			var e api.AuditEntry
			if json.Unmarshal(line, &e) == nil {
				out = append(out, e)
			}
		}
		if err != nil {
			break
		}
	}
	if n > 0 && len(out) > n {
		out = out[len(out)-n:]
	}
	return out, nil
}

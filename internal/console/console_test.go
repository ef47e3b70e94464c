package console

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func waitFor(t *testing.T, b *syncBuf, want string) {
	t.Helper()
	for i := 0; i < 100; i++ {
		if strings.Contains(b.String(), want) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("output %q never contained %q", b.String(), want)
}

func TestCopyAndTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	os.WriteFile(path, []byte("one\ntwo\nthree\n"), 0o600)
	var b bytes.Buffer
	if err := Copy(context.Background(), path, &b, Options{}); err != nil || b.String() != "one\ntwo\nthree\n" {
		t.Fatalf("Copy = %q, %v", b.String(), err)
	}
	b.Reset()
	if err := Copy(context.Background(), path, &b, Options{Lines: 2}); err != nil || b.String() != "two\nthree\n" {
		t.Fatalf("Lines 2 = %q, %v", b.String(), err)
	}
	b.Reset()
	if err := Copy(context.Background(), path, &b, Options{Lines: 10}); err != nil || b.String() != "one\ntwo\nthree\n" {
		t.Fatalf("Lines 10 = %q, %v", b.String(), err)
	}
	b.Reset()
	if err := Copy(context.Background(), filepath.Join(t.TempDir(), "none"), &b, Options{}); err != nil || b.Len() != 0 {
		t.Fatalf("missing log = %q, %v", b.String(), err)
	}
}

func TestFollowGrowthRotationAndLateFile(t *testing.T) {
	PollInterval = 10 * time.Millisecond
	path := filepath.Join(t.TempDir(), "c.log")
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuf
	done := make(chan error)
	go func() { done <- Copy(ctx, path, &out, Options{Follow: true}) }()

	os.WriteFile(path, []byte("boot\n"), 0o600) // appears after the follow began
	waitFor(t, &out, "boot\n")
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("tick 1\n")
	f.Close()
	waitFor(t, &out, "tick 1\n")
	// virtlogd rotates: rename, then a new file.
	os.Rename(path, path+".0")
	os.WriteFile(path, []byte("tick 2\n"), 0o600)
	waitFor(t, &out, "tick 2\n")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "boot\ntick 1\ntick 2\n" {
		t.Fatalf("followed %q", got)
	}
}

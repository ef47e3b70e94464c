package audit

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
)

func TestWriteAndTail(t *testing.T) {
	p := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.Write(api.AuditEntry{Time: time.Now(), Principal: "token:ci", Method: "POST", Path: "/v1/vms", Status: 202 + i%2}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	st, err := os.Stat(p)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("audit log mode %v (%v), want 0600", st.Mode(), err)
	}
	all, err := l.Tail(0)
	if err != nil || len(all) != 50 {
		t.Fatalf("Tail(0) = %d entries, %v; want 50", len(all), err)
	}
	last, err := l.Tail(3)
	if err != nil || len(last) != 3 || last[2] != all[49] {
		t.Fatalf("Tail(3) = %+v, %v", last, err)
	}
	// A torn line (a crash mid-write) is skipped, the rest still read.
	f, _ := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"time": "2026-`)
	f.Close()
	if all, err := l.Tail(0); err != nil || len(all) != 50 {
		t.Fatalf("after a torn line: %d, %v", len(all), err)
	}
}

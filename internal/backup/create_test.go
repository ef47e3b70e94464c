package backup

import (
	"strings"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/backup/repo"
	"github.com/godwit-project/godwit/internal/nbd"
)

func TestMark(t *testing.T) {
	const cs = 64 << 10
	chunks := make([]bool, 8)
	mark(chunks, []nbd.Extent{
		{Offset: 0, Length: cs, Flags: 0},             // not kept
		{Offset: cs, Length: cs, Flags: 1},            // chunk 1
		{Offset: 3*cs + 4096, Length: 4096, Flags: 1}, // inside chunk 3
		{Offset: 5*cs - 1, Length: 2, Flags: 1},       // straddles 4 and 5
		{Offset: 7 * cs, Length: 10 * cs, Flags: 1},   // past the end
	}, cs, func(f uint32) bool { return f&1 != 0 })
	want := []bool{false, true, false, true, true, true, false, true}
	for i := range want {
		if chunks[i] != want[i] {
			t.Fatalf("chunks = %v, want %v", chunks, want)
		}
	}
}

func TestDisksDiffer(t *testing.T) {
	old := []repo.Disk{{Name: "root", Target: "vda", Size: 64 << 20}}
	same := []api.VMDisk{{Name: "root", Target: "vda", Size: 64 * api.MiB}}
	if why := disksDiffer(old, same); why != "" {
		t.Fatalf("same disks differ: %s", why)
	}
	grown := []api.VMDisk{{Name: "root", Target: "vda", Size: 128 * api.MiB}}
	if why := disksDiffer(old, grown); !strings.Contains(why, "resized") {
		t.Fatalf("grown disk: %q", why)
	}
	more := append(same, api.VMDisk{Name: "data", Target: "vdb", Size: api.MiB})
	if why := disksDiffer(old, more); why == "" {
		t.Fatal("an added disk went unnoticed")
	}
}

// A schedule runs at once when new, a period after its last run, and once
// (not once per period) after missed runs.
func TestNextRun(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	sc := api.BackupSchedule{VM: "a", Every: "24h"}
	if n := next(sc, now); !n.Equal(now) {
		t.Fatalf("new schedule runs at %v, want now", n)
	}
	sc.LastRun = now.Add(-time.Hour)
	if n := next(sc, now); !n.Equal(now.Add(23 * time.Hour)) {
		t.Fatalf("next run %v", n)
	}
	sc.LastRun = now.Add(-72 * time.Hour)
	if n := next(sc, now); !n.Equal(now) {
		t.Fatalf("after three missed days the next run is %v, want now (once)", n)
	}
}

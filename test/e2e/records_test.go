package e2e

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
)

// A writing guest (test guest with records=1) writes numbered records one
// after the other, each durable before the next. A copy of its disk taken
// while it writes (a backup, a snapshot, a migrated disk) is
// crash-consistent only if its records are a prefix of the sequence: 1..K
// all whole, nothing after K, no torn or mixed block.
const (
	recBase = 32 << 20
	recSize = 4096
	recMax  = 4096
)

// record is what block n (from 1) holds.
func record(n int) []byte {
	return bytes.Repeat([]byte(fmt.Sprintf("%08d\n", n)), recSize/9+1)[:recSize]
}

// checkRecords returns K, the records a raw disk holds, or what breaks
// the prefix.
func checkRecords(raw []byte) (int, error) {
	if len(raw) < recBase+recMax*recSize {
		return 0, fmt.Errorf("disk of %d bytes is too small for the records", len(raw))
	}
	zero := make([]byte, recSize)
	k, ended := 0, false
	for n := 1; n <= recMax; n++ {
		b := raw[recBase+(n-1)*recSize : recBase+n*recSize]
		switch {
		case bytes.Equal(b, zero):
			ended = true
		case ended:
			return 0, fmt.Errorf("block %d holds data after the records ended at %d: not a prefix", n, k)
		case !bytes.Equal(b, record(n)):
			return 0, fmt.Errorf("block of record %d is torn or foreign: starts %q", n, b[:18])
		default:
			k = n
		}
	}
	return k, nil
}

// diskRecords reads a disk file (or one of its internal snapshots) on the
// host and returns its K, failing the test when the records are not a
// prefix.
func diskRecords(t *testing.T, path, snapshot string) int {
	t.Helper()
	raw := filepath.Join(t.TempDir(), "rec.raw")
	args := []string{"convert", "-U"}
	if snapshot != "" {
		args = append(args, "-l", "snapshot.name="+snapshot)
	}
	if out, err := exec.Command("qemu-img", append(args, "-O", "raw", path, raw)...).CombinedOutput(); err != nil {
		t.Fatalf("read %s: %v: %s", path, err, out)
	}
	b, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(raw)
	k, err := checkRecords(b)
	if err != nil {
		t.Fatalf("%s (snapshot %q) is not crash-consistent: %v", path, snapshot, err)
	}
	return k
}

var recRE = regexp.MustCompile(`tick \d+ .* rec=(\d+)`)

// recSoFar is the records the guest said it had written (the last tick).
func recSoFar(console string) int {
	m := recRE.FindAllStringSubmatch(console, -1)
	if len(m) == 0 {
		return 0
	}
	return atoi(m[len(m)-1][1])
}

// waitRecords waits until the guest's console says it wrote n records.
func waitRecords(t *testing.T, console func() string, n int) int {
	t.Helper()
	var got int
	eventually(t, 2*time.Minute, fmt.Sprintf("the guest to write %d records", n), func() bool {
		got = recSoFar(console())
		return got >= n
	})
	return got
}

func TestRecordCheck(t *testing.T) {
	raw := make([]byte, recBase+recMax*recSize)
	put := func(n int, b []byte) { copy(raw[recBase+(n-1)*recSize:], b) }
	if k, err := checkRecords(raw); k != 0 || err != nil {
		t.Fatalf("empty: %d %v", k, err)
	}
	for n := 1; n <= 7; n++ {
		put(n, record(n))
	}
	if k, err := checkRecords(raw); k != 7 || err != nil {
		t.Fatalf("7 records: %d %v", k, err)
	}
	put(9, record(9))
	if _, err := checkRecords(raw); err == nil {
		t.Fatal("a record after a gap passed")
	}
	put(9, make([]byte, recSize))
	torn := append(record(8)[:2048:2048], make([]byte, 2048)...)
	put(8, torn)
	if _, err := checkRecords(raw); err == nil {
		t.Fatal("a torn record passed")
	}
	put(8, record(3))
	if _, err := checkRecords(raw); err == nil {
		t.Fatal("an old record in the wrong place passed")
	}
}

// A backup of a guest that writes all through it restores to a
// crash-consistent disk holding at least what was written when it began;
// the incremental after it too, and no less than the full one.
func TestBackupWritingGuest(t *testing.T) {
	concurrent(t)
	d := StartDaemon(t)
	name := "e2e-bkw-" + uniq()
	spec := guestSpec(t, name, "records=1")
	// 1 GiB of random data around the records: the full backup then takes
	// seconds, and the guest writes records all through it.
	spec.Disks[0].Size = api.GiB
	d.createVM(spec, false)
	v, err := d.C.GetVM(ctxT(t, 10*time.Second), name)
	if err != nil {
		t.Fatal(err)
	}
	randomAroundRecords(t, d, v.Disks[0].Path, api.GiB)
	d.waitOp(d.C.StartVM(ctxT(t, time.Minute), name))
	console := func() string { return d.console(name) }
	start := waitRecords(t, console, 20)
	full := d.backup(name)
	during := recSoFar(console()) - start
	if during <= 0 {
		t.Fatalf("the guest wrote no record while the full backup ran (%.1fs): the test proves nothing", full.Stats.Seconds)
	}
	k1 := d.restoredRecords(full.ID, name+"-r1")
	if k1 < start {
		t.Fatalf("the full backup holds %d records; %d were written before it began", k1, start)
	}
	start2 := waitRecords(t, console, k1+20)
	inc := d.backup(name)
	if inc.Mode != "incremental" {
		t.Fatalf("second backup: %+v", inc)
	}
	k2 := d.restoredRecords(inc.ID, name+"-r2")
	if k2 < start2 || k2 < k1 {
		t.Fatalf("the incremental holds %d records; %d were written before it began, the full one holds %d", k2, start2, k1)
	}
	t.Logf("full: %d records (%d at its start, %d more written while it ran); incremental: %d (%d at its start)", k1, start, during, k2, start2)
}

// randomAroundRecords fills a stopped VM's volume with random bytes,
// leaving the records' region zero.
func randomAroundRecords(t *testing.T, d *Daemon, path string, size api.Size) {
	t.Helper()
	raw := filepath.Join(d.Dir, "fill-"+uniq()+".raw")
	defer os.Remove(raw)
	f, err := os.Create(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, int64(size)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, recMax*recSize), recBase); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("qemu-img", "convert", "-n", "-f", "raw", "-O", "qcow2", raw, path).CombinedOutput(); err != nil {
		t.Fatalf("fill %s: %v\n%s", path, err, out)
	}
}

func (d *Daemon) restoredRecords(backupID, as string) int {
	d.t.Helper()
	d.MustCLI("backup", "restore", backupID, "--as", as)
	v, err := d.C.GetVM(ctxT(d.t, 10*time.Second), as)
	if err != nil {
		d.t.Fatal(err)
	}
	return diskRecords(d.t, v.Disks[0].Path, "")
}

// Snapshots of a writing guest, internal (with memory) and external
// (disk-only): the disk as the snapshot keeps it is crash-consistent and
// holds what was written before it.
func TestSnapshotWritingGuest(t *testing.T) {
	concurrent(t)
	d := StartDaemon(t)
	name := "e2e-snw-" + uniq()
	d.createVM(guestSpec(t, name, "records=1"), true)
	console := func() string { return d.console(name) }
	v, err := d.C.GetVM(ctxT(t, 10*time.Second), name)
	if err != nil {
		t.Fatal(err)
	}
	path := v.Disks[0].Path

	start := waitRecords(t, console, 20)
	d.MustCLI("snapshot", "create", name, "s1", "--memory")
	if k := diskRecords(t, path, "s1"); k < start {
		t.Fatalf("internal snapshot s1 holds %d records; %d were written before it", k, start)
	}

	start = waitRecords(t, console, recSoFar(console())+20)
	d.MustCLI("snapshot", "create", name, "s2", "--disk-only")
	// The disk as it was is now the overlay's backing file, frozen.
	if blk, err := virsh(t, "domblklist", name); err != nil || strings.Contains(blk, path) {
		t.Fatalf("a disk-only snapshot left the VM writing to %s (%v):\n%s", path, err, blk)
	}
	k := diskRecords(t, path, "")
	if k < start {
		t.Fatalf("external snapshot s2's base holds %d records; %d were written before it", k, start)
	}
	// And the guest writes on, into the overlay.
	waitRecords(t, console, k+10)
}

// A guest that writes all through a live migration with a disk copy: its
// disk on the destination is crash-consistent and holds every record the
// guest said it wrote, before and after the move.
func TestMigrateWritingGuest(t *testing.T) {
	concurrent(t)
	b := migrationBed(t, 2, false)
	a, bb := b.Hosts[0], b.Hosts[1]
	name := "mig-w-" + uniq()
	onHost(t, a, name, "records=1")
	start := waitRecords(t, func() string { return hostConsole(t, a, name) }, 20)
	before := lastTick(hostConsole(t, a, name))
	migrate(t, a, name, bb.Name)
	console := func() string { return hostConsole(t, bb, name) }
	after := waitRecords(t, console, start+10)
	if out, err := bb.CLI("vm", "pause", name); err != nil {
		t.Fatalf("pause: %v %s", err, out)
	}
	said := recSoFar(console())
	k := diskRecords(t, diskPath(t, bb, name), "")
	if k < said || k < after {
		t.Fatalf("the disk on %s holds %d records; the guest said it wrote %d", bb.Name, k, said)
	}
	if out, err := bb.CLI("vm", "resume", name); err != nil {
		t.Fatalf("resume: %v %s", err, out)
	}
	if lastTick(console()) <= before {
		t.Fatalf("the guest's counter did not go on after the move")
	}
	t.Logf("records: %d before the move, %d on %s's disk when paused after it", start, k, bb.Name)
}

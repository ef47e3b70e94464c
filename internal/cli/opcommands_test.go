package cli

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
)

// failed is an operation that ended in an error, with a result.
func failed(id, kind, target, msg string, result any) api.Operation {
	o := done(id, kind, target, result)
	o.State, o.Error = api.OpFailed, msg
	return o
}

// TestOperationCommandOutput pins what the backup, snapshot and migration
// commands print and which calls they make, against
// testdata/opcommands.golden (go test -update rewrites it).
func TestOperationCommandOutput(t *testing.T) {
	local := time.Local
	time.Local = time.UTC
	t.Cleanup(func() { time.Local = local })
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	backup := api.Backup{ID: "web1@20260304-050607", VM: "web1", Mode: "full", Note: "no checkpoint", CreatedAt: at, Host: "h1",
		Size: 10 << 30, DataBytes: 1 << 30, Disks: []api.BackupDisk{{Name: "root", Target: "vda", Size: 10 << 30, DataBytes: 1 << 30, Chunks: 16384}}}
	backup.Stats.BytesRead, backup.Stats.BytesStored, backup.Stats.Seconds = 1<<30, 512<<20, 12.5
	incr := backup
	incr.ID, incr.Mode, incr.Parent, incr.Note = "web1@20260305-050607", "incremental", backup.ID, ""
	snap := api.Snapshot{Name: "s1", VM: "web1", Kind: "internal", Memory: true, VMState: "running", CreatedAt: at, Current: true,
		Size: 1 << 20, Children: []string{"s2"}}
	snap2 := api.Snapshot{Name: "s2", VM: "web1", Kind: "external", Parent: "s1", CreatedAt: at, Files: []string{"/a", "/b"}}
	// what show prints with its age does not depend on when the test runs
	shownBackup, shownSnap := incr, snap
	shownBackup.CreatedAt, shownSnap.CreatedAt = time.Time{}, time.Time{}
	report := api.MigrationReport{VM: "web1", From: "h1", To: "h2", Mode: "live", Policy: "auto", TotalMs: 1234, DowntimeMs: 12, Bytes: 300 << 20, SharedDisks: 1}
	answers := fakeAnswers()
	for k, v := range map[string]any{
		"POST /v1/vms/web1/backups":             running("op10", "backup.create", "vm/web1"),
		"GET /v1/backups":                       api.BackupList{Backups: []api.Backup{backup, incr}},
		"GET /v1/backups?vm=web1":               api.BackupList{Backups: []api.Backup{incr}},
		"GET /v1/backups/web1":                  shownBackup,
		"POST /v1/backups/web1/restore":         running("op11", "backup.restore", "vm/web1"),
		"POST /v1/backups/verify":               running("op12", "backup.verify", "backups"),
		"POST /v1/backups/prune":                running("op13", "backup.prune", "backups"),
		"GET /v1/backup-schedules":              api.BackupScheduleList{Schedules: []api.BackupSchedule{{VM: "web1", Every: "24h", RetentionPolicy: api.RetentionPolicy{KeepDaily: 7, KeepLast: 2}, NextRun: at}, {VM: "db", Every: "6h", NextRun: at, LastBackup: "db@1", LastError: "boom"}}},
		"POST /v1/vms/web1/snapshots":           running("op14", "snapshot.create", "vm/web1"),
		"GET /v1/vms/web1/snapshots":            api.SnapshotList{Snapshots: []api.Snapshot{snap, snap2}},
		"GET /v1/vms/web1/snapshots/s1":         shownSnap,
		"POST /v1/vms/web1/snapshots/s1/revert": running("op15", "snapshot.revert", "vm/web1"),
		"DELETE /v1/vms/web1/snapshots/s1":      running("op15", "snapshot.delete", "vm/web1"),
		"POST /v1/vms/web1/migrate":             running("op16", "vm.migrate", "vm/web1"),
		"POST /v1/host/evacuate":                running("op17", "host.evacuate", "host/h1"),
		"GET /v1/host":                          api.Host{Name: "h1"},

		"GET /v1/operations/op10/wait?timeout=30": done("op10", "backup.create", "vm/web1", backup),
		"GET /v1/operations/op11/wait?timeout=30": done("op11", "backup.restore", "vm/web1", api.RestoreResult{VM: "web1", Backup: incr.ID, Host: "h2", BytesWritten: 1 << 30}),
		"GET /v1/operations/op12/wait?timeout=30": failed("op12", "backup.verify", "backups", "1 damaged backup", api.VerifyReport{Backups: 2, ChunksChecked: 10, BytesChecked: 640 << 10,
			Damaged: []api.BackupDamage{{ID: backup.ID, VM: "web1", BadChunks: 1, Problems: []string{"chunk ab12 is missing"}}}}),
		"GET /v1/operations/op13/wait?timeout=30": done("op13", "backup.prune", "backups", api.PruneResult{Removed: 1, ChunksRemoved: 3, BytesFreed: 3 << 16,
			Decisions: []api.PruneDecision{{ID: backup.ID, VM: "web1"}, {ID: incr.ID, VM: "web1", Keep: true, Reasons: []string{"last", "daily"}}}}),
		"GET /v1/operations/op14/wait?timeout=30": done("op14", "snapshot.create", "vm/web1", snap),
		"GET /v1/operations/op15/wait?timeout=30": done("op15", "snapshot.revert", "vm/web1", nil),
		"GET /v1/operations/op16/wait?timeout=30": done("op16", "vm.migrate", "vm/web1", report),
		"GET /v1/operations/op17/wait?timeout=30": failed("op17", "host.evacuate", "host/h1", "1 VM did not move", api.EvacuationReport{Moved: []api.MigrationReport{report},
			Failed: []api.EvacuationMiss{{VM: "db", To: "h3", Reason: "no memory"}}}),
	} {
		answers[k] = v
		if id, ok := strings.CutSuffix(strings.TrimPrefix(k, "GET /v1/operations/"), "/wait?timeout=30"); ok {
			answers["GET /v1/operations/"+id] = v
		}
	}
	d := &fakeDaemon{answers: answers}
	startFakeDaemon(t, d)

	var lines [][]string
	for _, cmd := range []string{
		"backup create web1", "backup create web1 --full", "backup create web1 --no-wait", "backup list", "backup list web1",
		"backup show web1", "backup restore web1 --as copy --to h2", "backup restore web1 --no-wait", "backup verify", "backup verify --no-wait",
		"backup prune --keep-last 1", "backup prune --no-wait", "backup schedules",
		"snapshot create web1 s1 --memory", "snapshot create web1 s1 --no-wait", "snapshot list web1", "snapshot show web1 s1",
		"snapshot revert web1 s1", "snapshot revert web1 s1 --no-wait", "snapshot delete web1 s1", "snap rm web1 s1",
		"migrate web1 --to h2", "migrate web1 --to h2 --no-wait", "host evacuate", "host evacuate h1", "host evacuate h1 --no-wait",
		"vm nic list web1",
		// errors from the daemon and the arguments
		"backup create nope", "backup show nope", "backup restore nope", "backup list a b", "snapshot create nope s1",
		"snapshot show web1 nope", "snapshot revert nope s1", "migrate nope --to h2", "migrate web1", "host evacuate h9", "vm nic list nope",
		"backup schedules extra", "--host https://h9:1 backup create web1", "--host https://h9:1 backup show web1",
		"--host https://h9:1 backup verify", "--host https://h9:1 host evacuate", "--host https://h9:1 snapshot revert web1 s1",
	} {
		for _, f := range [][]string{nil, {"-q"}, {"-o", "json"}, {"-o", "yaml"}} {
			lines = append(lines, append(strings.Fields(cmd), f...))
		}
	}
	var b strings.Builder
	for _, args := range lines {
		d.requests = nil
		code, stdout, stderr := run(t, args...)
		fmt.Fprintf(&b, "=== godwit %s\nexit %d, calls %s\n--- stdout\n%s--- stderr\n%s", strings.Join(args, " "), code,
			strings.Join(d.requests, ", "), stdout, stderr)
	}
	golden(t, "opcommands.golden", b.String())
}

// An evacuation that fails before it has a report prints only its error,
// not an empty "0 moved, 0 did not".
func TestEvacuateFailureWithoutReport(t *testing.T) {
	answers := fakeAnswers()
	answers["POST /v1/host/evacuate"] = running("op17", "host.evacuate", "host/h1")
	answers["GET /v1/host"] = api.Host{Name: "h1"}
	answers["GET /v1/operations/op17/wait?timeout=30"] = failed("op17", "host.evacuate", "host/h1", "no peer is reachable", nil)
	answers["GET /v1/operations/op17"] = answers["GET /v1/operations/op17/wait?timeout=30"]
	startFakeDaemon(t, &fakeDaemon{answers: answers})
	for _, f := range [][]string{nil, {"-o", "json"}} {
		code, stdout, stderr := run(t, append([]string{"host", "evacuate"}, f...)...)
		if code != 1 || !strings.Contains(stderr, "no peer is reachable") || strings.Contains(stdout, "moved") || strings.Contains(stdout, "{") {
			t.Errorf("evacuate %v: exit %d\nstdout: %s\nstderr: %s", f, code, stdout, stderr)
		}
	}
}

// vm start, like vm create, refuses --no-wait with --wait or --wait-for
// before it calls the daemon.
func TestVMStartNoWaitWithWait(t *testing.T) {
	d := &fakeDaemon{answers: fakeAnswers()}
	startFakeDaemon(t, d)
	for _, flag := range []string{"--wait", "--wait-for=login:"} {
		d.requests = nil
		code, _, stderr := run(t, "vm", "start", "web1", "--no-wait", flag)
		if code != 2 || !strings.Contains(stderr, "--no-wait and --wait exclude each other") || len(d.requests) != 0 {
			t.Errorf("vm start --no-wait %s: exit %d, calls %v, stderr %s", flag, code, d.requests, stderr)
		}
	}
}

// A move whose VM runs there but whose definition there failed says so
// on a line of its own.
func TestMigrationLineWarning(t *testing.T) {
	r := api.MigrationReport{VM: "web1", From: "h1", To: "h2", Mode: "live", Warning: "vm web1 runs on h2, but its persistent definition could not be written there"}
	if got := migrationLine(r); !strings.HasSuffix(got, "0 copied)\nwarning: "+r.Warning) {
		t.Fatalf("line %q", got)
	}
	r.Warning = ""
	if got := migrationLine(r); strings.Contains(got, "warning") {
		t.Fatalf("line %q", got)
	}
}

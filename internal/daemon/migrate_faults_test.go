package daemon

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/domainxml"
	"github.com/godwit-project/godwit/internal/hypervisor"
	"github.com/godwit-project/godwit/internal/hypervisor/fake"
)

// The harness itself: a live move that nothing disturbs.
func TestMigrateBetweenTwoHosts(t *testing.T) {
	a, b := twoHosts(t)
	op := a.migrate(api.MigrateRequest{})
	if op.State != api.OpSucceeded {
		t.Fatalf("migration %s: %s", op.State, op.Error)
	}
	b.runs("web1", hypervisor.StateRunning)
	a.hasNothing("web1")
}

// An offline move sends the saved memory as a file, checked by the
// SHA-256 the source counts as it sends (disks go the same way when they
// are not shared): a byte changed on the way fails the move, which
// restores the VM where it was and leaves nothing on the destination.
// On a sound link the VM runs there, persistent (a restore alone would
// make it transient).
func TestMigrateOfflineChecked(t *testing.T) {
	shared := tempDir(t)
	a, b := twoHosts(t, func(c *Config) { c.Pool = Pool{Name: "shared", Path: shared, Shared: true} })
	b.link.flip("PUT", "/files/state", 1)
	files := api.MigrateRequest{Mode: api.MigrateOffline, Transfer: api.TransferFiles}
	failed(t, a.migrate(files), "state: checksum mismatch", "restored and runs on a again")
	a.runs("web1", hypervisor.StateRunning)
	b.hasNothing("web1")
	if op := a.migrate(files); op.State != api.OpSucceeded {
		t.Fatalf("offline move on a sound link: %s %s", op.State, op.Error)
	}
	// (Not b.runs: one fake per host does not share a pool's volumes.)
	if d, err := b.lv.Lookup(context.Background(), "web1"); err != nil || d.State != hypervisor.StateRunning || !d.Persistent {
		t.Fatalf("b: domain web1 after the move: %+v, %v; want it persistent and running", d, err)
	}
	if _, err := a.lv.Lookup(context.Background(), "web1"); err == nil {
		t.Fatal("a still has domain web1 after the move")
	}
}

// streamSize is how many bytes a live move of web1 streams: its memory
// and its copied disks.
func (h *host) streamSize() uint64 {
	n := uint64(64 * api.MiB)
	for _, v := range h.lv.Volumes(h.d.cfg.Pool.Name) {
		if strings.HasPrefix(v.Name, "web1-") {
			n += v.Allocation
		}
	}
	return n
}

// A fault at each phase before the VM runs on the destination: the move
// fails saying why, the VM runs on where it was, and the destination
// keeps nothing of it (no domain, volume, VM or record).
func TestMigrateFaultBeforeFinish(t *testing.T) {
	for _, c := range []struct {
		name  string
		on    string // "a" (the source) or "b"
		fault func(total uint64) fake.Fault
		words []string
	}{
		{"begin", "a", func(uint64) fake.Fault { return fake.Fault{Method: "Begin"} }, []string{"begin", "injected failure"}},
		{"prepare", "b", func(uint64) fake.Fault { return fake.Fault{Method: "Prepare"} }, []string{"prepare on b", "injected failure"}},
		{"prepare's connection", "b", func(uint64) fake.Fault { return fake.Fault{Method: "OpenSession"} }, []string{"prepare on b", "injected failure"}},
		{"perform at 0%", "a", func(uint64) fake.Fault { return fake.Fault{Method: "Perform"} }, []string{"keeps running on a", "injected failure"}},
		{"perform at 50%", "a", func(n uint64) fake.Fault { return fake.Fault{Method: "Perform", Bytes: n / 2} }, []string{"keeps running on a", "injected failure"}},
		{"perform at 99%", "a", func(n uint64) fake.Fault { return fake.Fault{Method: "Perform", Bytes: n * 99 / 100} }, []string{"keeps running on a", "injected failure"}},
		{"libvirtd crash at 50%", "a", func(n uint64) fake.Fault { return fake.Fault{Method: "Perform", Bytes: n / 2, Action: fake.Crash} }, []string{"keeps running on a", "libvirtd died"}},
		{"destination's libvirtd crash at finish", "b", func(uint64) fake.Fault { return fake.Fault{Method: "Finish", Action: fake.Crash} }, []string{"finish on b failed", "keeps running on a"}},
		{"finish", "b", func(uint64) fake.Fault { return fake.Fault{Method: "Finish"} }, []string{"finish on b failed", "keeps running on a", "injected failure"}},
	} {
		// An offline stream goes the same way, the guest paused here from
		// Perform on: a failure resumes it here.
		for _, mode := range []string{api.MigrateLive, api.MigrateOffline} {
			t.Run(c.name+"/"+mode, func(t *testing.T) {
				a, b := twoHosts(t)
				on := map[string]*host{"a": a, "b": b}[c.on]
				on.lv.Inject(c.fault(a.streamSize()))
				op := a.migrate(api.MigrateRequest{Mode: mode})
				failed(t, op, c.words...)
				a.runs("web1", hypervisor.StateRunning)
				b.hasNothing("web1")
			})
		}
	}
}

// A Confirm that fails once the VM runs on the destination: the move is
// done, and the source drops what is left of the VM.
func TestMigrateConfirmFails(t *testing.T) {
	a, b := twoHosts(t)
	a.lv.Inject(fake.Fault{Method: "Confirm"})
	op := a.migrate(api.MigrateRequest{})
	if op.State != api.OpSucceeded {
		t.Fatalf("migration %s: %s; the VM runs on b, so it moved", op.State, op.Error)
	}
	b.runs("web1", hypervisor.StateRunning)
	a.hasNothing("web1")
}

// A recovery record that cannot be written stops the move before
// anything moves: on the source before Begin, on the destination before
// it makes a volume.
func TestMigrateRecordWriteFails(t *testing.T) {
	t.Run("source", func(t *testing.T) {
		a, b := twoHosts(t)
		a.failPuts("migrations-out")
		op := a.migrate(api.MigrateRequest{})
		failed(t, op, "record", "input/output error")
		if a.called("Begin") {
			t.Error("the source began the migration without its record")
		}
		a.failPuts("") // writes work again
		a.runs("web1", hypervisor.StateRunning)
		b.hasNothing("web1")
		if b.called("CreateVolume") || b.called("Prepare") {
			t.Error("the destination prepared a move the source has no record of")
		}
	})
	t.Run("destination", func(t *testing.T) {
		a, b := twoHosts(t)
		b.failPuts("migrations-in")
		op := a.migrate(api.MigrateRequest{})
		failed(t, op, "prepare on b", "record", "input/output error")
		if b.called("CreateVolume") {
			t.Error("the destination made volumes without its record")
		}
		a.runs("web1", hypervisor.StateRunning)
		b.hasNothing("web1")
	})
}

// Lost peer messages: the request or the answer of one phase's relay.
func TestMigrateLostRelay(t *testing.T) {
	for _, c := range []struct {
		name           string
		method, suffix string
		answer         bool
		moved          bool
		words          []string
	}{
		// The destination prepared and the source does not know: it
		// must tell it to undo, not leave it to the idle timeout.
		{"prepare answer", "POST", "/v1/peer/migrations", true, false, []string{"prepare on b"}},
		// The VM runs there: the source finds out and ends its side.
		{"finish answer", "POST", "/finish", true, true, nil},
		// Finish never ran there: the source resumes the VM and tells the
		// destination to undo its side.
		{"finish request", "POST", "/finish", false, false, []string{"keeps running on a"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, b := twoHosts(t)
			b.link.lose(c.method, c.suffix, c.answer, 1)
			op := a.migrate(api.MigrateRequest{})
			if c.moved {
				if op.State != api.OpSucceeded {
					t.Fatalf("migration %s: %s; the VM runs on b", op.State, op.Error)
				}
				b.runs("web1", hypervisor.StateRunning)
				a.hasNothing("web1")
				return
			}
			failed(t, op, c.words...)
			a.runs("web1", hypervisor.StateRunning)
			b.hasNothing("web1")
		})
	}
}

// Finish's answer lost and the destination unreachable after: cancelling
// the move stops the questions at once. The VM, running there, stays
// paused here, and the record says so; once the destination answers
// again, the source's next start ends its side.
func TestMigrateCancelWhileAskingAfterLostFinish(t *testing.T) {
	a, b := twoHosts(t, func(c *Config) { c.MigrationTimeouts.AskFor = time.Minute })
	ctx := context.Background()
	b.link.lose("POST", "/finish", true, 1)
	b.link.lose("GET", "/v1/vms/web1", false, -1)
	b.link.lose("POST", "/finish", false, -1)
	op, err := a.c.MigrateVM(ctx, "web1", api.MigrateRequest{To: "b"})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "web1 runs on b", func() bool {
		d, err := b.lv.Lookup(ctx, "web1")
		return err == nil && d.State == hypervisor.StateRunning
	})
	time.Sleep(100 * time.Millisecond) // the source is asking by now
	if _, err := a.c.CancelOperation(ctx, op.ID); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	final := a.wait(op, nil)
	if waited := time.Since(start); waited > 2*time.Second {
		t.Errorf("the cancelled move took %s to end", waited)
	}
	failed(t, final, "stays paused on a", "cancelled")
	if d, _ := a.lv.Lookup(ctx, "web1"); d.State != hypervisor.StatePaused {
		t.Fatalf("web1 on a is %s; it runs on b, so it must stay paused here", d.State)
	}
	recs := a.records()
	if len(recs) != 1 || !strings.Contains(recs[0], "finish unanswered") {
		t.Fatalf("a's migration records: %v; want the move's, saying Finish went unanswered", recs)
	}
	b.link.heal()
	a.restart()
	a.undoes("web1")
	b.runs("web1", hypervisor.StateRunning)
}

// An offline move streams by default: libvirt's migration of the paused
// guest, which resumes on the destination, or stays paused there if it
// was paused here. The report says so.
func TestMigrateOfflineStream(t *testing.T) {
	for _, paused := range []bool{false, true} {
		t.Run(map[bool]string{false: "running", true: "paused"}[paused], func(t *testing.T) {
			a, b := twoHosts(t)
			want := hypervisor.StateRunning
			if paused {
				if err := a.lv.Suspend(context.Background(), "web1"); err != nil {
					t.Fatal(err)
				}
				want = hypervisor.StatePaused
			}
			op := a.migrate(api.MigrateRequest{Mode: api.MigrateOffline})
			if op.State != api.OpSucceeded {
				t.Fatalf("migration %s: %s", op.State, op.Error)
			}
			var rep api.MigrationReport
			if err := json.Unmarshal(op.Result, &rep); err != nil || rep.Transfer != api.TransferStream || rep.TransferNote != "" || rep.DowntimeMs == 0 {
				t.Fatalf("report %+v (%v)", rep, err)
			}
			b.runs("web1", want)
			a.tidies("web1") // its Confirm may still run
		})
	}
}

// A paused VM whose offline stream fails stays paused where it was.
func TestMigrateOfflineStreamFailsPaused(t *testing.T) {
	a, b := twoHosts(t)
	if err := a.lv.Suspend(context.Background(), "web1"); err != nil {
		t.Fatal(err)
	}
	a.lv.Inject(fake.Fault{Method: "Perform", Bytes: a.streamSize() / 2})
	failed(t, a.migrate(api.MigrateRequest{Mode: api.MigrateOffline}), "injected failure")
	a.runs("web1", hypervisor.StatePaused)
	b.hasNothing("web1")
}

// A transfer that is not stream or files is a 400 naming the field, and
// --transfer on a live move too; nothing starts.
func TestMigrateTransferChecked(t *testing.T) {
	a, b := twoHosts(t)
	for _, req := range []api.MigrateRequest{{To: "b", Mode: api.MigrateOffline, Transfer: "carrier-pigeon"}, {To: "b", Transfer: api.TransferFiles}} {
		_, err := a.c.MigrateVM(context.Background(), "web1", req)
		if api.Status(err) != 400 || !strings.Contains(err.Error(), "transfer") {
			t.Errorf("%+v: %v, want a 400 about transfer", req, err)
		}
	}
	a.runs("web1", hypervisor.StateRunning)
	b.hasNothing("web1")
}

// definedHere checks that h's domain name is persistent and that its
// persistent definition is h's own (owned as the running domain is), not
// the source's.
func (h *host) definedHere(name string) {
	h.t.Helper()
	ctx := context.Background()
	live, _ := h.lv.XML(ctx, name, false)
	inactive, err := h.lv.XML(ctx, name, true)
	if d, lerr := h.lv.Lookup(ctx, name); lerr != nil || !d.Persistent || err != nil ||
		domainxml.OwnerOf(inactive) == "" || domainxml.OwnerOf(inactive) != domainxml.OwnerOf(live) {
		h.t.Fatalf("%s: domain %s %+v (%v): persistent definition owned by %q, the running one by %q (%v)", h.name, name, d, lerr, domainxml.OwnerOf(inactive), domainxml.OwnerOf(live), err)
	}
}

// A live move leaves the domain transient after libvirt's Finish (no
// VIR_MIGRATE_PERSIST_DEST: that write would sit inside the downtime); the
// destination defines it right after. When that define fails, the VM runs
// there only, the report says it is transient, and the destination's next
// start defines it.
func TestMigrateDefineAfterFinishFails(t *testing.T) {
	ctx := context.Background()
	a, b := twoHosts(t)
	b.lv.Inject(fake.Fault{Method: "Define", Name: "web1", Times: -1})
	op := a.migrate(api.MigrateRequest{})
	var rep api.MigrationReport
	if op.State != api.OpSucceeded || json.Unmarshal(op.Result, &rep) != nil || !strings.Contains(rep.Warning, "persistent definition could not be written") {
		t.Fatalf("migration %s (%s): report %+v", op.State, op.Error, rep)
	}
	t.Logf("warning: %s", rep.Warning)
	a.hasNothing("web1")
	if d, err := b.lv.Lookup(ctx, "web1"); err != nil || d.Persistent || d.State != hypervisor.StateRunning {
		t.Fatalf("b: domain web1 %+v, %v; want it running, transient", d, err)
	}
	b.lv.ClearFaults()
	b.kill()
	b.start()
	b.runs("web1", hypervisor.StateRunning)
	b.definedHere("web1")
	if r := b.records(); r != nil {
		t.Fatalf("b keeps records: %v", r)
	}
}

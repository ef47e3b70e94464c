package fake

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/godwit-project/godwit/internal/hypervisor"
)

const migFlags = hypervisor.MigrateLive | hypervisor.MigratePersistDest | hypervisor.MigrateUndefineSource

// running defines and starts a domain of 64 MiB.
func running(t *testing.T, f *Fake, name string) {
	t.Helper()
	ctx := context.Background()
	doc := "<domain type='qemu'><name>" + name + "</name><memory unit='KiB'>65536</memory></domain>"
	if _, err := f.Define(ctx, doc); err != nil {
		t.Fatal(err)
	}
	if err := f.Start(ctx, name); err != nil {
		t.Fatal(err)
	}
}

// phases runs Begin and Prepare and returns the sessions, Perform's
// parameters and cookie.
func phases(t *testing.T, src, dst *Fake, name string) (hypervisor.Session, hypervisor.Session, hypervisor.MigrateParams, []byte) {
	t.Helper()
	ctx := context.Background()
	ss, err := src.OpenSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := dst.OpenSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ck, xml, err := ss.Begin(ctx, name, hypervisor.MigrateParams{}, migFlags)
	if err != nil {
		t.Fatal(err)
	}
	ck, uri, err := ds.Prepare(ctx, hypervisor.MigrateParams{URI: "tcp://10.0.0.2", DestXML: xml}, ck, migFlags)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(uri, "tcp://10.0.0.2:") {
		t.Fatalf("prepare answered URI %q", uri)
	}
	return ss, ds, hypervisor.MigrateParams{URI: uri}, ck
}

func TestMigrationPhases(t *testing.T) {
	ctx := context.Background()
	src, dst := New(), New()
	running(t, src, "a")
	ss, ds, p, ck := phases(t, src, dst, "a")
	if s := state(t, dst, "a"); s != hypervisor.StatePaused {
		t.Fatalf("prepared domain is %s, want paused", s)
	}
	ck, err := ss.Perform(ctx, "a", p, ck, migFlags)
	if err != nil {
		t.Fatal(err)
	}
	if s := state(t, src, "a"); s != hypervisor.StatePaused {
		t.Fatalf("source after Perform is %s, want paused", s)
	}
	if st, err := src.JobStats(ctx, "a", true); err != nil || !st.Completed || st.DataProcessed != 64<<20 {
		t.Fatalf("completed stats %+v, %v", st, err)
	}
	if _, err := ds.Finish(ctx, hypervisor.MigrateParams{DestName: "a"}, nil, migFlags, false); err == nil {
		t.Fatal("Finish without Perform's cookie succeeded")
	}
	// That Finish destroyed the incoming domain, as libvirt does.
	if n := dst.DomainNames(); len(n) != 0 {
		t.Fatalf("domains after a failed Finish: %v", n)
	}

	// Again, the whole way.
	if err := ss.Confirm(ctx, "a", hypervisor.MigrateParams{}, nil, migFlags, true); err != nil {
		t.Fatal(err)
	}
	if s := state(t, src, "a"); s != hypervisor.StateRunning {
		t.Fatalf("source after a cancelled Confirm is %s", s)
	}
	ss, ds, p, ck = phases(t, src, dst, "a")
	if ck, err = ss.Perform(ctx, "a", p, ck, migFlags); err != nil {
		t.Fatal(err)
	}
	if ck, err = ds.Finish(ctx, hypervisor.MigrateParams{DestName: "a"}, ck, migFlags, false); err != nil {
		t.Fatal(err)
	}
	if err := ss.Confirm(ctx, "a", hypervisor.MigrateParams{}, ck, migFlags, false); err != nil {
		t.Fatal(err)
	}
	if d, err := dst.Lookup(ctx, "a"); err != nil || d.State != hypervisor.StateRunning || !d.Persistent {
		t.Fatalf("destination: %+v, %v", d, err)
	}
	if n := src.DomainNames(); len(n) != 0 {
		t.Fatalf("source still has %v", n)
	}
}

// A stream fault strikes at its byte count: Fail ends the job (the
// source runs on), Hang stalls it until the job is aborted.
func TestPerformFaults(t *testing.T) {
	ctx := context.Background()
	src, dst := New(), New()
	running(t, src, "a")
	src.Inject(Fault{Method: "Perform", Bytes: 32 << 20})
	ss, ds, p, ck := phases(t, src, dst, "a")
	if _, err := ss.Perform(ctx, "a", p, ck, migFlags); !errors.Is(err, ErrInjected) {
		t.Fatalf("Perform with a fault at 50%%: %v", err)
	}
	if s := state(t, src, "a"); s != hypervisor.StateRunning {
		t.Fatalf("source after a failed Perform is %s", s)
	}
	if _, err := ds.Finish(ctx, hypervisor.MigrateParams{DestName: "a"}, nil, migFlags, true); err != nil {
		t.Fatalf("cancelled Finish: %v", err)
	}
	ss.Close()
	ds.Close()

	src.Inject(Fault{Method: "Perform", Bytes: 16 << 20, Action: Hang})
	ss, ds, p, ck = phases(t, src, dst, "a")
	done := make(chan error, 1)
	go func() { _, err := ss.Perform(ctx, "a", p, ck, migFlags); done <- err }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, _ := src.JobStats(ctx, "a", false)
		if st.DataProcessed == 16<<20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stream did not stall at 16 MiB: %+v", st)
		}
		time.Sleep(time.Millisecond)
	}
	if err := src.AbortJob(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil || !strings.Contains(err.Error(), "canceled by client") {
		t.Fatalf("aborted Perform: %v", err)
	}
	// The destination keeps its incoming domain until told or its
	// connection closes.
	if s := state(t, dst, "a"); s != hypervisor.StatePaused {
		t.Fatalf("destination after the abort: %s", s)
	}
	ds.Close()
	if n := dst.DomainNames(); len(n) != 0 {
		t.Fatalf("destination after its session closed: %v", n)
	}
}

// A killed process's calls never return until Release; its sessions'
// close callbacks run at once.
func TestKill(t *testing.T) {
	ctx := context.Background()
	src, dst := New(), New()
	running(t, src, "a")
	_, ds, _, _ := phases(t, src, dst, "a")
	other := dst.Connect()
	dst.Kill()
	if n := other.DomainNames(); len(n) != 0 {
		t.Fatalf("incoming domain of a killed process: %v", n)
	}
	if ds.Alive() {
		t.Fatal("a killed process's session is alive")
	}
	done := make(chan error, 1)
	go func() { _, err := dst.List(ctx); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("a killed connection answered: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	dst.Release()
	if err := <-done; !errors.Is(err, hypervisor.ErrUnavailable) {
		t.Fatalf("released call: %v", err)
	}
	if _, err := other.List(ctx); err != nil {
		t.Fatalf("another connection: %v", err)
	}
}

// Hang blocks until ctx ends; Crash restarts libvirtd, breaking sessions.
func TestHangAndCrash(t *testing.T) {
	f := New()
	running(t, f, "a")
	f.Inject(Fault{Method: "Lookup", Action: Hang})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := f.Lookup(ctx, "a"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hung Lookup: %v", err)
	}
	s, err := f.OpenSession(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	f.Inject(Fault{Method: "Ping", Action: Crash})
	if err := f.Ping(context.Background()); !errors.Is(err, hypervisor.ErrUnavailable) {
		t.Fatalf("Ping at a crash: %v", err)
	}
	if s.Alive() {
		t.Fatal("a session outlived libvirtd's crash")
	}
	if err := f.Ping(context.Background()); err != nil {
		t.Fatalf("libvirtd did not come back: %v", err)
	}
}

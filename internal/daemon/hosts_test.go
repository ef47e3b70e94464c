package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
	"github.com/godwit-project/godwit/internal/hypervisor"
	"github.com/godwit-project/godwit/internal/hypervisor/fake"
	"github.com/godwit-project/godwit/internal/migrate"
	"github.com/godwit-project/godwit/internal/store"
)

// A two-host test runs two daemons in this process, each with its own
// state dir, bbolt store and fake libvirtd, talking to each other over
// their TLS peer listeners as two hosts would. A host can lose chosen
// peer messages (link), fail writes to its store, and be killed (its
// process's connection to libvirtd frozen, its listeners and store
// closed) and started again on the same state.

// host is one daemon of a two-host test.
type host struct {
	t    *testing.T
	name string
	cfg  Config
	url  string
	// lv is the test's own connection to the host's libvirtd: for faults
	// and assertions; it outlives the daemons.
	lv *fake.Fake
	// f is the running daemon's connection.
	f    *fake.Fake
	d    *Daemon
	c    *client.Client
	link *link
	srv  *http.Server
	// putFault, when set, fails the store's writes it returns an error for.
	mu       sync.Mutex
	putFault func(bucket string) error
	cancel   context.CancelFunc
	done     chan error
	// answerOnly: start waits for the daemon to answer, not for its
	// host to be up (a cluster host without its quorum is not).
	answerOnly bool
}

// migrationTimeouts keep the tests fast: a Finish unanswered for two
// seconds is asked about. A destination gives up on a source silent for
// two seconds (idleTimeout): long enough that a test can tell a
// destination told to undo a move from one that undid it by itself.
var migrationTimeouts = migrate.Timeouts{Finish: 2 * time.Second, Cancel: time.Second, Ask: 200 * time.Millisecond,
	AskEvery: 50 * time.Millisecond, AskFor: time.Second, Keepalive: 100 * time.Millisecond}

const idleTimeout = 2 * time.Second

// twoHosts starts hosts a and b, each the other's peer, and a running
// VM web1 on a. edit, when given, changes their configs first.
func twoHosts(t *testing.T, edit ...func(*Config)) (a, b *host) {
	t.Helper()
	dir := tempDir(t)
	a, b = newHost(t, dir, "a", edit...), newHost(t, dir, "b", edit...)
	ctx := context.Background()
	tok, err := b.c.CreateJoinToken(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.c.AddPeer(ctx, api.PeerAdd{Name: "b", URL: b.url, Token: tok.Token}); err != nil {
		t.Fatal(err)
	}
	kernel := filepath.Join(dir, "vmlinuz")
	if err := os.WriteFile(kernel, []byte("kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	a.wait(a.c.CreateVM(ctx, api.VMSpec{Name: "web1", CPUs: 1, Memory: 64 * api.MiB, Boot: &api.Boot{Kernel: kernel},
		Disks: []api.Disk{{Name: "root", Size: api.GiB}, {Name: "data", Size: api.GiB}}}, client.CreateOptions{Start: true}))
	return a, b
}

func newHost(t *testing.T, dir, name string, edit ...func(*Config)) *host {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	h := &host{t: t, name: name, url: "https://" + addr, lv: fake.New(), cfg: Config{
		Name: name, StateDir: filepath.Join(dir, name), Socket: filepath.Join(dir, name+".sock"), Accel: "tcg",
		Listen: addr, Advertise: "https://" + addr,
		MigrationIdleTimeout: idleTimeout, MigrationTimeouts: migrationTimeouts,
	}}
	for _, e := range edit {
		e(&h.cfg)
	}
	h.start()
	return h
}

// start runs a daemon on the host's state, with a new connection to its
// libvirtd.
func (h *host) start() {
	t := h.t
	t.Helper()
	h.f, h.link = h.lv.Connect(), &link{}
	hooks := func(d *Daemon) {
		d.hooks.handler = h.link.wrap
		d.hooks.store = func(s store.Store) store.Store { return &faultyStore{Store: s, h: h} }
		d.hooks.serving = func(s *http.Server) {
			h.mu.Lock()
			h.srv = s
			h.mu.Unlock()
		}
	}
	d, err := New(h.cfg, testLog(h.name), WithHypervisor(h.f), hooks)
	if err != nil {
		t.Fatalf("start %s: %v", h.name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx) }()
	h.d, h.cancel, h.done = d, cancel, done
	if h.c, err = client.New(client.Options{Socket: h.cfg.Socket}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		var err error
		if h.answerOnly {
			_, err = h.c.Host(ctx)
		} else {
			_, err = h.c.ListVMs(ctx)
		}
		if err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("%s does not answer: %v", h.name, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	stopped := false
	t.Cleanup(func() {
		if stopped || h.d != d {
			return
		}
		stopped = true
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Errorf("%s did not stop within 20s", h.name)
		}
	})
}

// kill ends the host's daemon as kill -9 would: libvirtd sees its
// connection close (and never hears from it again), its peers lose every
// connection to it, and its store is closed for the next daemon. Its
// goroutines stay frozen in their next libvirt call until the test ends.
func (h *host) kill() {
	h.link.cut()
	h.f.Kill()
	h.mu.Lock()
	h.srv.Close() // its listeners and every connection
	h.mu.Unlock()
	h.d.store.Close()
	if n := h.d.clusterNode(); n != nil {
		n.Close() // its store member and its lease's keepalive
	}
	f, cancel, done := h.f, h.cancel, h.done
	h.t.Cleanup(func() {
		f.Release()
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			h.t.Errorf("the killed daemon of %s did not end within 20s", h.name)
		}
	})
	h.d = nil
}

// restart kills the host's daemon and starts another on its state.
func (h *host) restart() {
	h.kill()
	h.start()
}

// failPuts makes the store's writes to bucket fail (nil: none fail).
func (h *host) failPuts(bucket string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.putFault = func(b string) error {
		if b == bucket {
			return fmt.Errorf("write %s: input/output error (injected)", b)
		}
		return nil
	}
}

// faultyStore is a host's store, failing the writes its host says.
type faultyStore struct {
	store.Store
	h *host
}

func (s *faultyStore) Put(ctx context.Context, bucket, key string, v []byte) error {
	s.h.mu.Lock()
	fault := s.h.putFault
	s.h.mu.Unlock()
	if fault != nil {
		if err := fault(bucket); err != nil {
			return err
		}
	}
	return s.Store.Put(ctx, bucket, key, v)
}

// link is what a host serves its peers through: it can lose a request
// before the daemon sees it, or the answer after the daemon served it, as
// a link that drops would. Requests over the unix socket (the test's own)
// are never lost.
type link struct {
	mu    sync.Mutex
	rules []*loss
	dead  bool
	// flips: requests whose body arrives with one byte changed.
	flips []*loss
}

// flip changes a byte in the body of the next times requests of method to
// a path ending in suffix, as a faulty link or disk would.
func (l *link) flip(method, suffix string, times int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flips = append(l.flips, &loss{method: method, suffix: suffix, times: times})
}

// flipped says whether r's body is to be changed.
func (l *link) flipped(r *http.Request) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, x := range l.flips {
		if x.times != 0 && r.Method == x.method && strings.HasSuffix(r.URL.Path, x.suffix) {
			x.times--
			return true
		}
	}
	return false
}

// flipReader changes the 100th byte of what it reads (or the last of a
// shorter body).
type flipReader struct {
	io.ReadCloser
	n int
}

func (f *flipReader) Read(p []byte) (int, error) {
	n, err := f.ReadCloser.Read(p)
	for i := 0; i < n; i++ {
		if f.n == 99 || (err == io.EOF && i == n-1 && f.n < 99) {
			p[i] ^= 0xff
			f.n = 1 << 30
			break
		}
		f.n++
	}
	return n, err
}

type loss struct {
	method, suffix string
	answer         bool // lose the answer (the request is served), else the request
	times          int  // how many more; negative: all
}

// lose loses the next times requests (or, with answer, their answers) of
// method to a path ending in suffix; times < 0 loses all.
func (l *link) lose(method, suffix string, answer bool, times int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rules = append(l.rules, &loss{method, suffix, answer, times})
}

// heal loses nothing from now on.
func (l *link) heal() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rules = nil
}

// cut drops every request from now on, on every connection.
func (l *link) cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dead = true
}

// take says whether r, or its answer, is lost.
func (l *link) take(r *http.Request) (lost, answer bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dead {
		return true, false
	}
	if r.TLS == nil {
		return false, false
	}
	for _, x := range l.rules {
		if x.times != 0 && r.Method == x.method && strings.HasSuffix(r.URL.Path, x.suffix) {
			if x.times > 0 {
				x.times--
			}
			return true, x.answer
		}
	}
	return false, false
}

func (l *link) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lost, answer := l.take(r)
		if lost && answer {
			next.ServeHTTP(httptest.NewRecorder(), r)
		}
		if lost {
			panic(http.ErrAbortHandler) // the connection drops, no answer
		}
		if l.flipped(r) {
			r.Body = &flipReader{ReadCloser: r.Body}
		}
		next.ServeHTTP(w, r)
	})
}

// testLog discards the daemons' logs unless GODWIT_TEST_LOG is set.
func testLog(name string) *slog.Logger {
	if os.Getenv("GODWIT_TEST_LOG") == "" {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("host", name)
}

// wait waits for an operation to end and returns it as it ended.
func (h *host) wait(op api.Operation, err error) api.Operation {
	h.t.Helper()
	if err != nil {
		h.t.Fatalf("%s: %v", h.name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	final, err := h.c.WaitOperation(ctx, op.ID, nil)
	if final.ID == "" {
		h.t.Fatalf("%s: wait for operation %s: %v", h.name, op.ID, err)
	}
	return final
}

// migrate moves web1 from h to b (live unless req says otherwise) and
// returns the operation as it ended.
func (h *host) migrate(req api.MigrateRequest) api.Operation {
	h.t.Helper()
	if req.To == "" {
		req.To = "b"
	}
	return h.wait(h.c.MigrateVM(context.Background(), "web1", req))
}

// failed checks that op failed and says words.
func failed(t *testing.T, op api.Operation, words ...string) {
	t.Helper()
	if op.State != api.OpFailed {
		t.Fatalf("operation %s %s (%q), want failed", op.Kind, op.State, op.Error)
	}
	for _, w := range words {
		if !strings.Contains(op.Error, w) {
			t.Errorf("the operation's error %q does not say %q", op.Error, w)
		}
	}
}

// runs checks that the VM is godwit's on h and its domain is in state,
// with no migration record left.
func (h *host) runs(name string, state hypervisor.State) {
	h.t.Helper()
	ctx := context.Background()
	d, err := h.lv.Lookup(ctx, name)
	if err != nil || d.State != state || !d.Persistent {
		h.t.Fatalf("%s: domain %s: %+v, %v; want it persistent and %s", h.name, name, d, err, state)
	}
	v, err := h.c.GetVM(ctx, name)
	if err != nil || !v.Managed {
		h.t.Fatalf("%s: vm %s: %+v, %v; want it godwit's", h.name, name, v, err)
	}
	for _, d := range v.Disks {
		if _, err := h.lv.VolumeInfo(ctx, d.Pool, d.Volume); err != nil {
			h.t.Errorf("%s: disk %s of vm %s: %v", h.name, d.Name, name, err)
		}
	}
	if recs := h.records(); len(recs) > 0 {
		h.t.Errorf("%s: migration records left: %v", h.name, recs)
	}
}

// records lists the host's migration records, with their phases.
func (h *host) records() []string {
	var out []string
	for _, b := range []string{"migrations-out", "migrations-in"} {
		kvs, err := h.d.store.List(context.Background(), b)
		if err != nil {
			h.t.Fatal(err)
		}
		for _, kv := range kvs {
			var r struct{ Phase string }
			_ = json.Unmarshal(kv.Value, &r)
			out = append(out, b+"/"+kv.Key+" (phase "+r.Phase+")")
		}
	}
	return out
}

// left says what h still has of a VM: its domain, its volumes, godwit's
// record of it, migration records ("" when nothing).
func (h *host) left(name string) string {
	var out []string
	if slices.Contains(h.lv.DomainNames(), name) {
		d, _ := h.lv.Lookup(context.Background(), name)
		out = append(out, fmt.Sprintf("domain %s (%s)", name, d.State))
	}
	for _, v := range h.lv.Volumes(h.d.cfg.Pool.Name) {
		if strings.HasPrefix(v.Name, name+"-") {
			out = append(out, "volume "+v.Name)
		}
	}
	if _, err := h.c.GetVM(context.Background(), name); api.Status(err) != http.StatusNotFound {
		out = append(out, fmt.Sprintf("vm %s (%v)", name, err))
	}
	out = append(out, h.records()...)
	return strings.Join(out, "; ")
}

// hasNothing checks that h has nothing left of the VM now: the source
// told it to undo its side, or it undid it itself, before the move ended.
func (h *host) hasNothing(name string) {
	h.t.Helper()
	if left := h.left(name); left != "" {
		h.t.Fatalf("%s still has: %s", h.name, left)
	}
}

// undoes checks that h has, within its idle timeout and a bit, nothing
// left of the VM: what a destination does by itself with a move whose
// source went silent, and a daemon at its start with a move a kill cut.
func (h *host) undoes(name string) {
	h.t.Helper()
	deadline := time.Now().Add(h.cfg.MigrationIdleTimeout + 3*time.Second)
	for {
		left := h.left(name)
		if left == "" {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%s still has, after its idle timeout: %s", h.name, left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// eventually waits up to 5s for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
	}
}

// called reports whether the host's libvirtd got a call of method.
func (h *host) called(method string) bool {
	return slices.ContainsFunc(h.lv.Calls(), func(c string) bool { return c == method || strings.HasPrefix(c, method+" ") })
}

// Package ops runs long jobs as operations: each has an id, a kind, a
// target, a state, progress, an error and times, can be waited on and
// cancelled, and is persisted in the store so it outlives the process that
// ran it. An operation still running when the daemon died is marked failed
// at the next start (Recover), never left 'running' forever.
//
// ops knows nothing about VMs: callers pass a Func and a target string.
package ops

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/store"
)

const bucket = "operations"

// Keep finished operations this long, and at most this many.
const (
	keepFor  = 7 * 24 * time.Hour
	keepMost = 1000
)

// persistEvery bounds how often progress alone is written to the store.
const persistEvery = time.Second

// Func is the body of an operation. It should honour ctx (cancel) and may
// report progress through op.
type Func func(ctx context.Context, op *Op) error

// Manager starts, tracks and persists operations.
type Manager struct {
	store store.Store
	log   *slog.Logger

	mu   sync.Mutex
	live map[string]*Op
	wg   sync.WaitGroup
	// onChange see every state or progress change (events, metrics).
	onChange []func(api.Operation)
	started  int
	// suffix ends every new id ("@HOST" in a cluster): the id then says
	// which host runs the operation.
	suffix string
}

// NewManager returns a manager persisting into s.
func NewManager(s store.Store, log *slog.Logger) *Manager {
	return &Manager{store: s, log: log, live: map[string]*Op{}}
}

// OnChange registers f to see every change of every operation; each
// listener registered sees them all, in order of registration. Call it
// before starting operations. Listeners must not block.
func (m *Manager) OnChange(f func(api.Operation)) { m.onChange = append(m.onChange, f) }

// SetHost makes the ids of new operations end in "@host", so that any
// host of a cluster can tell which host runs one (HostOf).
func (m *Manager) SetHost(host string) {
	m.mu.Lock()
	m.suffix = "@" + host
	m.mu.Unlock()
}

// HostOf is the host an operation id names ("" for an id of a single
// host, which names none).
func HostOf(id string) string {
	_, host, _ := strings.Cut(id, "@")
	return host
}

// Op is a running operation as its Func sees it.
type Op struct {
	m      *Manager
	cancel context.CancelFunc
	done   chan struct{}

	mu          sync.Mutex
	op          api.Operation
	lastPersist time.Time
	cancelled   bool
	stopping    bool // cut off by Shutdown
}

// interrupted is the error of an operation the daemon's stop cut off,
// whether it stopped cleanly (Shutdown) or died (Recover).
const interrupted = "interrupted: the daemon stopped while this operation was running"

// ID returns the operation's id.
func (o *Op) ID() string { return o.op.ID }

// Progress reports how far the operation got. total 0 means unknown.
func (o *Op) Progress(message string, current, total int64, unit string) {
	o.mu.Lock()
	o.op.Progress = api.Progress{Message: message, Current: current, Total: total, Unit: unit}
	o.op.UpdatedAt = time.Now().UTC()
	persist := time.Since(o.lastPersist) >= persistEvery
	snap := o.op
	o.mu.Unlock()
	if persist {
		o.m.persist(snap)
		o.mu.Lock()
		o.lastPersist = time.Now()
		o.mu.Unlock()
	}
	o.m.changed(snap)
}

// SetResult attaches a kind-specific result, reported once the op ends.
func (o *Op) SetResult(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		o.m.log.Error("operation result not encodable", "op", o.op.ID, "err", err)
		return
	}
	o.mu.Lock()
	o.op.Result = b
	o.mu.Unlock()
}

func (o *Op) snapshot() api.Operation {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.op
}

// Start runs fn in the background as a new operation and returns it as it
// is now (pending or running).
func (m *Manager) Start(kind, target string, fn Func) api.Operation {
	ctx, cancel := context.WithCancel(context.Background())
	now := time.Now().UTC()
	m.mu.Lock()
	id := newID(now) + m.suffix
	m.mu.Unlock()
	o := &Op{
		m:      m,
		cancel: cancel,
		done:   make(chan struct{}),
		op: api.Operation{
			ID: id, Kind: kind, Target: target, State: api.OpRunning,
			CreatedAt: now, UpdatedAt: now,
		},
	}
	m.mu.Lock()
	m.live[o.op.ID] = o
	m.started++
	prune := m.started%100 == 1
	m.mu.Unlock()
	m.persist(o.op)
	m.changed(o.op)
	if prune {
		go m.prune(context.Background())
	}

	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer cancel()
		err := runSafely(ctx, o, fn)
		m.finish(o, err)
	}()
	return o.snapshot()
}

func runSafely(ctx context.Context, o *Op, fn Func) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error: %v", r)
		}
	}()
	return fn(ctx, o)
}

func (m *Manager) finish(o *Op, err error) {
	o.mu.Lock()
	now := time.Now().UTC()
	o.op.UpdatedAt, o.op.FinishedAt = now, now
	switch {
	case err == nil:
		o.op.State = api.OpSucceeded
	case o.cancelled && errors.Is(err, context.Canceled):
		o.op.State = api.OpCancelled
		o.op.Error = "cancelled"
	case o.stopping && errors.Is(err, context.Canceled):
		o.op.State = api.OpFailed
		o.op.Error = interrupted
	default:
		o.op.State = api.OpFailed
		o.op.Error = err.Error()
		o.op.ErrorCode = api.Status(err)
	}
	snap := o.op
	o.mu.Unlock()

	m.persist(snap)
	m.mu.Lock()
	delete(m.live, snap.ID)
	m.mu.Unlock()
	close(o.done)
	m.changed(snap)
	if snap.State == api.OpFailed {
		m.log.Warn("operation failed", "op", snap.ID, "kind", snap.Kind, "target", snap.Target, "err", snap.Error)
	} else {
		m.log.Info("operation ended", "op", snap.ID, "kind", snap.Kind, "target", snap.Target, "state", snap.State)
	}
}

func (m *Manager) persist(op api.Operation) {
	if err := store.PutJSON(context.Background(), m.store, bucket, op.ID, op); err != nil {
		m.log.Error("persist operation", "op", op.ID, "err", err)
	}
}

func (m *Manager) changed(op api.Operation) {
	for _, f := range m.onChange {
		f(op)
	}
}

// Get returns an operation, live or finished.
func (m *Manager) Get(ctx context.Context, id string) (api.Operation, error) {
	m.mu.Lock()
	o := m.live[id]
	m.mu.Unlock()
	if o != nil {
		return o.snapshot(), nil
	}
	op, err := store.GetJSON[api.Operation](ctx, m.store, bucket, id)
	if errors.Is(err, store.ErrNotFound) {
		return op, api.NotFound("operation %q not found", id)
	}
	return op, err
}

// Filter narrows List.
type Filter struct {
	Target string // exact target, e.g. vm/web1
	Active bool   // only pending or running
}

// List returns operations, newest first.
func (m *Manager) List(ctx context.Context, f Filter) ([]api.Operation, error) {
	all, err := store.ListJSON[api.Operation](ctx, m.store, bucket)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	for i := range all {
		if o := m.live[all[i].ID]; o != nil {
			all[i] = o.snapshot()
		}
	}
	m.mu.Unlock()
	out := all[:0]
	for _, op := range all {
		if f.Target != "" && op.Target != f.Target {
			continue
		}
		if f.Active && op.State.Final() {
			continue
		}
		out = append(out, op)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ID > out[j].ID })
	return out, nil
}

// Wait blocks until the operation ends or ctx is done, and returns it as it
// is then (the caller checks State).
func (m *Manager) Wait(ctx context.Context, id string) (api.Operation, error) {
	m.mu.Lock()
	o := m.live[id]
	m.mu.Unlock()
	if o == nil {
		return m.Get(ctx, id)
	}
	select {
	case <-o.done:
	case <-ctx.Done():
	}
	return o.snapshot(), nil
}

// Cancel asks a running operation to stop. Its Func sees ctx cancelled and
// decides how to unwind; Cancel does not wait for that.
func (m *Manager) Cancel(ctx context.Context, id string) (api.Operation, error) {
	m.mu.Lock()
	o := m.live[id]
	m.mu.Unlock()
	if o == nil {
		op, err := m.Get(ctx, id)
		if err != nil {
			return op, err
		}
		return op, api.Conflict("operation %s already ended (%s)", id, op.State)
	}
	o.mu.Lock()
	o.cancelled = true
	o.mu.Unlock()
	o.cancel()
	return o.snapshot(), nil
}

// Recover marks operations left pending or running by an earlier process as
// failed: that process is gone, so they will never finish. Call it once at
// start, before starting new operations (or, when the store did not answer
// then, once it does: it leaves the operations this process runs alone).
func (m *Manager) Recover(ctx context.Context) (int, error) {
	all, err := store.ListJSON[api.Operation](ctx, m.store, bucket)
	if err != nil {
		return 0, err
	}
	n := 0
	now := time.Now().UTC()
	for _, op := range all {
		m.mu.Lock()
		live := m.live[op.ID] != nil
		m.mu.Unlock()
		if op.State.Final() || live {
			// A live one was started by this process: a Recover put
			// off until the store answered must leave it be.
			continue
		}
		op.State = api.OpFailed
		op.Error = interrupted
		op.UpdatedAt, op.FinishedAt = now, now
		if err := store.PutJSON(ctx, m.store, bucket, op.ID, op); err != nil {
			return n, err
		}
		n++
	}
	m.prune(ctx)
	return n, nil
}

// Shutdown cancels every running operation and waits for them to end, or
// for ctx. Operations that end cancelled fail as interrupted; those still
// running when ctx ends are recovered at the next start.
func (m *Manager) Shutdown(ctx context.Context) {
	m.mu.Lock()
	for _, o := range m.live {
		o.mu.Lock()
		o.stopping = true
		o.mu.Unlock()
		o.cancel()
	}
	m.mu.Unlock()
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// prune deletes finished operations older than keepFor, and the oldest
// beyond keepMost.
func (m *Manager) prune(ctx context.Context) {
	all, err := store.ListJSON[api.Operation](ctx, m.store, bucket)
	if err != nil {
		m.log.Error("prune operations", "err", err)
		return
	}
	finished := 0
	for i := len(all) - 1; i >= 0; i-- { // newest first (ids sort by time)
		op := all[i]
		if !op.State.Final() {
			continue
		}
		finished++
		if finished > keepMost || time.Since(op.FinishedAt) > keepFor {
			if err := m.store.Delete(ctx, bucket, op.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
				m.log.Error("prune operation", "op", op.ID, "err", err)
			}
		}
	}
}

// newID returns an id that sorts by creation time: milliseconds in hex, a
// dash, and random hex to keep ids unique within a millisecond.
func newID(t time.Time) string {
	var r [3]byte
	_, _ = rand.Read(r[:])
	return strconv.FormatInt(t.UnixMilli(), 16) + "-" + hex.EncodeToString(r[:])
}

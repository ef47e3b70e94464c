package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/audit"
	"github.com/godwit-project/godwit/internal/auth"
	"github.com/godwit-project/godwit/internal/buildinfo"
	"github.com/godwit-project/godwit/internal/events"
	"github.com/godwit-project/godwit/internal/health"
	"github.com/godwit-project/godwit/internal/metrics"
	"github.com/godwit-project/godwit/internal/ops"
)

// monitor holds what watches and guards the daemon: credentials, the
// audit log, metrics, events and health checks.
type monitor struct {
	tokens  *auth.Tokens
	audit   *audit.Log
	metrics *metrics.Metrics
	history *metrics.History
	health  *health.Checker
	bus     *events.Bus
	stop    context.CancelFunc
	wg      sync.WaitGroup
}

func (d *Daemon) auditPath() string { return filepath.Join(d.cfg.StateDir, "audit.log") }

// startMonitoring opens the audit log and the token store, and sets up
// metrics and health checks, fed by every operation change.
func (d *Daemon) startMonitoring(ctx context.Context) error {
	al, err := audit.Open(d.auditPath())
	if err != nil {
		return err
	}
	d.mon = &monitor{tokens: auth.NewTokens(d.store), audit: al, health: health.New(d.cfg.Health)}
	d.mon.metrics = metrics.New(buildinfo.String(), d.cfg.Name, d.gather)
	// The checks remember the last backup and migration of each target
	// across restarts: seed them from the stored operations.
	seed := func(ctx context.Context) error {
		past, err := d.ops.List(ctx, ops.Filter{})
		if err != nil {
			return err
		}
		for i := len(past) - 1; i >= 0; i-- { // oldest first
			if past[i].Kind == health.KindBackup || past[i].Kind == health.KindMigrate {
				d.mon.health.OperationChanged(past[i])
			}
		}
		return nil
	}
	if err := d.atStart(ctx, "read the last backups and migrations for the checks", seed); err != nil {
		return err
	}
	d.mon.bus = events.New(events.DefaultSize)
	oe := &opEvents{d: d, last: map[string]opSeen{}}
	d.ops.OnChange(d.mon.metrics.OperationChanged)
	d.ops.OnChange(d.mon.health.OperationChanged)
	d.ops.OnChange(oe.changed)
	wctx, cancel := context.WithCancel(context.Background())
	d.mon.stop = cancel
	d.mon.wg.Add(1)
	go func() { defer d.mon.wg.Done(); d.watchLibvirtEvents(wctx) }()
	step := d.cfg.HistoryStep
	if step <= 0 {
		step = DefaultHistoryStep
	}
	d.mon.history = metrics.NewHistory(step, HistorySpan)
	d.mon.wg.Add(1)
	go func() { defer d.mon.wg.Done(); d.keepHistory(wctx) }()
	return nil
}

// The usage history: a point per step, HistorySpan of them per VM.
const (
	DefaultHistoryStep = 30 * time.Second
	HistorySpan        = 6 * time.Hour
)

// keepHistory samples every domain's stats once per step (one bulk
// libvirt call, as a scrape) into the history.
func (d *Daemon) keepHistory(ctx context.Context) {
	t := time.NewTicker(d.mon.history.Step())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			sctx, cancel := context.WithTimeout(ctx, d.mon.history.Step())
			doms, err := d.hv.DomainStats(sctx)
			cancel()
			if err == nil {
				d.mon.history.Add(now, doms)
			}
		}
	}
}

func (d *Daemon) closeMonitoring() {
	if d.mon == nil {
		return
	}
	if d.mon.stop != nil {
		d.mon.stop()
		d.mon.wg.Wait()
	}
	if d.mon.audit != nil {
		_ = d.mon.audit.Close()
	}
}

// middleware wraps the API: request info first, then the audit log (so
// refused requests are logged too), then authentication.
func (d *Daemon) middleware(public map[string]bool, next http.Handler) http.Handler {
	// Outside auth: a caller's credentials are read from the last view too.
	authed := d.staleReads(d.withAuth(public, next))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ri := &reqInfo{}
		r = r.WithContext(context.WithValue(r.Context(), reqInfoKey{}, ri))
		start := time.Now()
		rec := &recorder{ResponseWriter: w, status: http.StatusOK, keep: r.Method != http.MethodGet && r.Method != http.MethodHead}
		authed.ServeHTTP(rec, r)
		took := time.Since(start)
		if rec.keep {
			d.writeAudit(r, ri, rec, took)
		}
		if !streamRoutes[ri.route] {
			d.mon.metrics.ObserveRequest(ri.route, r.Method, rec.status, took)
		}
	})
}

// writeAudit logs one change request: who, what, when, and how it ended.
func (d *Daemon) writeAudit(r *http.Request, ri *reqInfo, rec *recorder, took time.Duration) {
	e := api.AuditEntry{
		Time: time.Now().UTC(), Principal: ri.principal.String(), Scope: ri.principal.Scope,
		Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Status: rec.status, DurationMs: took.Milliseconds(),
	}
	if r.TLS != nil {
		e.Remote = r.RemoteAddr
	}
	var body struct {
		ID     string `json:"id"`
		Kind   string `json:"kind"`
		Target string `json:"target"`
		Error  string `json:"error"`
	}
	if json.Unmarshal(rec.body.Bytes(), &body) == nil {
		if rec.status >= 400 {
			e.Error = body.Error
		} else if body.Kind != "" {
			e.Operation, e.Target = body.ID, body.Target
		}
	}
	if err := d.mon.audit.Write(e); err != nil {
		d.log.Error("write audit log", "err", err)
	}
}

// recorder notes the status and the start of the body of a response.
type recorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
	keep        bool
	body        bytes.Buffer
}

const keepBody = 4096

func (r *recorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	r.wroteHeader = true
	if r.keep && r.body.Len() < keepBody {
		r.body.Write(p[:min(len(p), keepBody-r.body.Len())])
	}
	return r.ResponseWriter.Write(p)
}

// Flush keeps streaming responses streaming.
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

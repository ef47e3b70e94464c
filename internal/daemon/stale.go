package daemon

import (
	"fmt"
	"net/http"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/store"
)

// Reads without a quorum. On a host of a cluster whose store member has
// lost its quorum (the minority side of a partition), a GET is answered
// from this host's last view of the store, and its response says so in
// api.HeaderStale; anything else needs the quorum and gets the store's
// 503, which names the voters this host cannot reach.
func (d *Daemon) staleReads(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d.clusterNode() == nil || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
			next.ServeHTTP(w, r)
			return
		}
		ctx, note := store.AllowStale(r.Context())
		next.ServeHTTP(&staleWriter{ResponseWriter: w, note: note, host: d.cfg.Name}, r.WithContext(ctx))
	})
}

// staleWriter sets api.HeaderStale before the response's header goes
// out, when a read so far was stale.
type staleWriter struct {
	http.ResponseWriter
	note *store.StaleNote
	host string
	done bool
}

func (w *staleWriter) mark() {
	if w.done {
		return
	}
	w.done = true
	if stale, since := w.note.Stale(); stale && w.Header().Get(api.HeaderStale) == "" {
		w.Header().Set(api.HeaderStale, staleMessage(w.host, since))
	}
}

func staleMessage(host string, since time.Time) string {
	return fmt.Sprintf("cluster store has no quorum since %s (%s ago): this is host %s's last view, maybe behind the cluster's",
		since.UTC().Format(time.RFC3339), time.Since(since).Round(time.Second), host)
}

func (w *staleWriter) WriteHeader(code int) { w.mark(); w.ResponseWriter.WriteHeader(code) }

func (w *staleWriter) Write(p []byte) (int, error) { w.mark(); return w.ResponseWriter.Write(p) }

// Flush keeps streaming responses streaming.
func (w *staleWriter) Flush() {
	w.mark()
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *staleWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

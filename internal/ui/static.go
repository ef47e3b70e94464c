package ui

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

// asset is one embedded file as it is served: its bytes, gzipped once
// when that saves, and an ETag of each, so that a reload with the
// no-cache policy costs a 304 and a first load a third of the bytes.
type asset struct {
	name, ctype     string
	plain, gz       []byte
	plainTag, gzTag string
}

// compressible: the page's text files (the .js and .css are most of it).
var compressible = map[string]bool{".js": true, ".css": true, ".html": true, ".svg": true, ".json": true}

func loadAssets(files fs.FS) (map[string]*asset, error) {
	out := map[string]*asset{}
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(files, p)
		if err != nil {
			return err
		}
		a := &asset{name: p, ctype: mime.TypeByExtension(path.Ext(p)), plain: b, plainTag: etag(b)}
		if compressible[path.Ext(p)] {
			var buf bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
			_, _ = zw.Write(b)
			if err := zw.Close(); err != nil {
				return err
			}
			if buf.Len() < len(b) {
				a.gz, a.gzTag = buf.Bytes(), etag(buf.Bytes())
			}
		}
		out[p] = a
		return nil
	})
	return out, err
}

func etag(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:12]) + `"`
}

// staticHandler serves the embedded files under /ui/, gzipped for a
// client that takes it. The files are read and compressed on the first
// request (once per process), not at start.
func staticHandler(files fs.FS) http.Handler {
	load := sync.OnceValues(func() (map[string]*asset, error) { return loadAssets(files) })
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		all, err := load()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		a := all[strings.TrimPrefix(r.URL.Path, "/ui/")]
		if a == nil {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Vary", "Accept-Encoding")
		if a.ctype != "" {
			h.Set("Content-Type", a.ctype)
		}
		body, tag := a.plain, a.plainTag
		if a.gz != nil && acceptsGzip(r) {
			body, tag = a.gz, a.gzTag
			h.Set("Content-Encoding", "gzip")
		}
		h.Set("ETag", tag)
		http.ServeContent(w, r, a.name, time.Time{}, bytes.NewReader(body))
	})
}

// acceptsGzip: the request's Accept-Encoding lists gzip without q=0.
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			q := strings.ReplaceAll(params, " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}

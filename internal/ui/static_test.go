package ui

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"testing"
)

// The page's scripts go out gzipped to a browser that takes it (a third
// of the bytes or less), plain to one that does not, and a reload with
// the ETag costs a 304.
func TestStaticGzip(t *testing.T) {
	h := Handler(Options{})
	want, err := fs.ReadFile(assets, "assets/app.js")
	if err != nil {
		t.Fatal(err)
	}
	get := func(enc, match string) *http.Response {
		r := httptest.NewRequest("GET", "/ui/app.js", nil)
		if enc != "" {
			r.Header.Set("Accept-Encoding", enc)
		}
		if match != "" {
			r.Header.Set("If-None-Match", match)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Result()
	}
	gz := get("gzip, deflate, br", "")
	if gz.StatusCode != 200 || gz.Header.Get("Content-Encoding") != "gzip" || gz.Header.Get("Vary") != "Accept-Encoding" {
		t.Fatalf("gzip request: %d, headers %v", gz.StatusCode, gz.Header)
	}
	zbody, _ := io.ReadAll(gz.Body)
	zr, err := gzip.NewReader(bytes.NewReader(zbody))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(zr)
	if !bytes.Equal(got, want) {
		t.Fatalf("gunzipped app.js differs from the embedded one (%d vs %d bytes)", len(got), len(want))
	}
	if len(zbody)*3 > len(want) {
		t.Errorf("gzipped app.js is %d bytes of %d: less than 3x smaller", len(zbody), len(want))
	}
	t.Logf("app.js: %d bytes, %d gzipped", len(want), len(zbody))
	for _, enc := range []string{"", "identity", "gzip;q=0"} {
		plain := get(enc, "")
		body, _ := io.ReadAll(plain.Body)
		if plain.Header.Get("Content-Encoding") != "" || !bytes.Equal(body, want) {
			t.Errorf("Accept-Encoding %q: encoding %q, %d bytes, want the plain file", enc, plain.Header.Get("Content-Encoding"), len(body))
		}
	}
	if tag := gz.Header.Get("ETag"); tag == "" {
		t.Error("no ETag")
	} else if again := get("gzip", tag); again.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match with its ETag: %d, want 304", again.StatusCode)
	}
	if miss := httptest.NewRecorder(); true {
		h.ServeHTTP(miss, httptest.NewRequest("GET", "/ui/nope.js", nil))
		if miss.Code != http.StatusNotFound {
			t.Errorf("a missing file: %d, want 404", miss.Code)
		}
	}
}

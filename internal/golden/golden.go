// Package golden runs table tests whose cases are files in testdata/:
// each NAME.json input is decoded strictly, and the output a test makes
// from it is compared with a golden file, which `go test -update`
// rewrites. Only tests import it; it registers the -update flag, so a
// package that uses it must not define its own.
package golden

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// ForEachJSON runs fn as a subtest NAME for each testdata/NAME.json,
// decoded into an In (an unknown field fails the case). base is the
// file's path without .json, for naming its golden files. Fewer than
// atLeast inputs fail the test.
func ForEachJSON[In any](t *testing.T, atLeast int, fn func(t *testing.T, in In, base string)) {
	t.Helper()
	inputs, _ := filepath.Glob("testdata/*.json")
	if len(inputs) < atLeast {
		t.Fatalf("want at least %d golden inputs in testdata/, have %v", atLeast, inputs)
	}
	for _, path := range inputs {
		base := strings.TrimSuffix(path, ".json")
		t.Run(filepath.Base(base), func(t *testing.T) {
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var in In
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&in); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			fn(t, in, base)
		})
	}
}

// Compare reports an error when got differs from the golden file at path
// (after rewriting it with got under -update). A missing file is fatal.
func Compare(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if got == string(want) {
		return
	}
	// Name the first line that differs: golden files run to thousands.
	gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
	for i := range min(len(gl), len(wl)) {
		if gl[i] != wl[i] {
			t.Errorf("%s differs at line %d (go test -update rewrites it):\n got %q\nwant %q", path, i+1, gl[i], wl[i])
			return
		}
	}
	t.Errorf("%s: got %d lines, want %d (go test -update rewrites it)", path, len(gl), len(wl))
}

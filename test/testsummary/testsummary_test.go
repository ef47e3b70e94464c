package testsummary

import (
	"encoding/json"
	"strings"
	"testing"
)

// stream builds a go test -json stream: each item is action, package,
// test, output (for "output") or elapsed seconds (for the others).
func stream(t *testing.T, items ...[]any) string {
	t.Helper()
	var b strings.Builder
	for _, it := range items {
		e := map[string]any{"Action": it[0], "Package": it[1]}
		if it[2] != "" {
			e["Test"] = it[2]
		}
		if s, ok := it[3].(string); ok {
			e["Output"] = s
		} else {
			e["Elapsed"] = it[3]
		}
		line, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(append(line, '\n'))
	}
	return b.String()
}

func TestCopyAndWrite(t *testing.T) {
	const m = "example.org/m/"
	in := "go: downloading example.org/x v1.0.0\n" + stream(t,
		[]any{"start", m + "a", "", 0.0},
		[]any{"output", m + "a", "TestOK", "=== RUN   TestOK\n"},
		[]any{"output", m + "a", "TestOK", "--- PASS: TestOK (0.00s)\n"},
		[]any{"pass", m + "a", "TestOK", 0.0},
		[]any{"output", m + "a", "TestLVM", "=== RUN   TestLVM\n"},
		[]any{"output", m + "a", "TestLVM", "    s_test.go:9: unsupported by this machine's kernel: no device-mapper\n"},
		[]any{"output", m + "a", "TestLVM", "--- SKIP: TestLVM (0.00s)\n"},
		[]any{"skip", m + "a", "TestLVM", 0.0},
		[]any{"output", m + "a", "", "PASS\n"},
		[]any{"output", m + "a", "", "ok  \texample.org/m/a\t1.50s\n"},
		[]any{"pass", m + "a", "", 1.5},
		[]any{"output", m + "b", "TestBad", "=== RUN   TestBad\n"},
		[]any{"output", m + "b", "TestBad/sub", "=== RUN   TestBad/sub\n"},
		[]any{"output", m + "b", "TestBad/sub", "    b_test.go:3: sub broke\n"},
		[]any{"output", m + "b", "TestBad/sub", "    --- FAIL: TestBad/sub (0.00s)\n"},
		[]any{"fail", m + "b", "TestBad/sub", 0.0},
		[]any{"output", m + "b", "TestBad", "--- FAIL: TestBad (0.00s)\n"},
		[]any{"fail", m + "b", "TestBad", 5.0},
		[]any{"output", m + "b", "TestUI", "=== RUN   TestUI\n"},
		[]any{"output", m + "b", "TestUI", "    u_test.go:1: started\n"},
		[]any{"output", m + "b", "TestUI", "    u_test.go:2: screenshot vnc.png\n"},
		[]any{"output", m + "b", "TestUI", "    u_test.go:3: viewer: waiting: deadline exceeded\n"},
		[]any{"output", m + "b", "TestUI", "        page text:\n"},
		[]any{"output", m + "b", "TestUI", "    h_test.go:9: daemon log:\n"},
		[]any{"output", m + "b", "TestUI", "        time=0 level=INFO msg=stopping\n"},
		[]any{"output", m + "b", "TestUI", "--- FAIL: TestUI (1.00s)\n"},
		[]any{"fail", m + "b", "TestUI", 1.0},
		[]any{"output", m + "b", "TestFine", "--- PASS: TestFine (0.00s)\n"},
		[]any{"pass", m + "b", "TestFine", 2.25},
		[]any{"output", m + "b", "", "FAIL\n"},
		[]any{"output", m + "b", "", "FAIL\texample.org/m/b\t7.25s\n"},
		[]any{"fail", m + "b", "", 7.25},
		[]any{"output", m + "c", "", "?   \texample.org/m/c\t[no test files]\n"},
		[]any{"skip", m + "c", "", 0.0},
		[]any{"output", m + "d", "TestHangs", "=== RUN   TestHangs\n"},
		[]any{"output", m + "d", "TestHangs", "panic: test timed out after 1s\n"},
	)
	var out strings.Builder
	sum, err := Copy(strings.NewReader(in), &out)
	if err != nil {
		t.Fatal(err)
	}
	sum.Write(&out, 0)
	got := out.String()
	want := `go: downloading example.org/x v1.0.0
ok  	example.org/m/a	1.50s
--- FAIL: TestBad (0.00s)
    b_test.go:3: sub broke
    --- FAIL: TestBad/sub (0.00s)
    u_test.go:1: started
    u_test.go:2: screenshot vnc.png
    u_test.go:3: viewer: waiting: deadline exceeded
        page text:
    h_test.go:9: daemon log:
        time=0 level=INFO msg=stopping
--- FAIL: TestUI (1.00s)
FAIL
FAIL	example.org/m/b	7.25s
?   	example.org/m/c	[no test files]
panic: test timed out after 1s
FAIL	example.org/m/d (no result: the run ended first)

skipped tests (1):
  a TestLVM: s_test.go:9: unsupported by this machine's kernel: no device-mapper

slowest tests (4 of 4):
      5.00s  b TestBad  FAIL
      2.25s  b TestFine
      1.00s  b TestUI  FAIL
      0.00s  a TestOK

package times, slowest first (2 packages, 8.8s summed):
      7.25s  example.org/m/b  FAIL
      1.50s  example.org/m/a

why they failed (2):
  b TestBad/sub:
      b_test.go:3: sub broke
  b TestUI:
      u_test.go:2: screenshot vnc.png
      u_test.go:3: viewer: waiting: deadline exceeded
          page text:
`
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if !sum.Failed {
		t.Error("a failed and an unfinished package, yet not Failed")
	}
}

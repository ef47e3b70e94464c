// Package testsummary reads the event stream of `go test -json` and writes
// what plain `go test` would have shown (a line per package, the output of
// what failed), then the skipped tests with their reasons, the slowest
// tests, and how long each package took, slowest first. `make test` pipes the suite through
// it. It only reads and writes text; it runs nothing.
package testsummary

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	Elapsed float64
}

// Package is how one package went.
type Package struct {
	Name    string
	Action  string // pass, fail or skip
	Elapsed float64
}

// Skip is a skipped test and what it said.
type Skip struct {
	Package, Test, Reason string
}

// Test is how long one top-level test took.
type Test struct {
	Package, Name, Action string
	Elapsed               float64
}

// Summary is what the stream held.
type Summary struct {
	Packages []Package // in the order they ended
	Tests    []Test    // top-level tests that passed or failed
	Skips    []Skip
	Failures []Failure // failed tests and what they said last
	Failed   bool
}

// Failure is a failed test and the last entries it logged before its
// cleanup's dumps: a CI page that shows only the end of the output still
// says why it failed.
type Failure struct {
	Package, Test string
	Said          []string
}

// slowTests is how many of the slowest tests Write lists.
const slowTests = 15

// pkgState buffers one package's output until it ends.
type pkgState struct {
	out     []string            // package-level output
	tests   map[string][]string // output of tests still running
	pending map[string][]string // output of failed subtests, by top-level test
}

// Copy reads the stream from r and writes plain go test output to w as
// packages end. Lines that are not events (go's own messages) pass through.
func Copy(r io.Reader, w io.Writer) (Summary, error) {
	var sum Summary
	pkgs := map[string]*pkgState{}
	state := func(p string) *pkgState {
		if pkgs[p] == nil {
			pkgs[p] = &pkgState{tests: map[string][]string{}, pending: map[string][]string{}}
		}
		return pkgs[p]
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		var e event
		if !strings.HasPrefix(line, "{") || json.Unmarshal([]byte(line), &e) != nil {
			fmt.Fprintln(w, line)
			continue
		}
		switch {
		case e.Action == "build-output":
			fmt.Fprint(w, e.Output)
		case e.Action == "output" && e.Test == "":
			st := state(e.Package)
			st.out = append(st.out, e.Output)
		case e.Action == "output":
			st := state(e.Package)
			st.tests[e.Test] = append(st.tests[e.Test], e.Output)
		case e.Test != "" && (e.Action == "pass" || e.Action == "skip" || e.Action == "fail"):
			st := state(e.Package)
			out := st.tests[e.Test]
			delete(st.tests, e.Test)
			top, _, sub := strings.Cut(e.Test, "/")
			switch {
			case e.Action == "skip":
				sum.Skips = append(sum.Skips, Skip{e.Package, e.Test, reason(out)})
			case e.Action == "fail" && sub:
				st.pending[top] = append(st.pending[top], out...)
				sum.Failures = append(sum.Failures, Failure{e.Package, e.Test, lastSaid(out)})
			case e.Action == "fail":
				if len(st.pending[top]) == 0 {
					sum.Failures = append(sum.Failures, Failure{e.Package, e.Test, lastSaid(out)})
				}
				writeLines(w, out)
				writeLines(w, st.pending[top])
			}
			if !sub {
				delete(st.pending, top)
				if e.Action != "skip" {
					sum.Tests = append(sum.Tests, Test{e.Package, e.Test, e.Action, e.Elapsed})
				}
			}
		case e.Test == "" && (e.Action == "pass" || e.Action == "skip" || e.Action == "fail"):
			st := state(e.Package)
			delete(pkgs, e.Package)
			sum.Packages = append(sum.Packages, Package{e.Package, e.Action, e.Elapsed})
			if e.Action == "fail" {
				sum.Failed = true
				st.writeUnfinished(w)
				writeLines(w, st.out)
				continue
			}
			for _, l := range st.out {
				if strings.HasPrefix(l, "ok ") || strings.HasPrefix(l, "? ") {
					fmt.Fprint(w, l)
				}
			}
		}
	}
	// A package that never ended (the run was killed): all it said.
	names := make([]string, 0, len(pkgs))
	for p := range pkgs {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, p := range names {
		sum.Failed = true
		pkgs[p].writeUnfinished(w)
		writeLines(w, pkgs[p].out)
		fmt.Fprintf(w, "FAIL\t%s (no result: the run ended first)\n", p)
	}
	return sum, sc.Err()
}

// writeUnfinished writes the output of tests that never ended (a
// timeout's panic stops them mid-way) and of failed subtests.
func (st *pkgState) writeUnfinished(w io.Writer) {
	for _, m := range []map[string][]string{st.tests, st.pending} {
		names := make([]string, 0, len(m))
		for t := range m {
			names = append(names, t)
		}
		sort.Strings(names)
		for _, t := range names {
			writeLines(w, m[t])
		}
	}
}

// writeLines writes test output as plain go test shows it: without the
// === RUN / PAUSE / CONT lines that -json (like -v) adds.
func writeLines(w io.Writer, lines []string) {
	for _, l := range lines {
		if !strings.HasPrefix(l, "=== ") {
			fmt.Fprint(w, l)
		}
	}
}

// reason is what a skipped test logged, on one line.
func reason(out []string) string {
	var parts []string
	for _, l := range out {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "=== ") || strings.HasPrefix(l, "--- SKIP") {
			continue
		}
		parts = append(parts, l)
	}
	return strings.Join(parts, " ")
}

// logEntry is the first line of a t.Log entry: "    file.go:12: text".
var logEntry = regexp.MustCompile(`^\s+[\w.-]+\.go:\d+: `)

// saidEntries and saidLines bound what lastSaid keeps.
const saidEntries, saidLines, saidWidth = 2, 8, 300

// lastSaid is the last t.Log entries of a test's output before a "daemon
// log:" dump (the e2e harness's, at cleanup), each cut to a few lines.
func lastSaid(out []string) []string {
	var entries [][]string
	for _, l := range out {
		l = strings.TrimRight(l, "\n")
		switch {
		case logEntry.MatchString(l):
			if strings.HasSuffix(l, "daemon log:") { // the harness's dump, one per host
				return flatten(entries)
			}
			entries = append(entries, []string{l})
		case len(entries) > 0 && !strings.HasPrefix(l, "=== ") && !strings.HasPrefix(strings.TrimSpace(l), "--- "):
			entries[len(entries)-1] = append(entries[len(entries)-1], l)
		}
	}
	return flatten(entries)
}

func flatten(entries [][]string) []string {
	var said []string
	for _, e := range entries[max(0, len(entries)-saidEntries):] {
		for i, l := range e[:min(len(e), saidLines)] {
			if len(l) > saidWidth {
				l = l[:saidWidth] + "..."
			}
			if i == saidLines-1 && len(e) > saidLines {
				l = fmt.Sprintf("        (%d more lines)", len(e)-i)
			}
			said = append(said, l)
		}
	}
	return said
}

// Write writes the skipped tests, the slowest tests, the packages'
// times, slowest first (the top of them; top <= 0: all), and last what
// the failed tests said.
func (s Summary) Write(w io.Writer, top int) {
	defer s.writeFailures(w)
	defer s.writePackages(w, top)
	if len(s.Skips) > 0 {
		fmt.Fprintf(w, "\nskipped tests (%d):\n", len(s.Skips))
		for _, k := range s.Skips {
			fmt.Fprintf(w, "  %s %s: %s\n", strings.TrimPrefix(k.Package, commonPrefix(s.Packages)), k.Test, k.Reason)
		}
	}
	tests := slices.Clone(s.Tests)
	sort.SliceStable(tests, func(i, j int) bool { return tests[i].Elapsed > tests[j].Elapsed })
	if n := min(len(tests), slowTests); n > 0 {
		fmt.Fprintf(w, "\nslowest tests (%d of %d):\n", n, len(tests))
		for _, t := range tests[:n] {
			fmt.Fprintf(w, "  %8.2fs  %s %s%s\n", t.Elapsed, strings.TrimPrefix(t.Package, commonPrefix(s.Packages)), t.Name, failMark(t.Action))
		}
	}
}

func (s Summary) writePackages(w io.Writer, top int) {
	var pk []Package
	for _, p := range s.Packages {
		if p.Action != "skip" { // no test files
			pk = append(pk, p)
		}
	}
	sort.SliceStable(pk, func(i, j int) bool { return pk[i].Elapsed > pk[j].Elapsed })
	var total float64
	for _, p := range pk {
		total += p.Elapsed
	}
	noun := "packages"
	if len(pk) == 1 {
		noun = "package"
	}
	fmt.Fprintf(w, "\npackage times, slowest first (%d %s, %.1fs summed):\n", len(pk), noun, total)
	for i, p := range pk {
		if top > 0 && i >= top {
			break
		}
		fmt.Fprintf(w, "  %8.2fs  %s%s\n", p.Elapsed, p.Name, failMark(p.Action))
	}
}

func (s Summary) writeFailures(w io.Writer) {
	if len(s.Failures) == 0 {
		return
	}
	fmt.Fprintf(w, "\nwhy they failed (%d):\n", len(s.Failures))
	for _, f := range s.Failures {
		fmt.Fprintf(w, "  %s %s:\n", strings.TrimPrefix(f.Package, commonPrefix(s.Packages)), f.Test)
		for _, l := range f.Said {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
}

func failMark(action string) string {
	if action == "fail" {
		return "  FAIL"
	}
	return ""
}

// commonPrefix is the module path the package names share ("" if none),
// ending in a slash.
func commonPrefix(pk []Package) string {
	if len(pk) == 0 {
		return ""
	}
	prefix := pk[0].Name
	for _, p := range pk[1:] {
		for !strings.HasPrefix(p.Name, prefix) {
			prefix = prefix[:len(prefix)-1]
		}
	}
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		return prefix[:i+1]
	}
	return ""
}

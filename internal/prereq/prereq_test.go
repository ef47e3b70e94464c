package prereq

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTable(t *testing.T) {
	needs := Needs()
	if len(needs) < 10 {
		t.Fatalf("only %d rows", len(needs))
	}
	seen := map[string]bool{}
	for _, n := range needs {
		switch n.Scope {
		case ScopeRun, ScopeExtra, ScopeSetup, ScopeTest, ScopeBench:
		default:
			t.Errorf("%v: scope %q", n, n.Scope)
		}
		if n.Package == "" || n.Feature == "" || len(n.Programs) == 0 {
			t.Errorf("incomplete row %+v", n)
		}
		for _, p := range n.Programs {
			seen[p] = true
		}
	}
	// What the issue that made this table names must be in it.
	for _, p := range []string{"dnsmasq", "qemu-img", "virsh", "isoinfo", "ovs-vsctl", "debootstrap", "mkfs.ext4"} {
		if !seen[p] {
			t.Errorf("%s is not in programs.txt", p)
		}
	}
}

func TestFindAndMissing(t *testing.T) {
	dir := t.TempDir()
	prog := filepath.Join(dir, "godwit-prereq-test")
	if err := os.WriteFile(prog, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	if Find("godwit-prereq-test") != prog {
		t.Errorf("Find on PATH failed")
	}
	if Find("godwit-no-such-program") != "" {
		t.Errorf("Find found a program that is not there")
	}
	if Find(prog) != prog || Find(filepath.Join(dir, "nope")) != "" {
		t.Errorf("Find of paths")
	}
	old := table
	defer func() { table = old }()
	table = "run godwit-prereq-test pkg-a feature A\nrun godwit-no-such-program|godwit-prereq-test pkg-b feature B\nrun godwit-no-such-program pkg-c feature C\ntest godwit-no-such-other pkg-d feature D\n"
	m := Check(ScopeRun)
	if len(m) != 1 || m[0].Package != "pkg-c" {
		t.Fatalf("Check(run) = %v, want only feature C", m)
	}
	if s := m[0].String(); s != "feature C: godwit-no-such-program is not installed (Debian package pkg-c)" {
		t.Errorf("message %q", s)
	}
	if len(Check(ScopeRun, ScopeTest)) != 2 {
		t.Errorf("Check(run, test) should add feature D")
	}
	if err := Program("godwit-no-such-program"); err == nil || !strings.Contains(err.Error(), "feature C") {
		t.Errorf("Program of a missing one: %v", err)
	}
	if err := Program("godwit-prereq-test"); err != nil {
		t.Errorf("Program of an installed one: %v", err)
	}
}

func TestPackages(t *testing.T) {
	old := table
	defer func() { table = old }()
	table = "run a pkg-a A\nrun b pkg-b B\nextra c pkg-c C\nrun d pkg-a D\ntest e pkg-e E\n"
	if got := strings.Join(Packages(ScopeRun), " "); got != "pkg-a pkg-b" {
		t.Errorf("Packages(run) = %q, want pkg-a pkg-b (each once, in order)", got)
	}
	if got := strings.Join(Packages(ScopeExtra), " "); got != "pkg-c" {
		t.Errorf("Packages(extra) = %q", got)
	}
}

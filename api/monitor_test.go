package api

import "testing"

func TestCheckSeverity(t *testing.T) {
	for status, want := range map[string]int{CheckOK: 0, CheckWarning: 1, CheckCritical: 2, "": 2, "bogus": 2} {
		if got := CheckSeverity(status); got != want {
			t.Errorf("CheckSeverity(%q) = %d, want %d", status, got, want)
		}
	}
}

func TestWorstStatus(t *testing.T) {
	checks := func(statuses ...string) []Check {
		var cs []Check
		for _, s := range statuses {
			cs = append(cs, Check{Name: "c", Status: s})
		}
		return cs
	}
	for _, c := range []struct {
		checks []Check
		want   string
	}{
		{nil, CheckOK},
		{checks(CheckOK, CheckOK), CheckOK},
		{checks(CheckOK, CheckWarning, CheckOK), CheckWarning},
		{checks(CheckWarning, CheckCritical, CheckWarning), CheckCritical},
		{checks(CheckOK, "bogus", CheckCritical), "bogus"}, // the first of the worst
	} {
		if got := WorstStatus(c.checks); got != c.want {
			t.Errorf("WorstStatus(%v) = %q, want %q", c.checks, got, c.want)
		}
	}
}

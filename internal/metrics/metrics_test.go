package metrics

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"go.yaml.in/yaml/v3"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/testenv"
)

func empty(context.Context) Scrape { return Scrape{} }

func TestOperationMetrics(t *testing.T) {
	m := New("test", "h1", empty)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	res, _ := json.Marshal(api.TransferStats{Bytes: 300 << 20, DurationMs: 1500, DowntimeMs: 80})
	mig := api.Operation{ID: "1", Kind: "vm.migrate", Target: "vm/web1", State: api.OpRunning, CreatedAt: t0}
	m.OperationChanged(mig)
	m.OperationChanged(mig) // progress: counted once
	if v := testutil.ToFloat64(m.opsRunning.WithLabelValues("vm.migrate")); v != 1 {
		t.Fatalf("running migrations = %v", v)
	}
	mig.State, mig.FinishedAt, mig.Result = api.OpSucceeded, t0.Add(2*time.Second), res
	m.OperationChanged(mig)
	// A MigrationReport (totalMs, not durationMs) fills them too.
	rep, _ := json.Marshal(api.MigrationReport{VM: "web2", TotalMs: 3000, DowntimeMs: 20, Bytes: 1 << 30})
	m.OperationChanged(api.Operation{ID: "3", Kind: "vm.migrate", State: api.OpSucceeded, CreatedAt: t0, FinishedAt: t0.Add(4 * time.Second), Result: rep})
	bak := api.Operation{ID: "2", Kind: "backup.create", Target: "vm/web1", State: api.OpFailed, CreatedAt: t0, FinishedAt: t0.Add(time.Second)}
	m.OperationChanged(bak)
	if v := testutil.ToFloat64(m.opsRunning.WithLabelValues("vm.migrate")); v != 0 {
		t.Errorf("running migrations after the end = %v", v)
	}
	if v := testutil.ToFloat64(m.ops.WithLabelValues("vm.migrate", "succeeded")); v != 2 {
		t.Errorf("succeeded migrations = %v", v)
	}
	if v := testutil.ToFloat64(m.ops.WithLabelValues("backup.create", "failed")); v != 1 {
		t.Errorf("failed backups = %v", v)
	}
	text, err := testutil.CollectAndFormat(m.migDuration, expfmt.TypeTextPlain, "godwit_migration_duration_seconds")
	if err != nil {
		t.Fatal(err)
	}
	// The transfers' own 1.5 s and 3 s, not the operations' 2 s and 4 s.
	for _, want := range []string{`godwit_migration_duration_seconds_sum 4.5`, `godwit_migration_duration_seconds_count 2`} {
		if !strings.Contains(string(text), want) {
			t.Errorf("migration duration lacks %q:\n%s", want, text)
		}
	}
	if n := testutil.CollectAndCount(m.migBytes); n != 1 { // one histogram
		t.Errorf("migration bytes: %d series", n)
	}
	text, _ = testutil.CollectAndFormat(m.migDowntime, expfmt.TypeTextPlain, "godwit_migration_downtime_seconds")
	if !strings.Contains(string(text), "godwit_migration_downtime_seconds_sum 0.1") {
		t.Errorf("downtime:\n%s", text)
	}
	// A failed backup fills no transfer histogram.
	text, _ = testutil.CollectAndFormat(m.bakDuration, expfmt.TypeTextPlain, "godwit_backup_duration_seconds")
	if !strings.Contains(string(text), "godwit_backup_duration_seconds_count 0") {
		t.Errorf("backup duration after a failed backup:\n%s", text)
	}
}

// docs/alerts.yml refers only to metrics godwit serves, and promtool
// accepts it and its unit tests.
func TestAlertRules(t *testing.T) {
	root := testenv.RepoRoot()
	rules := filepath.Join(root, "docs", "alerts.yml")
	b, err := os.ReadFile(rules)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	names := New("test", "h1", empty).Names()
	for _, n := range slices.Clone(names) {
		names = append(names, n+"_bucket", n+"_sum", n+"_count")
	}
	ref := regexp.MustCompile(`\bgodwit_[a-z_]+\b`)
	checked := 0
	for _, g := range doc.Groups {
		for _, r := range g.Rules {
			for _, name := range ref.FindAllString(r.Expr, -1) {
				checked++
				if !slices.Contains(names, name) {
					t.Errorf("alert %s refers to %s, which godwit does not serve", r.Alert, name)
				}
			}
		}
	}
	if checked < 10 {
		t.Fatalf("only %d metric references found in %s", checked, rules)
	}

	promtool := filepath.Join(root, ".cache", "promtool", "promtool")
	if _, err := os.Stat(promtool); err != nil {
		if promtool, err = exec.LookPath("promtool"); err != nil {
			testenv.Skip(t, "promtool is missing (make promtool extracts it)")
			return
		}
	}
	for _, args := range [][]string{{"check", "rules", rules}, {"test", "rules", filepath.Join(root, "docs", "alerts_test.yml")}} {
		if out, err := exec.Command(promtool, args...).CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

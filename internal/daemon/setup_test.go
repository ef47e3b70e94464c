package daemon

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
	"github.com/godwit-project/godwit/internal/health"
	"github.com/godwit-project/godwit/internal/hypervisor"
	"github.com/godwit-project/godwit/internal/hypervisor/fake"
)

// A missing program shows once in host show and in host check, naming the
// feature and the package, not as a log line every 30 s.
func TestMissingProgramReported(t *testing.T) {
	dir := tempDir(t)
	dnsmasq := "NAT and isolated networks (DHCP and DNS): dnsmasq is not installed (Debian package dnsmasq-base)"
	td := serve(t, dir, filepath.Join(dir, "state"), fake.New(), withMissingPrograms(func() []string { return []string{dnsmasq} }))
	td.waitReady()
	var h api.Host
	_, _, body := td.do("GET", "/v1/host", "")
	if err := json.Unmarshal(body, &h); err != nil || !contains(h.Warnings, dnsmasq) {
		t.Errorf("host show warnings %v (%v), want %q", h.Warnings, err, dnsmasq)
	}
	var rep api.HealthReport
	_, _, body = td.do("GET", "/v1/host/checks", "")
	if err := json.Unmarshal(body, &rep); err != nil {
		t.Fatal(err)
	}
	for _, c := range rep.Checks {
		if c.Name == health.CheckHostSetup && (c.Status != api.CheckWarning || !contains(c.Items, dnsmasq)) {
			t.Errorf("host-setup check: %+v", c)
		}
	}
	if rep.Status != api.CheckWarning {
		t.Errorf("overall %s, want warning", rep.Status)
	}
}

// A daemon whose state dir QEMU's user cannot reach refuses to start,
// naming the directory, the user and the fix.
func TestStateDirQEMUCannotReach(t *testing.T) {
	dir := tempDir(t) // 0700, as mktemp -d makes it
	f := fake.New()
	h, _ := f.HostInfo(t.Context())
	h.QEMU = &hypervisor.DACLabel{UID: 64055, GID: 64055}
	f.SetHostInfo(h)
	_, err := New(Config{Name: "testhost", StateDir: filepath.Join(dir, "state"), Socket: filepath.Join(dir, "s.sock"), Accel: "tcg"},
		slog.New(slog.NewTextHandler(io.Discard, nil)), WithHypervisor(f))
	if err == nil {
		t.Fatal("the daemon started on a state dir QEMU cannot reach")
	}
	for _, want := range []string{"state dir " + filepath.Join(dir, "state"), "uid 64055", "cannot enter " + dir, "chmod o+x " + dir} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	td := serve(t, dir, filepath.Join(dir, "state"), f)
	td.waitReady()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Deleting a VM drops its backup schedule (its backups stay).
func TestDeleteDropsBackupSchedule(t *testing.T) {
	td := newDaemon(t)
	td.createVM(td.spec("web1"), false)
	if st, _, body := td.do("PUT", "/v1/vms/web1/backup-schedule", `{"every":"24h","keepLast":2}`); st != 200 {
		t.Fatalf("set schedule: %d %s", st, body)
	}
	op, err := td.c.DeleteVM(context.Background(), "web1", client.DeleteOptions{})
	if err == nil {
		_, err = td.wait(op)
	}
	if err != nil {
		t.Fatal(err)
	}
	_, _, body := td.do("GET", "/v1/backup-schedules", "")
	if strings.Contains(string(body), "web1") {
		t.Fatalf("the deleted VM's schedule stayed: %s", body)
	}
}

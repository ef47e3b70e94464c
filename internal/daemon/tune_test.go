package daemon

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/hypervisor/fake"
)

// host tune through the API, on a fake /proc and /sys tree: the check
// says the daemon's accelerator decision, apply and revert change the
// tree and nothing else, and a Read caller may only check.
func TestHostTune(t *testing.T) {
	dir := tempDir(t)
	root := filepath.Join(dir, "root")
	for p, v := range map[string]string{"proc/sys/vm/swappiness": "60\n", "proc/cpuinfo": "flags\t: fpu\n"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	td := serve(t, dir, filepath.Join(dir, "state"), fake.New(), withTuneRoot(root))
	ctx := context.Background()
	rep, err := td.c.HostTune(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, it := range rep.Items {
		if it.Name == "kvm" {
			found = true
			if it.Status != api.CheckCritical || !strings.Contains(it.Why, "no usable KVM") {
				t.Errorf("kvm item: %+v", it)
			}
		}
	}
	if !found || rep.Status != api.CheckCritical {
		t.Errorf("report: %+v", rep)
	}
	if _, err := td.c.HostTune(ctx, "gaming"); api.Status(err) != 400 {
		t.Errorf("unknown profile: %v", err)
	}
	res, err := td.c.ApplyHostTune(ctx, api.TuneRequest{Persist: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Changes) != 1 || res.Changes[0].Name != "vm.swappiness" || res.Changes[0].To != "10" {
		t.Errorf("apply: %+v", res)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "proc/sys/vm/swappiness")); string(b) != "10\n" {
		t.Errorf("swappiness = %q", b)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/sysctl.d/90-godwit-virtual-host.conf")); err != nil {
		t.Errorf("persist: %v", err)
	}
	if _, err := td.c.RevertHostTune(ctx); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "proc/sys/vm/swappiness")); string(b) != "60\n" {
		t.Errorf("after revert swappiness = %q", b)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/sysctl.d/90-godwit-virtual-host.conf")); err == nil {
		t.Errorf("revert left the sysctl file")
	}
	if _, err := td.c.RevertHostTune(ctx); api.Status(err) != 409 {
		t.Errorf("second revert: %v", err)
	}
}

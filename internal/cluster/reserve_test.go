package cluster_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/godwit-project/godwit/internal/cluster"
	"github.com/godwit-project/godwit/internal/cluster/placement"
)

// Placement keeps each VM record's decoded entry with the record's
// revision: a record rewritten (more memory) is read again, a record
// deleted leaves the host's entries, and a new one joins them.
func TestPlacementSeesRewrittenRecords(t *testing.T) {
	ctx := bounded(t, 30*time.Second)
	cfg := config(t, t.TempDir(), "h1")
	cfg.ReadVM = func(raw []byte) (cluster.VMInfo, error) {
		var r struct {
			Name string `json:"name"`
			MiB  int64  `json:"mib"`
		}
		err := json.Unmarshal(raw, &r)
		return cluster.VMInfo{Need: placement.Need{VM: r.Name, CPUs: 1, Memory: r.MiB << 20}}, err
	}
	h1, err := cluster.Init(ctx, cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer h1.Close()
	put := func(name string, mib int64) {
		t.Helper()
		b, _ := json.Marshal(map[string]any{"name": name, "mib": mib})
		if err := h1.Store().Put(ctx, "vms", name, b); err != nil {
			t.Fatal(err)
		}
	}
	reserved := func() map[string]int64 {
		t.Helper()
		hosts, err := h1.PlacementHosts(ctx)
		if err != nil || len(hosts) != 1 {
			t.Fatalf("placement hosts: %v %v", hosts, err)
		}
		out := map[string]int64{}
		for vm, e := range hosts[0].Reserved.VMs {
			out[vm] = e.Memory >> 20
		}
		return out
	}
	put("a", 64)
	put("b", 128)
	if got := reserved(); len(got) != 2 || got["a"] != 64 || got["b"] != 128 {
		t.Fatalf("first read: %v", got)
	}
	put("a", 512)
	if err := h1.Store().Delete(ctx, "vms", "b"); err != nil {
		t.Fatal(err)
	}
	put("c", 32)
	if got := reserved(); len(got) != 2 || got["a"] != 512 || got["c"] != 32 {
		t.Fatalf("after a grew, b went and c came: %v, want a=512 c=32", got)
	}
	if got := reserved(); len(got) != 2 || got["a"] != 512 || got["c"] != 32 {
		t.Fatalf("read again, from the decoded entries: %v", got)
	}
}

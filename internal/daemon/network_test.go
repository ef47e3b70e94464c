package daemon

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/hypervisor/fake"
)

func TestNetworkPrefixPerStateDir(t *testing.T) {
	def := Config{}
	other := Config{StateDir: "/srv/gw2"}
	bad := Config{StateDir: "/srv/gw3", Network: Network{Prefix: "has space"}}
	if err := def.Complete(); err != nil || def.Network.Prefix != "godwit" {
		t.Fatalf("default: %q %v", def.Network.Prefix, err)
	}
	if err := other.Complete(); err != nil || !strings.HasPrefix(other.Network.Prefix, "godwit-") || other.Network.Prefix == def.Network.Prefix ||
		strings.TrimPrefix(other.Network.Prefix, "godwit-") != strings.TrimPrefix(other.Pool.Name, "godwit-") {
		t.Fatalf("other state dir: %q (pool %q) %v", other.Network.Prefix, other.Pool.Name, err)
	}
	if err := bad.Complete(); err == nil || !strings.Contains(err.Error(), "network.prefix") {
		t.Fatalf("bad prefix: %v", err)
	}
}

func TestNetworksOverHTTP(t *testing.T) {
	dir := tempDir(t)
	f := fake.New()
	td := serve(t, dir, filepath.Join(dir, "state"), f)
	ctx := t.Context()

	// The default network comes up with the host.
	var def api.Network
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := td.c.GetNetwork(ctx, "default")
		if err == nil && n.Managed && n.Active {
			def = n
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no default network: %+v %v", n, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	h, err := td.c.Host(ctx)
	if err != nil || !strings.HasPrefix(def.Libvirt, h.NetworkPrefix+"-") {
		t.Fatalf("default %s, host prefix %q: %v", def.Libvirt, h.NetworkPrefix, err)
	}

	status, _, body := td.do(http.MethodPost, "/v1/networks", `{"name": "lab", "subnet": "10.9.8.0/24"}`)
	if status != http.StatusCreated || !strings.Contains(string(body), `"subnet":"10.9.8.0/24"`) {
		t.Fatalf("create: %d %s", status, body)
	}
	status, hdr, body := td.do(http.MethodPost, "/v1/networks", `{"name": "lab2", "subnet": "10.9.8.0/25"}`)
	wantError(t, "overlap", status, hdr, body, http.StatusConflict, "overlaps")
	status, hdr, body = td.do(http.MethodPost, "/v1/networks", `{"name": "x", "type": "mesh"}`)
	wantError(t, "bad type", status, hdr, body, http.StatusBadRequest, "type")
	status, hdr, body = td.do(http.MethodGet, "/v1/networks/nope", "")
	wantError(t, "unknown", status, hdr, body, http.StatusNotFound, "network nope not found")

	list, err := td.c.ListNetworks(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("list: %+v %v", list, err)
	}
	if status, _, body := td.do(http.MethodDelete, "/v1/networks/lab", ""); status != http.StatusNoContent && status != http.StatusOK {
		t.Fatalf("delete: %d %s", status, body)
	}
	if len(f.NetworkNames()) != 1 {
		t.Fatalf("libvirt networks after delete: %v", f.NetworkNames())
	}
	// NIC routes answer with operations, and refuse unknown VMs.
	status, hdr, body = td.do(http.MethodPost, "/v1/vms/ghost/nics", `{"network": "default"}`)
	wantError(t, "attach to unknown vm", status, hdr, body, http.StatusNotFound, "ghost")
	status, hdr, body = td.do(http.MethodDelete, "/v1/vms/ghost/nics/52:54:00:00:00:01", "")
	wantError(t, "detach from unknown vm", status, hdr, body, http.StatusNotFound, "ghost")
}

package vm

import (
	"strings"
	"testing"

	"github.com/godwit-project/godwit/api"
)

const diskXML = `<domain type='qemu'><name>a</name><devices>
<disk type='file' device='disk'><source file='%s'/><target dev='vda' bus='virtio'/></disk>
</devices></domain>`

func domWith(file string) string { return strings.Replace(diskXML, "%s", file, 1) }

// Redefining a VM that runs on an external snapshot's overlay keeps the
// overlay; growing such a disk is refused.
func TestKeepOverlays(t *testing.T) {
	got, err := keepOverlays(domWith("/p/a-root.qcow2"), domWith("/p/a-root.s1.qcow2"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, "/p/a-root.s1.qcow2") || strings.Contains(got, "'/p/a-root.qcow2'") {
		t.Fatalf("redefinition lost the overlay:\n%s", got)
	}
	same := domWith("/p/a-root.qcow2")
	if got, _ := keepOverlays(same, same); got != same {
		t.Fatal("a VM without overlays changed")
	}
	rec := record{Disks: []api.VMDisk{{Name: "root", Target: "vda", Path: "/p/a-root.qcow2"}}}
	grow := map[string]api.Size{"root": api.GiB}
	if err := growsOverlaid(rec, domWith("/p/a-root.s1.qcow2"), grow); api.Status(err) != 409 {
		t.Fatalf("growing an overlaid disk: %v", err)
	}
	if err := growsOverlaid(rec, domWith("/p/a-root.qcow2"), grow); err != nil {
		t.Fatalf("growing a plain disk: %v", err)
	}
}

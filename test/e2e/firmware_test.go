package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/testenv"
)

// Firmware boot from the first disk. BIOS: the disk's MBR is godwit's
// 512-byte KVM probe, which prints to the serial port after switching to
// 64-bit mode. UEFI: OVMF starts and reports on the serial console.
func TestFirmwareBoot(t *testing.T) {
	concurrent(t)
	d := StartDaemon(t)
	probe, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "internal", "accel", "probe.bin"))
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(d.Dir, "mbr.raw")
	if err := os.WriteFile(img, append(probe, make([]byte, 1<<20-len(probe))...), 0o644); err != nil {
		t.Fatal(err)
	}

	t.Run("bios", func(t *testing.T) {
		name := "e2e-bios-" + uniq()
		spec := api.VMSpec{Name: name, CPUs: 1, Memory: 64 * api.MiB, Disks: []api.Disk{{Name: "boot", Image: img}}}
		d.createVM(spec, true)
		d.waitConsole(name, "GODWIT-PROBE-OK", 0, guestWait)
		if xml, _ := virsh(t, "dumpxml", name); !containsAll(xml, "<boot dev='hd'/>", "type='raw'") {
			t.Fatalf("domain XML:\n%s", xml)
		}
	})
	t.Run("uefi", func(t *testing.T) {
		if _, err := os.Stat("/usr/share/OVMF"); err != nil {
			testenv.Skip(t, "OVMF is not installed (apt-get install ovmf)")
		}
		name := "e2e-uefi-" + uniq()
		spec := api.VMSpec{Name: name, CPUs: 1, Memory: 256 * api.MiB, Boot: &api.Boot{Firmware: "uefi"},
			Disks: []api.Disk{{Name: "root", Size: 16 * api.MiB}}}
		d.createVM(spec, true)
		// OVMF reports its boot manager (and that the blank disk holds
		// nothing to boot) on the serial console.
		d.waitConsole(name, `BdsDxe: `, 0, 3*time.Minute)
		if xml, _ := virsh(t, "dumpxml", name); !containsAll(xml, "OVMF", "<nvram") {
			t.Fatalf("domain XML has no OVMF firmware:\n%s", xml)
		}
	})
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// Package accel decides which accelerator new VMs get: KVM or TCG (QEMU's
// software emulation). "auto" picks KVM only when it really works: libvirt
// must offer it, and a probe boot under KVM must run the probe's page-fault
// loop faster than the same probe under TCG. A /dev/kvm that exists but is
// served in software (kvm_pvm on some cloud VMs) fails that test, and VMs
// there get TCG with a warning, instead of guests that never boot.
package accel

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/godwit-project/godwit/internal/hypervisor"
)

//go:generate ./gen.sh

//go:embed probe.bin
var probeImage []byte

// Settings.
const (
	Auto = "auto"
	KVM  = "kvm"
	TCG  = "tcg"
)

// ProbeTimeout bounds one probe boot.
const ProbeTimeout = 20 * time.Second

// Result is the decision and why.
type Result struct {
	Setting string `json:"setting"`
	Chosen  string `json:"chosen"` // kvm or tcg
	Reason  string `json:"reason"`
	// Fingerprint identifies the host setup the decision was made on.
	Fingerprint string `json:"fingerprint,omitempty"`
	// ProbeFailed: the KVM probe could not run at all; the decision may be
	// transient and should not be remembered.
	ProbeFailed bool `json:"probeFailed,omitempty"`
}

// VirtType is the libvirt domain type for the choice: kvm or qemu.
func (r Result) VirtType() string {
	if r.Chosen == KVM {
		return "kvm"
	}
	return "qemu"
}

// Warning is what to tell the user when VMs will run slowly; "" if nothing.
func (r Result) Warning() string {
	if r.Chosen == TCG && r.Setting == Auto {
		return "VMs run under TCG software emulation (much slower than KVM): " + r.Reason
	}
	return ""
}

// Prober is what Detect needs of the hypervisor.
type Prober interface {
	HostInfo(ctx context.Context) (hypervisor.HostInfo, error)
	RunTransient(ctx context.Context, xml string) error
	Destroy(ctx context.Context, name string) error
}

// ValidSetting checks a configured setting.
func ValidSetting(s string) error {
	if s != Auto && s != KVM && s != TCG {
		return fmt.Errorf("accel: %q is not auto, kvm or tcg", s)
	}
	return nil
}

// Fingerprint names the facts the decision depends on, so a cached decision
// is reused only on the same setup.
func Fingerprint(h hypervisor.HostInfo) string {
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	kvm := "no-dev-kvm"
	if st, err := os.Stat("/dev/kvm"); err == nil {
		kvm = st.Mode().String()
	}
	return strings.Join([]string{"libvirt " + h.LibvirtVersion, "qemu " + h.QEMUVersion,
		"kernel " + strings.TrimSpace(string(kernel)), "kvm " + kvm, "types " + strings.Join(h.VirtTypes, ",")}, "; ")
}

// Detect decides. dir is a directory QEMU can read and libvirt can write,
// for the probe image and its serial log.
func Detect(ctx context.Context, setting string, p Prober, dir string) (Result, error) {
	if err := ValidSetting(setting); err != nil {
		return Result{}, err
	}
	h, err := p.HostInfo(ctx)
	if err != nil {
		return Result{}, err
	}
	r := Result{Setting: setting, Fingerprint: Fingerprint(h)}
	kvmOffered := slices.Contains(h.VirtTypes, "kvm")
	switch setting {
	case TCG:
		r.Chosen, r.Reason = TCG, "configured: accel tcg"
		return r, nil
	case KVM:
		if !kvmOffered {
			return r, errors.New("accel kvm: libvirt does not offer KVM on this host (/dev/kvm missing or not usable); use accel auto or tcg")
		}
		r.Chosen, r.Reason = KVM, "configured: accel kvm"
		return r, nil
	}
	if !kvmOffered {
		r.Chosen, r.Reason = TCG, "libvirt does not offer KVM here (no usable /dev/kvm)"
		return r, nil
	}
	kvmTime, err := probe(ctx, p, dir, "kvm")
	if err != nil {
		if ctx.Err() != nil {
			return r, ctx.Err()
		}
		r.Chosen, r.Reason = TCG, "libvirt offers KVM but a probe boot under it failed: "+err.Error()
		r.ProbeFailed = true
		return r, nil
	}
	tcgTime, err := probe(ctx, p, dir, "qemu")
	if err != nil {
		return r, fmt.Errorf("probe boot under TCG failed too (is QEMU installed and libvirt able to start guests?): %w", err)
	}
	if kvmTime >= tcgTime {
		r.Chosen = TCG
		r.Reason = fmt.Sprintf("KVM is not hardware-accelerated here: the probe's page-fault loop took %d ms under KVM and %d ms under TCG", kvmTime.Milliseconds(), tcgTime.Milliseconds())
		return r, nil
	}
	r.Chosen = KVM
	r.Reason = fmt.Sprintf("KVM works: the probe ran %.1fx faster than under TCG (%d ms vs %d ms)",
		float64(tcgTime)/float64(max(kvmTime, time.Millisecond)), kvmTime.Milliseconds(), tcgTime.Milliseconds())
	return r, nil
}

// probe boots the probe image as a transient domain of virtType and returns
// how long its page-fault loop took (from GODWIT-PROBE-LM to -OK on serial).
func probe(ctx context.Context, p Prober, dir, virtType string) (time.Duration, error) {
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return 0, err
	}
	img := filepath.Join(dir, "probe.img")
	if err := os.WriteFile(img, probeImage, 0o644); err != nil {
		return 0, err
	}
	serial := filepath.Join(dir, "probe-"+virtType+".log")
	_ = os.Remove(serial)
	name := fmt.Sprintf("godwit-accel-probe-%s-%d", virtType, time.Now().UnixNano()%1000000)
	xml := fmt.Sprintf(`<domain type='%s'>
  <name>%s</name>
  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='%s'/><target dev='hda' bus='ide'/></disk>
    <serial type='file'><source path='%s'/></serial>
    <memballoon model='none'/>
  </devices>
</domain>`, virtType, name, img, serial)

	ctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
	defer cancel()
	if err := p.RunTransient(ctx, xml); err != nil {
		return 0, err
	}
	defer func() { _ = p.Destroy(context.Background(), name) }()

	var lm time.Time
	for {
		b, _ := os.ReadFile(serial)
		if lm.IsZero() && bytes.Contains(b, []byte("GODWIT-PROBE-LM")) {
			lm = time.Now()
		}
		if bytes.Contains(b, []byte("GODWIT-PROBE-OK")) {
			if lm.IsZero() {
				return 0, errors.New("probe printed OK without LM")
			}
			return time.Since(lm), nil
		}
		select {
		case <-ctx.Done():
			if lm.IsZero() {
				return 0, fmt.Errorf("the probe did not reach 64-bit mode within %s", ProbeTimeout)
			}
			return 0, fmt.Errorf("the probe's page-fault loop did not finish within %s", ProbeTimeout)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

package vm

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/cloudinit"
	"github.com/godwit-project/godwit/internal/hypervisor"
	"github.com/godwit-project/godwit/internal/image"
	"github.com/godwit-project/godwit/internal/storage"
)

// Limits that hold on any host.
const (
	MinMemory   = 16 * api.MiB
	MaxNameLen  = 63
	MaxDisks    = 20
	MaxLabels   = 64
	MaxLabelLen = 255
	MinDiskSize = api.MiB
	MaxDiskSize = 64 * api.TiB
)

var (
	nameRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	diskNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)
	labelKeyRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$`)
)

// ValidateName checks a VM name: 1-63 characters of letters, digits, '.',
// '_' and '-', starting with a letter or digit. It is also the libvirt
// domain name and part of file names, so nothing that walks paths.
func ValidateName(name string) error {
	switch {
	case name == "":
		return api.BadRequest("name: missing (every VM needs a name)")
	case len(name) > MaxNameLen:
		return api.BadRequest("name: %d characters is too long (at most %d)", len(name), MaxNameLen)
	case strings.Contains(name, "/"):
		return api.BadRequest("name: %q must not contain '/'", name)
	case strings.Contains(name, ".."):
		return api.BadRequest("name: %q must not contain '..'", name)
	case !nameRE.MatchString(name):
		return api.BadRequest("name: %q may only hold letters, digits, '.', '_' and '-', and must start with a letter or digit", name)
	}
	return nil
}

// Normalize drops empty optional parts so that equal specs compare equal.
// It does not validate. cpus and memory have no defaults: a spec says them.
func Normalize(s *api.VMSpec) {
	if s.Boot != nil && *s.Boot == (api.Boot{}) {
		s.Boot = nil
	}
	if s.Console != nil && s.Console.Log == nil {
		s.Console = nil
	}
	if len(s.Labels) == 0 {
		s.Labels = nil
	}
	if len(s.NICs) == 0 {
		s.NICs = nil
	}
	if s.Placement != nil {
		p := *s.Placement
		if len(p.HostSelector) == 0 {
			p.HostSelector = nil
		}
		s.Placement = &p
		if p.HostSelector == nil && p.AntiAffinity == "" {
			s.Placement = nil
		}
	}
	if s.HA == api.HAOff {
		s.HA = ""
	}
	for i := range s.NICs {
		normalizeNIC(&s.NICs[i])
	}
	normalizeTuning(s)
}

// ConsoleLogged reports whether the spec keeps a console log (default yes).
func ConsoleLogged(s api.VMSpec) bool {
	return s.Console == nil || s.Console.Log == nil || *s.Console.Log
}

// ValidateStatic checks what can be checked without the host. The spec must
// be normalized. Errors are 400s that name the field.
func ValidateStatic(s api.VMSpec) error {
	if err := ValidateName(s.Name); err != nil {
		return err
	}
	if s.CPUs == 0 {
		return api.BadRequest("cpus: missing or 0 (a VM needs at least one virtual CPU, e.g. cpus: 1)")
	}
	if s.CPUs < 0 {
		return api.BadRequest("cpus: %d is not a positive number", s.CPUs)
	}
	if s.Memory == 0 {
		return api.BadRequest("memory: missing or 0 (e.g. memory: 512MiB)")
	}
	if s.Memory < MinMemory {
		return api.BadRequest("memory: %s is below the minimum of %s (did you forget the unit, e.g. 512MiB?)", s.Memory.Human(), MinMemory)
	}
	if s.Memory%api.MiB != 0 {
		return api.BadRequest("memory: %s is not a whole number of MiB", s.Memory.Human())
	}
	if err := validateBoot(s.Boot); err != nil {
		return err
	}
	if len(s.Disks) > MaxDisks {
		return api.BadRequest("disks: %d disks is more than the %d a VM can have", len(s.Disks), MaxDisks)
	}
	seen := map[string]bool{}
	for i, d := range s.Disks {
		field := fmt.Sprintf("disks[%d]", i)
		if !diskNameRE.MatchString(d.Name) {
			return api.BadRequest("%s.name: %q must be 1-32 lowercase letters, digits, '_' or '-'", field, d.Name)
		}
		if seen[d.Name] {
			return api.BadRequest("%s.name: %q is used by two disks", field, d.Name)
		}
		seen[d.Name] = true
		if err := validateDisk(field, d); err != nil {
			return err
		}
	}
	if err := validateNICs(s); err != nil {
		return err
	}
	if err := cloudinit.Validate(s.CloudInit); err != nil {
		return err
	}
	if err := validateTuning(s); err != nil {
		return err
	}
	if (s.Boot == nil || (s.Boot.Kernel == "" && s.Boot.Image == "")) && len(s.Disks) == 0 {
		return api.BadRequest("boot: the VM boots from its first disk, but it has no disks (add a disk or a boot.kernel)")
	}
	if err := ValidateLabels("labels", s.Labels); err != nil {
		return err
	}
	if err := validatePlacement(s.Placement); err != nil {
		return err
	}
	if err := validateGraphics(s.Graphics); err != nil {
		return err
	}
	return validateHA(s)
}

// ValidateLabels checks labels (a VM's, a host's, a selector of them):
// at most MaxLabels, keys of 1-63 letters, digits, '.', '_', '/' or '-',
// values of at most MaxLabelLen. Errors name field.
func ValidateLabels(field string, labels map[string]string) error {
	if len(labels) > MaxLabels {
		return api.BadRequest("%s: %d labels is more than %d", field, len(labels), MaxLabels)
	}
	for k, v := range labels {
		if !labelKeyRE.MatchString(k) {
			return api.BadRequest("%s: key %q must be 1-63 letters, digits, '.', '_', '/' or '-'", field, k)
		}
		if len(v) > MaxLabelLen {
			return api.BadRequest("%s.%s: value longer than %d characters", field, k, MaxLabelLen)
		}
	}
	return nil
}

// validatePlacement checks where a cluster may place the VM: a host
// selector of host labels, an anti-affinity group.
func validatePlacement(p *api.Placement) error {
	if p == nil {
		return nil
	}
	if err := ValidateLabels("placement.hostSelector", p.HostSelector); err != nil {
		return err
	}
	if p.AntiAffinity != "" && !labelKeyRE.MatchString(p.AntiAffinity) {
		return api.BadRequest("placement.antiAffinity: %q must be 1-63 letters, digits, '.', '_', '/' or '-' (a group name, e.g. web)", p.AntiAffinity)
	}
	return nil
}

// validateGraphics checks the graphical console: none, or VNC.
func validateGraphics(g string) error {
	if g != "" && g != api.GraphicsVNC {
		return api.BadRequest("graphics: %q is not vnc (the one graphical console godwit gives; leave graphics out for none)", g)
	}
	return nil
}

// graphicsName says a spec's graphics in words: none, or vnc.
func graphicsName(g string) string {
	if g == "" {
		return "none"
	}
	return g
}

// validateHA checks the HA policy. A VM the cluster restarts is started
// by the cluster only: libvirt's autostart would start it on a host that
// lost it (whose libvirtd restarts) while another host runs it.
func validateHA(s api.VMSpec) error {
	switch s.HA {
	case "", api.HAOff:
		return nil
	case api.HARestart:
	default:
		return api.BadRequest("ha: %q is not restart or off", s.HA)
	}
	if s.Autostart {
		return api.BadRequest("ha: restart VMs are started by the cluster, never by libvirt's autostart (which could start one on a host that lost it while another host runs it): drop autostart")
	}
	return nil
}

// haDisks refuses ha: restart for a VM with a disk on a pool that is not
// shared: another host could not open it.
func (s *Service) haDisks(ctx context.Context, spec api.VMSpec, pools map[string]string) error {
	if !HARestart(spec) {
		return nil
	}
	for disk, pool := range pools {
		shared := false
		if s.shared != nil {
			var err error
			if shared, err = s.shared.IsShared(ctx, pool); err != nil {
				return err
			}
		}
		if !shared {
			return api.BadRequest("ha: restart needs every disk on a shared pool (one every host sees at the same path), and disk %s is on pool %s, which is not marked shared (godwit pool create --shared, or the daemon's --pool-shared)", disk, pool)
		}
	}
	return nil
}

// HARestart says whether the cluster restarts the VM elsewhere when its
// host is lost.
func HARestart(s api.VMSpec) bool { return s.HA == api.HARestart }

// validateDisk checks one disk: a blank disk (size), an image (overlay
// or full copy), or an existing volume.
func validateDisk(field string, d api.Disk) error {
	if d.Image != "" && d.Volume != "" {
		return api.BadRequest("%s: image and volume exclude each other", field)
	}
	if d.Image == "" && d.Volume == "" && d.Size == 0 {
		return api.BadRequest("%s: needs a size (e.g. size: 10GiB), an image or a volume", field)
	}
	if d.Size != 0 && d.Size < MinDiskSize {
		return api.BadRequest("%s.size: %s is below the minimum of %s (did you forget the unit?)", field, d.Size.Human(), MinDiskSize)
	}
	if d.Size > MaxDiskSize {
		return api.BadRequest("%s.size: %s is above the maximum of %s", field, d.Size.Human(), MaxDiskSize)
	}
	if d.Image != "" {
		if image.IsCatalogName(d.Image) {
			if strings.Contains(d.Image, "/") {
				return api.BadRequest("%s.image: %q is a relative path; a file must be an absolute path, a catalog image is named without '/'", field, d.Image)
			}
			if err := image.ValidateName(field+".image", d.Image); err != nil {
				return err
			}
		} else if filepath.Clean(d.Image) != d.Image {
			return api.BadRequest("%s.image: %q is not a clean absolute path", field, d.Image)
		}
	}
	switch d.Clone {
	case "", "overlay":
	case "full":
		if d.Image == "" {
			return api.BadRequest("%s.clone: full copies an image; the disk has none", field)
		}
	default:
		return api.BadRequest("%s.clone: %q is not overlay or full", field, d.Clone)
	}
	if d.Clone != "" && d.Image == "" {
		return api.BadRequest("%s.clone: needs an image", field)
	}
	if d.Volume != "" {
		if _, _, err := storage.SplitVolume(field+".volume", d.Volume); err != nil {
			return err
		}
		if d.Size != 0 {
			return api.BadRequest("%s.size: a volume disk has the volume's size (godwit volume resize grows it)", field)
		}
	}
	return nil
}

func validateBoot(b *api.Boot) error {
	if b == nil {
		return nil
	}
	if b.Image != "" {
		if b.Kernel != "" || b.Initrd != "" || b.Firmware != "" {
			return api.BadRequest("boot.image: boots the image's own kernel and initrd; kernel, initrd and firmware exclude it")
		}
		if err := image.ValidateName("boot.image", b.Image); err != nil {
			return err
		}
	}
	if b.Kernel != "" && b.Firmware != "" {
		return api.BadRequest("boot: kernel and firmware exclude each other (direct kernel boot, or firmware from the disk)")
	}
	if b.Kernel == "" && b.Image == "" && (b.Initrd != "" || b.Cmdline != "") {
		return api.BadRequest("boot: initrd and cmdline need boot.kernel (or boot.image)")
	}
	if b.Firmware != "" && b.Firmware != "bios" && b.Firmware != "uefi" {
		return api.BadRequest("boot.firmware: %q is not bios or uefi", b.Firmware)
	}
	for field, p := range map[string]string{"boot.kernel": b.Kernel, "boot.initrd": b.Initrd} {
		if p != "" && !filepath.IsAbs(p) {
			return api.BadRequest("%s: %q must be an absolute path on the host", field, p)
		}
	}
	if strings.ContainsAny(b.Cmdline, "\n\x00") {
		return api.BadRequest("boot.cmdline: must be one line")
	}
	return nil
}

// hostLimits checks the spec against this host: CPUs, memory, files.
func hostLimits(s api.VMSpec, h hypervisor.HostInfo) error {
	if h.CPUs > 0 && s.CPUs > h.CPUs {
		return api.BadRequest("cpus: %d is more than this host's %d CPUs", s.CPUs, h.CPUs)
	}
	if h.MaxVCPUs > 0 && s.CPUs > h.MaxVCPUs {
		return api.BadRequest("cpus: %d is more than the %d vCPUs QEMU allows", s.CPUs, h.MaxVCPUs)
	}
	if h.MemoryBytes > 0 && uint64(s.Memory) > h.MemoryBytes {
		return api.BadRequest("memory: %s is more than this host's %s", s.Memory.Human(), api.Size(h.MemoryBytes).Human())
	}
	return nil
}

// resolvedDisk is a spec disk with what the host says about its image
// or volume.
type resolvedDisk struct {
	api.Disk
	Capacity      uint64
	BackingPath   string // the image file: backing file, or source of a full copy
	BackingFormat string
	ImageName     string // the catalog image, if any
	// An existing volume (spec volume:).
	Pool, VolumeName, Path, Format string
}

// resolveDisks checks images and volumes and settles each disk's
// capacity. vm is the VM the disks are for (its own volumes may be in use
// by it: apply).
func (s *Service) resolveDisks(ctx context.Context, vm string, disks []api.Disk) ([]resolvedDisk, error) {
	out := make([]resolvedDisk, 0, len(disks))
	for i, d := range disks {
		field := fmt.Sprintf("disks[%d]", i)
		r := resolvedDisk{Disk: d, Capacity: uint64(d.Size)}
		switch {
		case d.Volume != "":
			pool, vol, err := storage.SplitVolume(field+".volume", d.Volume)
			if err != nil {
				return nil, err
			}
			info, err := s.hv.VolumeInfo(ctx, pool, vol)
			if errors.Is(err, hypervisor.ErrNotFound) {
				return nil, api.BadRequest("%s.volume: %s: no such volume (godwit volume list shows them)", field, d.Volume)
			}
			if err != nil {
				return nil, mapHypervisorError(err)
			}
			users, err := s.VolumeUsers(ctx, pool, vol)
			if err != nil {
				return nil, err
			}
			for _, u := range users {
				if u != vm {
					return nil, api.Conflict("%s.volume: %s is already a disk of vm %s", field, d.Volume, u)
				}
			}
			for _, o := range out {
				if o.Pool == pool && o.VolumeName == vol {
					return nil, api.BadRequest("%s.volume: %s is listed twice", field, d.Volume)
				}
			}
			r.Pool, r.VolumeName, r.Path, r.Capacity = pool, vol, info.Path, info.Capacity
			r.Format = info.Format
			if r.Format != "raw" {
				r.Format = "qcow2"
			}
		case d.Image != "" && image.IsCatalogName(d.Image):
			if s.cat == nil {
				return nil, api.BadRequest("%s.image: this daemon has no image catalog", field)
			}
			img, err := s.cat.Resolve(ctx, d.Image)
			if err != nil {
				if api.Status(err) == 404 {
					return nil, api.BadRequest("%s.image: %v; a file must be an absolute path", field, err)
				}
				return nil, err
			}
			r.BackingPath, r.BackingFormat, r.ImageName = img.Path, img.Format, img.Name
			if err := settleSize(field, &r, d, img.VirtualSize); err != nil {
				return nil, err
			}
		case d.Image != "":
			info, err := s.img.Inspect(ctx, d.Image)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				return nil, api.BadRequest("%s.image: %s: no such file on this host", field, d.Image)
			case errors.Is(err, image.ErrNotImage):
				return nil, api.BadRequest("%s.image: %v", field, err)
			case err != nil:
				return nil, api.BadRequest("%s.image: %v", field, err)
			}
			if info.Format != "qcow2" && info.Format != "raw" {
				return nil, api.BadRequest("%s.image: %s is a %s image; only qcow2 and raw can back a disk", field, d.Image, info.Format)
			}
			r.BackingPath, r.BackingFormat = d.Image, info.Format
			if err := settleSize(field, &r, d, info.VirtualSize); err != nil {
				return nil, err
			}
		}
		out = append(out, r)
	}
	return out, nil
}

func settleSize(field string, r *resolvedDisk, d api.Disk, imageSize uint64) error {
	if d.Size == 0 {
		r.Capacity = imageSize
	} else if uint64(d.Size) < imageSize {
		return api.BadRequest("%s.size: %s is smaller than the image's %s (disks can grow, never shrink)",
			field, d.Size.Human(), api.Size(imageSize).Human())
	}
	return nil
}

// diskTarget names the n-th virtio disk: vda, vdb, ... vdt.
func diskTarget(n int) string { return "vd" + string(rune('a'+n)) }

// freeTarget is the first virtio target no disk has.
func freeTarget(disks []api.VMDisk) string {
	used := map[string]bool{}
	for _, d := range disks {
		used[d.Target] = true
	}
	for n := 0; n < 26; n++ {
		if t := diskTarget(n); !used[t] {
			return t
		}
	}
	return ""
}

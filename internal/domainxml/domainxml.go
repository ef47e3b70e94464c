// Package domainxml turns a validated VM spec into libvirt domain XML. It is
// pure data: no libvirt connection, no files. Each concern (cpu, memory,
// boot, disks, console...) is one small step; golden files in testdata/ pin
// the output.
//
// Validation and defaults belong to internal/vm; Build trusts its input.
package domainxml

import (
	"encoding/xml"
	"fmt"
	"strings"

	"libvirt.org/go/libvirtxml"

	"github.com/godwit-project/godwit/api"
)

// MetadataNS is the XML namespace of godwit's <metadata> element.
const MetadataNS = "https://godwit.dev/xmlns/vm/1"

// Input is everything Build needs: the spec plus what the daemon resolved.
type Input struct {
	Spec api.VMSpec
	UUID string
	// VirtType is the libvirt domain type: "kvm" or "qemu" (TCG).
	VirtType string
	// Disks are the spec's disks as created, in spec order.
	Disks []Disk
	// ConsoleLog is the console log file; empty for none.
	ConsoleLog string
	// Seed is the cloud-init seed ISO, attached as a CD-ROM; empty for none.
	Seed string
	// Owner identifies the daemon that manages the domain (its metadata).
	Owner string
	// NICs are the network interfaces, in spec order.
	NICs []NIC
}

// Disk is a created disk: where its file is and how the guest sees it.
type Disk struct {
	Name   string
	Path   string // a file, or a block device under /dev (LVM volumes)
	Format string // qcow2 or raw
	Target string // vda, vdb...
	// Tuning from the spec's disk (tuning.go); empty: godwit's defaults.
	Cache, IO, Discard string
	IOThread           int
	Limits             *api.DiskLimits
}

type step struct {
	name string
	fn   func(in *Input, d *libvirtxml.Domain) error
}

// steps run in order; each fills one part of the domain.
var steps = []step{
	{"basics", basics},
	{"cpu", cpu},
	{"cpu layout", cpuLayout},
	{"cputune", cputune},
	{"memory", memory},
	{"numatune", numatune},
	{"memory backing", memoryBacking},
	{"iothreads", iothreads},
	{"boot", boot},
	{"features", features},
	{"disks", disks},
	{"nics", nics},
	{"seed", seed},
	{"console", console},
	{"graphics", graphics},
	{"devices", devices},
	{"tuned devices", tuneDevices},
	{"metadata", metadata},
}

// Build returns the domain for in.
func Build(in Input) (*libvirtxml.Domain, error) {
	d := &libvirtxml.Domain{Devices: &libvirtxml.DomainDeviceList{}}
	for _, s := range steps {
		if err := s.fn(&in, d); err != nil {
			return nil, fmt.Errorf("domain XML, %s: %w", s.name, err)
		}
	}
	return d, nil
}

// Marshal returns the domain XML for in.
func Marshal(in Input) (string, error) {
	d, err := Build(in)
	if err != nil {
		return "", err
	}
	return d.Marshal()
}

func basics(in *Input, d *libvirtxml.Domain) error {
	if in.VirtType != "kvm" && in.VirtType != "qemu" {
		return fmt.Errorf("virt type %q is neither kvm nor qemu", in.VirtType)
	}
	d.Type = in.VirtType
	d.Name = in.Spec.Name
	d.UUID = in.UUID
	d.OnPoweroff, d.OnReboot, d.OnCrash = "destroy", "restart", "destroy"
	d.Clock = &libvirtxml.DomainClock{Offset: "utc"}
	return nil
}

func cpu(in *Input, d *libvirtxml.Domain) error {
	d.VCPU = &libvirtxml.DomainVCPU{Placement: "static", Value: uint(api.MaxCPUsOf(in.Spec))}
	if in.Spec.MaxCPUs > in.Spec.CPUs {
		// The rest are hot-added later (vm set --cpus).
		d.VCPU.Current = uint(in.Spec.CPUs)
	}
	d.CPU = cpuModel(in)
	return nil
}

func memory(in *Input, d *libvirtxml.Domain) error {
	// <memory> is the most the guest can have; the balloon gives back
	// what is above currentMemory.
	d.Memory = &libvirtxml.DomainMemory{Value: uint(api.MaxMemoryOf(in.Spec) / api.KiB), Unit: "KiB"}
	d.CurrentMemory = &libvirtxml.DomainCurrentMemory{Value: uint(in.Spec.Memory / api.KiB), Unit: "KiB"}
	return nil
}

func boot(in *Input, d *libvirtxml.Domain) error {
	// i440fx ("pc"): ACPI PCI hot-plug on the root bus, no root ports needed.
	d.OS = &libvirtxml.DomainOS{Type: &libvirtxml.DomainOSType{Arch: "x86_64", Machine: "pc", Type: "hvm"}}
	b := in.Spec.Boot
	switch {
	case b != nil && b.Kernel != "":
		d.OS.Kernel, d.OS.Initrd, d.OS.Cmdline = b.Kernel, b.Initrd, b.Cmdline
	case b != nil && b.Firmware == "uefi":
		d.OS.Firmware = "efi"
		d.OS.BootDevices = []libvirtxml.DomainBootDevice{{Dev: "hd"}}
	default:
		d.OS.BootDevices = []libvirtxml.DomainBootDevice{{Dev: "hd"}}
	}
	return nil
}

func features(in *Input, d *libvirtxml.Domain) error {
	// ACPI is what makes `vm stop` (power button) and reboot work.
	d.Features = &libvirtxml.DomainFeatureList{ACPI: &libvirtxml.DomainFeature{}, APIC: &libvirtxml.DomainFeatureAPIC{}}
	return nil
}

func disks(in *Input, d *libvirtxml.Domain) error {
	for _, disk := range in.Disks {
		dev, err := DiskDevice(disk)
		if err != nil {
			return err
		}
		d.Devices.Disks = append(d.Devices.Disks, dev)
	}
	return nil
}

// DiskDevice is one virtio disk. Hot-plug sends the same device that a
// redefine writes, so an attached disk looks the same either way.
func DiskDevice(disk Disk) (libvirtxml.DomainDisk, error) {
	if disk.Path == "" || disk.Target == "" {
		return libvirtxml.DomainDisk{}, fmt.Errorf("disk %q has no path or target", disk.Name)
	}
	format := disk.Format
	if format == "" {
		format = "qcow2"
	}
	src := &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: disk.Path}}
	if strings.HasPrefix(disk.Path, "/dev/") {
		src = &libvirtxml.DomainDiskSource{Block: &libvirtxml.DomainDiskSourceBlock{Dev: disk.Path}}
	}
	dev := libvirtxml.DomainDisk{
		Device: "disk",
		// cache=none: the page cache is not shared between hosts, so
		// migration with shared storage is only safe without it.
		Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: format, Cache: "none", Discard: "unmap"},
		Source: src,
		Target: &libvirtxml.DomainDiskTarget{Dev: disk.Target, Bus: "virtio"},
		Serial: disk.Name,
	}
	diskTuning(disk, &dev)
	return dev, nil
}

// DiskXML is DiskDevice as XML, for hot-plug.
func DiskXML(disk Disk) (string, error) {
	dev, err := DiskDevice(disk)
	if err != nil {
		return "", err
	}
	return dev.Marshal()
}

// SeedTarget is where the cloud-init seed CD-ROM sits: IDE, which every
// i440fx machine has and every guest kernel reads.
const SeedTarget = "hdc"

func seed(in *Input, d *libvirtxml.Domain) error {
	if in.Seed == "" {
		return nil
	}
	d.Devices.Disks = append(d.Devices.Disks, libvirtxml.DomainDisk{
		Device:   "cdrom",
		Driver:   &libvirtxml.DomainDiskDriver{Name: "qemu", Type: "raw"},
		Source:   &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: in.Seed}},
		Target:   &libvirtxml.DomainDiskTarget{Dev: SeedTarget, Bus: "ide"},
		ReadOnly: &libvirtxml.DomainDiskReadOnly{},
	})
	return nil
}

func console(in *Input, d *libvirtxml.Domain) error {
	port := uint(0)
	serial := libvirtxml.DomainSerial{
		Source: &libvirtxml.DomainChardevSource{Pty: &libvirtxml.DomainChardevSourcePty{}},
		Target: &libvirtxml.DomainSerialTarget{Port: &port},
	}
	if in.ConsoleLog != "" {
		serial.Log = &libvirtxml.DomainChardevLog{File: in.ConsoleLog, Append: "on"}
	}
	d.Devices.Serials = []libvirtxml.DomainSerial{serial}
	d.Devices.Consoles = []libvirtxml.DomainConsole{{
		Source: &libvirtxml.DomainChardevSource{Pty: &libvirtxml.DomainChardevSourcePty{}},
		Target: &libvirtxml.DomainConsoleTarget{Type: "serial", Port: &port},
	}}
	return nil
}

func devices(in *Input, d *libvirtxml.Domain) error {
	// A channel for qemu-guest-agent (guest addresses, quiesce), entropy for
	// guests that would otherwise wait for it at boot, and no balloon.
	d.Devices.Channels = []libvirtxml.DomainChannel{{
		Source: &libvirtxml.DomainChardevSource{UNIX: &libvirtxml.DomainChardevSourceUNIX{Mode: "bind"}},
		Target: &libvirtxml.DomainChannelTarget{VirtIO: &libvirtxml.DomainChannelTargetVirtIO{Name: "org.qemu.guest_agent.0"}},
	}}
	d.Devices.RNGs = []libvirtxml.DomainRNG{{
		Model:   "virtio",
		Backend: &libvirtxml.DomainRNGBackend{Random: &libvirtxml.DomainRNGBackendRandom{Device: "/dev/urandom"}},
	}}
	d.Devices.MemBalloon = &libvirtxml.DomainMemBalloon{Model: "none"}
	return nil
}

// Metadata is godwit's record inside the domain XML, so that `virsh dumpxml`
// shows who manages the domain.
type Metadata struct {
	XMLName xml.Name `xml:"godwit:vm"`
	NS      string   `xml:"xmlns:godwit,attr"`
	Owner   string   `xml:"godwit:owner"`
}

func metadata(in *Input, d *libvirtxml.Domain) error {
	// Only the owner: labels change live and live in godwit's store.
	m := Metadata{NS: MetadataNS, Owner: in.Owner}
	b, err := xml.Marshal(m)
	if err != nil {
		return err
	}
	d.Metadata = &libvirtxml.DomainMetadata{XML: string(b)}
	return nil
}

// OwnerOf reads the owner from a domain's XML; "" when godwit did not make
// it. libvirt may rewrite prefixes, so it matches on the namespace.
func OwnerOf(domainXML string) string {
	dec := xml.NewDecoder(strings.NewReader(domainXML))
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Space == MetadataNS && se.Name.Local == "owner" {
			var owner string
			if dec.DecodeElement(&owner, &se) != nil {
				return ""
			}
			return strings.TrimSpace(owner)
		}
	}
}

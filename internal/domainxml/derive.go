package domainxml

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strings"

	"libvirt.org/go/libvirtxml"

	"github.com/godwit-project/godwit/api"
)

// Derived is what godwit reads from a domain it did not define (vm
// adopt): what a VM spec can say of it, the disks and NICs as the domain
// has them, and what the spec cannot say. Adopting changes nothing in the
// domain, so what the spec cannot say stays there as it is; Kept lists it.
type Derived struct {
	Name   string
	UUID   string
	CPUs   int
	Memory api.Size
	// Boot is nil for BIOS from the first disk.
	Boot  *api.Boot
	Disks []DerivedDisk
	NICs  []DerivedNIC
	// ConsoleLog is the serial console's log file, if it has one.
	ConsoleLog string
	// Graphics is the spec's graphics: vnc for a VNC display on a unix
	// socket.
	Graphics string
	// Kept is each part of the domain the spec does not express, as XML,
	// one element each (devices one by one): a VNC display on a TCP port,
	// a disk's cache mode, a CD-ROM...
	Kept []string
}

// DerivedDisk is a disk (device "disk") of the domain.
type DerivedDisk struct {
	Name   string // the serial when it is a valid disk name, else the target
	Target string
	Bus    string
	Path   string // a file, or a block device
	Format string // qcow2, raw...
}

// DerivedNIC is a network interface on a libvirt network or a bridge.
type DerivedNIC struct {
	MAC     string
	Model   string
	Network string // the libvirt network's name, for type network
	Bridge  string // the host bridge, for type bridge
}

var diskNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`) // as internal/vm

// Derive reads a domain's XML (its persistent definition) as a spec, its
// devices, and what is kept as it is.
func Derive(domainXML string) (Derived, error) {
	var d libvirtxml.Domain
	if err := d.Unmarshal(domainXML); err != nil {
		return Derived{}, fmt.Errorf("domain XML: %w", err)
	}
	out := Derived{Name: d.Name, UUID: d.UUID}
	for _, s := range deriveSteps {
		if err := s.fn(&d, &out); err != nil {
			return Derived{}, fmt.Errorf("domain XML, %s: %w", s.name, err)
		}
	}
	kept, err := residue(&d)
	if err != nil {
		return Derived{}, err
	}
	out.Kept = append(out.Kept, kept...)
	return out, nil
}

// deriveSteps each read one part of the domain into the result and clear
// what they understood; what is left over is kept as it is.
var deriveSteps = []struct {
	name string
	fn   func(d *libvirtxml.Domain, out *Derived) error
}{
	{"basics", deriveBasics},
	{"cpu", deriveCPU},
	{"memory", deriveMemory},
	{"boot", deriveBoot},
	{"disks", deriveDisks},
	{"nics", deriveNICs},
	{"console", deriveConsole},
	{"graphics", deriveGraphics},
	{"devices", deriveDevices},
}

func deriveBasics(d *libvirtxml.Domain, out *Derived) error {
	if d.Name == "" {
		return fmt.Errorf("no name")
	}
	d.Type, d.ID, d.Name, d.UUID = "", nil, "", ""
	if d.Metadata != nil {
		// Other programs' metadata, as they wrote it (encoding/xml
		// would mangle their namespaces); godwit's own is not kept.
		for _, el := range topElements(d.Metadata.XML) {
			if !strings.Contains(el, MetadataNS) {
				out.Kept = append(out.Kept, "<metadata>"+compact(el)+"</metadata>")
			}
		}
		d.Metadata = nil
	}
	if d.OnPoweroff == "destroy" {
		d.OnPoweroff = ""
	}
	if d.OnReboot == "restart" {
		d.OnReboot = ""
	}
	if d.OnCrash == "destroy" {
		d.OnCrash = ""
	}
	if d.Clock != nil && d.Clock.Offset == "utc" && len(d.Clock.Timer) == 0 && d.Clock.Basis == "" && d.Clock.Adjustment == "" && d.Clock.TimeZone == "" {
		d.Clock = nil
	}
	if d.Resource != nil && d.Resource.Partition == "/machine" {
		r := *d.Resource
		r.Partition = ""
		if empty(r) {
			d.Resource = nil
		}
	}
	if f := d.Features; f != nil {
		if f.APIC != nil && f.APIC.EOI == "" {
			f.APIC = nil
		}
		f.ACPI = nil
		if empty(*f) {
			d.Features = nil
		}
	}
	if d.CPU != nil && d.CPU.Mode == "host-model" {
		c := *d.CPU
		c.Mode, c.Check, c.Migratable = "", "", ""
		if empty(c) {
			d.CPU = nil
		}
	}
	return nil
}

func deriveCPU(d *libvirtxml.Domain, out *Derived) error {
	if d.VCPU == nil {
		out.CPUs = 1
		return nil
	}
	out.CPUs = int(d.VCPU.Value)
	v := d.VCPU
	if (v.Placement == "" || v.Placement == "static") && (v.Current == 0 || v.Current == v.Value) && v.CPUSet == "" {
		d.VCPU = nil
	}
	return nil
}

var memoryUnits = map[string]api.Size{
	"": api.KiB, "b": 1, "bytes": 1, "k": api.KiB, "kib": api.KiB, "kb": 1000,
	"m": api.MiB, "mib": api.MiB, "mb": 1000 * 1000, "g": api.GiB, "gib": api.GiB, "gb": 1000 * 1000 * 1000,
	"t": api.TiB, "tib": api.TiB, "tb": 1000 * 1000 * 1000 * 1000,
}

func memorySize(value uint, unit string) (api.Size, error) {
	m, ok := memoryUnits[strings.ToLower(unit)]
	if !ok {
		return 0, fmt.Errorf("memory unit %q", unit)
	}
	return api.Size(value) * m, nil
}

func deriveMemory(d *libvirtxml.Domain, out *Derived) error {
	if d.Memory == nil {
		return fmt.Errorf("no memory")
	}
	mem, err := memorySize(d.Memory.Value, d.Memory.Unit)
	if err != nil {
		return err
	}
	out.Memory = mem
	if d.Memory.DumpCore == "" {
		d.Memory = nil
	}
	if c := d.CurrentMemory; c != nil {
		if cur, err := memorySize(c.Value, c.Unit); err == nil && cur == mem {
			d.CurrentMemory = nil
		}
	}
	return nil
}

func deriveBoot(d *libvirtxml.Domain, out *Derived) error {
	o := d.OS
	if o == nil {
		return nil
	}
	if t := o.Type; t != nil && (t.Type == "hvm" || t.Type == "") && (t.Arch == "" || t.Arch == "x86_64") &&
		(t.Machine == "" || t.Machine == "pc" || strings.HasPrefix(t.Machine, "pc-i440fx")) {
		o.Type = nil
	}
	switch {
	case o.Kernel != "":
		out.Boot = &api.Boot{Kernel: o.Kernel, Initrd: o.Initrd, Cmdline: o.Cmdline}
		o.Kernel, o.Initrd, o.Cmdline = "", "", ""
	case o.Firmware == "efi" || (o.Loader != nil && (o.Loader.Type == "pflash" || strings.Contains(strings.ToLower(o.Loader.Path), "ovmf"))):
		out.Boot = &api.Boot{Firmware: "uefi"}
		o.Firmware = ""
	}
	if len(o.BootDevices) == 1 && o.BootDevices[0].Dev == "hd" {
		o.BootDevices = nil
	}
	if empty(*o) {
		d.OS = nil
	}
	return nil
}

func deriveDisks(d *libvirtxml.Domain, out *Derived) error {
	if d.Devices == nil {
		return nil
	}
	var rest []libvirtxml.DomainDisk
	for _, disk := range d.Devices.Disks {
		src := disk.Source
		if (disk.Device != "" && disk.Device != "disk") || src == nil || (src.File == nil && src.Block == nil) || disk.Target == nil || disk.Target.Dev == "" {
			rest = append(rest, disk) // CD-ROMs, network disks...: kept whole
			continue
		}
		dd := DerivedDisk{Target: disk.Target.Dev, Bus: disk.Target.Bus, Format: "raw"}
		if src.File != nil {
			dd.Path = src.File.File
		} else {
			dd.Path = src.Block.Dev
		}
		if disk.Driver != nil && disk.Driver.Type != "" {
			dd.Format = disk.Driver.Type
		}
		dd.Name = dd.Target
		if diskNameRE.MatchString(disk.Serial) {
			dd.Name = disk.Serial
		}
		out.Disks = append(out.Disks, dd)

		// What is left of the disk once the spec has said it.
		left := disk
		left.Device, left.Serial, left.Alias, left.Address, left.BackingStore = "", "", nil, nil, nil
		s := *src
		s.File, s.Block, s.Index = nil, nil, 0
		left.Source = nil
		if !empty(s) {
			left.Source = &s
		}
		if left.Driver != nil {
			drv := *left.Driver
			drv.Name, drv.Type = "", ""
			if drv.Cache == "none" && drv.Discard == "unmap" {
				drv.Cache, drv.Discard = "", "" // what godwit's own disks have
			}
			left.Driver = nil
			if !empty(drv) {
				left.Driver = &drv
			}
		}
		tgt := *disk.Target
		tgt.Dev = ""
		if tgt.Bus == "virtio" {
			tgt.Bus = ""
		}
		left.Target = nil
		if !empty(tgt) || !empty(left) {
			tgt.Dev = disk.Target.Dev // to say which disk
			left.Target = &tgt
			rest = append(rest, left)
		}
	}
	d.Devices.Disks = rest
	return nil
}

func deriveNICs(d *libvirtxml.Domain, out *Derived) error {
	if d.Devices == nil {
		return nil
	}
	var rest []libvirtxml.DomainInterface
	for _, i := range d.Devices.Interfaces {
		src := i.Source
		if src == nil || (src.Network == nil && src.Bridge == nil) || i.MAC == nil {
			rest = append(rest, i) // user networking, macvtap...: kept whole
			continue
		}
		n := DerivedNIC{MAC: i.MAC.Address, Model: "virtio"}
		if i.Model != nil && i.Model.Type != "" {
			n.Model = i.Model.Type
		}
		left := i
		left.Alias, left.Address, left.Target, left.Model, left.MAC = nil, nil, nil, nil, nil
		s := *src
		if src.Network != nil {
			n.Network = src.Network.Network
			net := *src.Network
			net.Network, net.Bridge, net.PortID = "", "", ""
			s.Network = nil
			if !empty(net) {
				s.Network = &net
			}
		} else {
			n.Bridge = src.Bridge.Bridge
			s.Bridge = nil
		}
		left.Source = nil
		if !empty(s) {
			left.Source = &s
		}
		out.NICs = append(out.NICs, n)
		if !empty(left) {
			left.MAC = i.MAC // to say which NIC
			rest = append(rest, left)
		}
	}
	d.Devices.Interfaces = rest
	return nil
}

// deriveConsole takes the serial console on a pty (godwit's console), and
// its log file.
func deriveConsole(d *libvirtxml.Domain, out *Derived) error {
	if d.Devices == nil {
		return nil
	}
	var serials []libvirtxml.DomainSerial
	for _, s := range d.Devices.Serials {
		if len(serials) == 0 && out.ConsoleLog == "" && s.Source != nil && s.Source.Pty != nil && isPort0(s.Target) {
			if s.Log != nil {
				out.ConsoleLog = s.Log.File
			}
			left := s
			left.Source, left.Log, left.Alias, left.Address, left.Target = nil, nil, nil, nil, nil
			if t := s.Target; t != nil {
				tt := *t
				tt.Port = nil
				if tt.Type == "isa-serial" {
					tt.Type = ""
				}
				if tt.Model != nil && tt.Model.Name == "isa-serial" {
					tt.Model = nil
				}
				if !empty(tt) {
					left.Target = &tt
				}
			}
			if empty(left) {
				continue
			}
		}
		serials = append(serials, s)
	}
	d.Devices.Serials = serials
	var consoles []libvirtxml.DomainConsole
	for _, c := range d.Devices.Consoles {
		if c.Target != nil && (c.Target.Type == "serial" || c.Target.Type == "") && c.Source != nil && c.Source.Pty != nil {
			continue // the serial console's twin
		}
		consoles = append(consoles, c)
	}
	d.Devices.Consoles = consoles
	return nil
}

func isPort0(t *libvirtxml.DomainSerialTarget) bool {
	return t == nil || t.Port == nil || *t.Port == 0
}

// deriveDevices clears the devices libvirt adds by itself and those godwit
// gives every VM (the guest agent's channel, an entropy source, no
// balloon); the rest is kept.
func deriveDevices(d *libvirtxml.Domain, out *Derived) error {
	dev := d.Devices
	if dev == nil {
		return nil
	}
	dev.Emulator = ""
	var ctrls []libvirtxml.DomainController
	for _, c := range dev.Controllers {
		switch {
		case c.Type == "pci", c.Type == "ide", c.Type == "sata", c.Type == "fdc", c.Type == "virtio-serial" && c.Model == "":
		case c.Type == "usb" && (c.Model == "" || c.Model == "piix3-uhci"):
		default:
			ctrls = append(ctrls, c)
		}
	}
	dev.Controllers = ctrls
	var inputs []libvirtxml.DomainInput
	for _, in := range dev.Inputs {
		if in.Bus == "ps2" && (in.Type == "mouse" || in.Type == "keyboard") {
			continue
		}
		inputs = append(inputs, in)
	}
	dev.Inputs = inputs
	var chans []libvirtxml.DomainChannel
	for _, c := range dev.Channels {
		if c.Target != nil && c.Target.VirtIO != nil && c.Target.VirtIO.Name == "org.qemu.guest_agent.0" {
			continue
		}
		chans = append(chans, c)
	}
	dev.Channels = chans
	var rngs []libvirtxml.DomainRNG
	for _, r := range dev.RNGs {
		if r.Model == "virtio" && r.Backend != nil && r.Backend.Random != nil && r.Backend.Random.Device == "/dev/urandom" && r.Rate == nil && r.Driver == nil {
			continue
		}
		rngs = append(rngs, r)
	}
	dev.RNGs = rngs
	if dev.MemBalloon != nil && dev.MemBalloon.Model == "none" {
		dev.MemBalloon = nil
	}
	if empty(*dev) {
		d.Devices = nil
	}
	return nil
}

// empty reports whether v (a struct, or a pointer to one) has nothing
// set but its XMLName.
func empty(v any) bool {
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return true
		}
		rv = rv.Elem()
	}
	for i := 0; i < rv.NumField(); i++ {
		if rv.Type().Field(i).Name != "XMLName" && !rv.Field(i).IsZero() {
			return false
		}
	}
	return true
}

// topElements returns each top-level element of an XML fragment as it is
// written there.
func topElements(fragment string) []string {
	dec := xml.NewDecoder(strings.NewReader(fragment))
	var out []string
	depth, start := 0, int64(0)
	for {
		off := dec.InputOffset()
		tok, err := dec.RawToken()
		if err != nil {
			return out
		}
		switch tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				start = off
			}
			depth++
		case xml.EndElement:
			depth--
			if depth == 0 {
				out = append(out, fragment[start:dec.InputOffset()])
			}
		}
	}
}

var spaceBetweenTags = regexp.MustCompile(`>\s+<`)

// compact drops the whitespace between tags.
func compact(s string) string { return spaceBetweenTags.ReplaceAllString(strings.TrimSpace(s), "><") }

var (
	addressRE = regexp.MustCompile(`<(address|alias)\b[^>]*>(</(address|alias)>)?`)
	emptyRE   = regexp.MustCompile(`<([a-zA-Z:_-]+)((?:\s[^<>]*)?)></([a-zA-Z:_-]+)>`)
)

// residue is what the derivation left in the domain: each child element
// of <domain>, and each device, as compact XML.
func residue(d *libvirtxml.Domain) ([]string, error) {
	b, err := xml.Marshal(d)
	if err != nil {
		return nil, err
	}
	dec := xml.NewDecoder(bytes.NewReader(b))
	var out []string
	depth := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 2 && t.Name.Local == "devices" {
				continue
			}
			// Children of <domain> but <devices>, and devices (only
			// <devices> is entered, so depth 3 is inside it).
			if depth == 2 || depth == 3 {
				s, err := subtree(dec, t)
				if err != nil {
					return nil, err
				}
				depth--
				if s != "" {
					out = append(out, s)
				}
			}
		case xml.EndElement:
			depth--
		}
	}
	return out, nil
}

// subtree re-encodes the element that start opens, compactly, without
// libvirt's device addresses and aliases.
func subtree(dec *xml.Decoder, start xml.StartElement) (string, error) {
	var buf bytes.Buffer
	enc := xml.NewEncoder(&buf)
	if err := enc.EncodeToken(start.Copy()); err != nil {
		return "", err
	}
	for depth := 1; depth > 0; {
		tok, err := dec.Token()
		if err != nil {
			return "", err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if len(bytes.TrimSpace(t)) == 0 {
				continue
			}
		}
		if err := enc.EncodeToken(xml.CopyToken(tok)); err != nil {
			return "", err
		}
	}
	if err := enc.Flush(); err != nil {
		return "", err
	}
	s := addressRE.ReplaceAllString(buf.String(), "")
	for {
		t := emptyRE.ReplaceAllStringFunc(s, func(m string) string {
			g := emptyRE.FindStringSubmatch(m)
			if g[1] != g[3] {
				return m
			}
			return "<" + g[1] + g[2] + "/>"
		})
		if t == s {
			break
		}
		s = t
	}
	if s == "<"+start.Name.Local+"/>" {
		return "", nil
	}
	return s, nil
}

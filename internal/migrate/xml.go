package migrate

import (
	"encoding/xml"
	"fmt"

	"libvirt.org/go/libvirtxml"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/domainxml"
)

// rewrite says how a domain's XML changes on the destination.
type rewrite struct {
	disks            []api.MigrationDisk
	nets             map[string]string // source libvirt network -> destination's
	seedFrom, seedTo string            // the cloud-init seed ISO's path
	console          string            // the console log ("" for none)
	boot             *api.Boot         // the kernel and initrd here (nil: as they are)
	owner            string
}

// rewriteXML adapts a VM's domain XML to the destination: disks that were
// copied get their new paths (and lose the source's backing chain: the copy
// is flat), NICs plug into the destination's networks, the seed CD-ROM and
// the console log and the boot files move to the destination's
// directories, and the metadata
// names the destination daemon as the owner (with an owner: an adopted
// domain's metadata stays as it is).
func rewriteXML(domXML string, rw rewrite) (string, error) {
	disks, consoleLog, owner := rw.disks, rw.console, rw.owner
	var d libvirtxml.Domain
	if err := d.Unmarshal(domXML); err != nil {
		return "", fmt.Errorf("parse the VM's domain XML: %w", err)
	}
	if b := rw.boot; b != nil && d.OS != nil && d.OS.Kernel != "" {
		d.OS.Kernel, d.OS.Initrd = b.Kernel, b.Initrd
	}
	if d.Devices != nil {
		for i := range d.Devices.Disks {
			dd := &d.Devices.Disks[i]
			if dd.Device == "cdrom" && rw.seedFrom != "" && dd.Source != nil && dd.Source.File != nil && dd.Source.File.File == rw.seedFrom {
				dd.Source.File.File = rw.seedTo
				continue
			}
			if dd.Target == nil {
				continue
			}
			for _, md := range disks {
				if md.Target != dd.Target.Dev || md.Shared {
					continue
				}
				if md.DestPath == "" {
					return "", fmt.Errorf("disk %s has no destination path", md.Name)
				}
				dd.Source = &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: md.DestPath}}
				dd.BackingStore = nil
			}
		}
		for i := range d.Devices.Interfaces {
			src := d.Devices.Interfaces[i].Source
			if src == nil || src.Network == nil {
				continue
			}
			if to, ok := rw.nets[src.Network.Network]; ok && to != "" {
				src.Network.Network = to
				src.Network.Bridge = "" // the live XML names the source's bridge
			}
		}
		for i := range d.Devices.Serials {
			if d.Devices.Serials[i].Log == nil {
				continue
			}
			if consoleLog == "" {
				d.Devices.Serials[i].Log = nil
			} else {
				d.Devices.Serials[i].Log.File = consoleLog
			}
		}
	}
	if owner == "" {
		return d.Marshal()
	}
	b, err := xml.Marshal(domainxml.Metadata{NS: domainxml.MetadataNS, Owner: owner})
	if err != nil {
		return "", err
	}
	d.Metadata = &libvirtxml.DomainMetadata{XML: string(b)}
	return d.Marshal()
}

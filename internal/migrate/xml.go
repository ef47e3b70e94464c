package migrate

import (
	"encoding/xml"
	"fmt"

	"libvirt.org/go/libvirtxml"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/domainxml"
)

// rewriteXML adapts a VM's domain XML to the destination: disks that were
// copied get their new paths (and lose the source's backing chain: the copy
// is flat), the console log moves to the destination's directory, and the
// metadata names the destination daemon as the owner.
func rewriteXML(domXML string, disks []api.MigrationDisk, consoleLog, owner string) (string, error) {
	var d libvirtxml.Domain
	if err := d.Unmarshal(domXML); err != nil {
		return "", fmt.Errorf("parse the VM's domain XML: %w", err)
	}
	if d.Devices != nil {
		for i := range d.Devices.Disks {
			dd := &d.Devices.Disks[i]
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
	b, err := xml.Marshal(domainxml.Metadata{NS: domainxml.MetadataNS, Owner: owner})
	if err != nil {
		return "", err
	}
	d.Metadata = &libvirtxml.DomainMetadata{XML: string(b)}
	return d.Marshal()
}

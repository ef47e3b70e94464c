package storage

import (
	"fmt"
	"path/filepath"

	golibvirt "github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"

	"github.com/godwit-project/godwit/api"
)

// poolDef is what godwit sends libvirt for a new pool: the XML and how to
// build it.
type poolDef struct {
	XML        string
	Build      bool
	BuildFlags uint32
}

// poolXML turns a validated request into libvirt pool XML. It is pure, so
// unit tests pin what godwit sends for pool types this host cannot run
// (logical needs device-mapper, netfs an NFS client).
func poolXML(req api.PoolCreate) (poolDef, error) {
	x := libvirtxml.StoragePool{Type: req.Type, Name: req.Name}
	target := &libvirtxml.StoragePoolTarget{Path: req.Path}
	def := poolDef{}
	switch req.Type {
	case api.PoolDir:
		target.Permissions = &libvirtxml.StoragePoolTargetPermissions{Mode: "0711"}
		def.Build = true // creates the directory
	case api.PoolFS:
		format := req.Format
		if format == "" {
			format = "auto"
			if req.Build {
				format = "ext4"
			}
		}
		x.Source = &libvirtxml.StoragePoolSource{
			Device: []libvirtxml.StoragePoolSourceDevice{{Path: req.Device}},
			Format: &libvirtxml.StoragePoolSourceFormat{Type: format},
		}
		// Build makes the mount point; with req.Build also the filesystem,
		// but never over one that is there (NO_OVERWRITE).
		def.Build = true
		if req.Build {
			def.BuildFlags = uint32(golibvirt.StoragePoolBuildNoOverwrite)
		}
	case api.PoolLogical:
		vg := req.VG
		if vg == "" {
			vg = req.Name
		}
		x.Source = &libvirtxml.StoragePoolSource{Name: vg, Format: &libvirtxml.StoragePoolSourceFormat{Type: "lvm2"}}
		if req.Device != "" {
			x.Source.Device = []libvirtxml.StoragePoolSourceDevice{{Path: req.Device}}
		}
		if target.Path == "" {
			target.Path = "/dev/" + vg
		}
		// Build runs pvcreate + vgcreate on the device; without one the
		// volume group must exist.
		def.Build = req.Build
		if req.Build {
			def.BuildFlags = uint32(golibvirt.StoragePoolBuildNoOverwrite)
		}
	case api.PoolNetFS:
		x.Source = &libvirtxml.StoragePoolSource{
			Host:   []libvirtxml.StoragePoolSourceHost{{Name: req.Host}},
			Dir:    &libvirtxml.StoragePoolSourceDir{Path: req.Export},
			Format: &libvirtxml.StoragePoolSourceFormat{Type: "nfs"},
		}
		def.Build = true // creates the mount point
	default:
		return def, api.BadRequest("type: %q is not dir, fs, logical or netfs", req.Type)
	}
	target.Path = filepath.Clean(target.Path)
	x.Target = target
	doc, err := x.Marshal()
	if err != nil {
		return def, fmt.Errorf("pool XML: %w", err)
	}
	def.XML = doc
	return def, nil
}

package libvirt

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	golibvirt "github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"

	"github.com/godwit-project/godwit/internal/hypervisor"
)

// EnsurePool makes the pool exist, be active and autostart. A pool of the
// same name elsewhere is an error: godwit never repoints a user's pool.
func (c *Conn) EnsurePool(ctx context.Context, p hypervisor.Pool) (hypervisor.PoolInfo, error) {
	if p.Type == "" {
		p.Type = "dir"
	}
	err := do0(ctx, c, "ensure storage pool "+p.Name, func(l *golibvirt.Libvirt) error {
		pool, err := l.StoragePoolLookupByName(p.Name)
		if err != nil && !isCode(err, golibvirt.ErrNoStoragePool) {
			return err
		}
		if err == nil {
			info, err := poolInfo(l, pool)
			if err != nil {
				return err
			}
			if filepath.Clean(info.Path) != filepath.Clean(p.Path) {
				return fmt.Errorf("storage pool %q exists with path %s, but godwit is configured to use %s (pick another pool name or path)", p.Name, info.Path, p.Path)
			}
		} else {
			x := libvirtxml.StoragePool{
				Type: p.Type, Name: p.Name,
				Target: &libvirtxml.StoragePoolTarget{Path: p.Path, Permissions: &libvirtxml.StoragePoolTargetPermissions{Mode: "0711"}},
			}
			doc, err := x.Marshal()
			if err != nil {
				return err
			}
			if pool, err = l.StoragePoolDefineXML(doc, 0); err != nil {
				return err
			}
			if err := l.StoragePoolBuild(pool, 0); err != nil {
				_ = l.StoragePoolUndefine(pool)
				return err
			}
		}
		active, err := l.StoragePoolIsActive(pool)
		if err != nil {
			return err
		}
		if active == 0 {
			if err := l.StoragePoolCreate(pool, 0); err != nil {
				return err
			}
		} else if err := l.StoragePoolRefresh(pool, 0); err != nil {
			return err
		}
		auto, err := l.StoragePoolGetAutostart(pool)
		if err != nil {
			return err
		}
		if auto == 0 {
			return l.StoragePoolSetAutostart(pool, 1)
		}
		return nil
	})
	if err != nil {
		return hypervisor.PoolInfo{}, err
	}
	return c.PoolInfo(ctx, p.Name)
}

// PoolInfo returns a pool's type, path, state and space.
func (c *Conn) PoolInfo(ctx context.Context, name string) (hypervisor.PoolInfo, error) {
	return do(ctx, c, "get storage pool "+name, func(l *golibvirt.Libvirt) (hypervisor.PoolInfo, error) {
		pool, err := l.StoragePoolLookupByName(name)
		if err != nil {
			return hypervisor.PoolInfo{}, err
		}
		return poolInfo(l, pool)
	})
}

func poolInfo(l *golibvirt.Libvirt, pool golibvirt.StoragePool) (hypervisor.PoolInfo, error) {
	doc, err := l.StoragePoolGetXMLDesc(pool, 0)
	if err != nil {
		return hypervisor.PoolInfo{}, err
	}
	var x libvirtxml.StoragePool
	if err := x.Unmarshal(doc); err != nil {
		return hypervisor.PoolInfo{}, err
	}
	state, capacity, allocation, available, err := l.StoragePoolGetInfo(pool)
	if err != nil {
		return hypervisor.PoolInfo{}, err
	}
	auto, err := l.StoragePoolGetAutostart(pool)
	if err != nil {
		return hypervisor.PoolInfo{}, err
	}
	info := hypervisor.PoolInfo{
		Name: pool.Name, Type: x.Type, Active: state == uint8(golibvirt.StoragePoolRunning), Autostart: auto == 1,
		Capacity: capacity, Allocation: allocation, Available: available, Source: poolSource(x.Source),
	}
	if x.Target != nil {
		info.Path = x.Target.Path
	}
	return info, nil
}

// CreateVolume creates a sparse volume; with a backing path, a qcow2 overlay.
func (c *Conn) CreateVolume(ctx context.Context, poolName string, v hypervisor.Volume) (hypervisor.VolumeInfo, error) {
	if v.Format == "" {
		v.Format = "qcow2"
	}
	x := libvirtxml.StorageVolume{
		Name:       v.Name,
		Capacity:   &libvirtxml.StorageVolumeSize{Unit: "bytes", Value: v.Capacity},
		Allocation: &libvirtxml.StorageVolumeSize{Unit: "bytes", Value: 0},
		Target:     &libvirtxml.StorageVolumeTarget{Format: &libvirtxml.StorageVolumeTargetFormat{Type: v.Format}},
	}
	if v.Format == "qcow2" {
		// libvirt makes qcow2 v2 (compat 0.10) by default, which cannot
		// hold the persistent dirty bitmaps incremental backups need.
		x.Target.Compat = "1.1"
	}
	if v.BackingPath != "" {
		x.BackingStore = &libvirtxml.StorageVolumeBackingStore{
			Path: v.BackingPath, Format: &libvirtxml.StorageVolumeTargetFormat{Type: v.BackingFormat},
		}
	}
	doc, err := x.Marshal()
	if err != nil {
		return hypervisor.VolumeInfo{}, err
	}
	return do(ctx, c, "create volume "+poolName+"/"+v.Name, func(l *golibvirt.Libvirt) (hypervisor.VolumeInfo, error) {
		pool, err := l.StoragePoolLookupByName(poolName)
		if err != nil {
			return hypervisor.VolumeInfo{}, err
		}
		vol, err := l.StorageVolCreateXML(pool, doc, 0)
		if err != nil {
			return hypervisor.VolumeInfo{}, err
		}
		return volumeInfo(l, vol)
	})
}

// DeleteVolume deletes a volume and its file.
func (c *Conn) DeleteVolume(ctx context.Context, poolName, name string) error {
	return do0(ctx, c, "delete volume "+poolName+"/"+name, func(l *golibvirt.Libvirt) error {
		vol, err := lookupVolume(l, poolName, name)
		if err != nil {
			return err
		}
		return l.StorageVolDelete(vol, 0)
	})
}

// VolumeInfo returns a volume's path and sizes.
func (c *Conn) VolumeInfo(ctx context.Context, poolName, name string) (hypervisor.VolumeInfo, error) {
	return do(ctx, c, "get volume "+poolName+"/"+name, func(l *golibvirt.Libvirt) (hypervisor.VolumeInfo, error) {
		vol, err := lookupVolume(l, poolName, name)
		if err != nil {
			return hypervisor.VolumeInfo{}, err
		}
		return volumeInfo(l, vol)
	})
}

// ResizeVolume sets a volume's virtual size (growing only: callers refuse
// shrinking before they get here).
func (c *Conn) ResizeVolume(ctx context.Context, poolName, name string, capacity uint64) error {
	return do0(ctx, c, "resize volume "+poolName+"/"+name, func(l *golibvirt.Libvirt) error {
		vol, err := lookupVolume(l, poolName, name)
		if err != nil {
			return err
		}
		return l.StorageVolResize(vol, capacity, 0)
	})
}

func lookupVolume(l *golibvirt.Libvirt, poolName, name string) (golibvirt.StorageVol, error) {
	pool, err := l.StoragePoolLookupByName(poolName)
	if err != nil {
		return golibvirt.StorageVol{}, err
	}
	return l.StorageVolLookupByName(pool, name)
}

func volumeInfo(l *golibvirt.Libvirt, vol golibvirt.StorageVol) (hypervisor.VolumeInfo, error) {
	path, err := l.StorageVolGetPath(vol)
	if err != nil {
		return hypervisor.VolumeInfo{}, err
	}
	_, capacity, allocation, err := l.StorageVolGetInfo(vol)
	if err != nil {
		return hypervisor.VolumeInfo{}, err
	}
	info := hypervisor.VolumeInfo{Name: vol.Name, Path: path, Capacity: capacity, Allocation: allocation}
	if doc, err := l.StorageVolGetXMLDesc(vol, 0); err == nil {
		var x libvirtxml.StorageVolume
		if x.Unmarshal(doc) == nil {
			if x.Target != nil && x.Target.Format != nil {
				info.Format = x.Target.Format.Type
			}
			if x.BackingStore != nil {
				info.Backing = x.BackingStore.Path
			}
		}
	}
	return info, nil
}

func isCode(err error, code golibvirt.ErrorNumber) bool {
	var le golibvirt.Error
	return errors.As(err, &le) && le.Code == uint32(code)
}

package libvirt

import (
	"context"
	"fmt"
	"io"
	"strings"

	golibvirt "github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"

	"github.com/godwit-project/godwit/internal/hypervisor"
	"github.com/godwit-project/godwit/internal/ioctx"
)

// poolSource says where a pool's storage comes from, for people.
func poolSource(s *libvirtxml.StoragePoolSource) string {
	if s == nil {
		return ""
	}
	var parts []string
	if len(s.Host) > 0 && s.Dir != nil {
		return s.Host[0].Name + ":" + s.Dir.Path
	}
	if s.Name != "" {
		parts = append(parts, s.Name)
	}
	for _, d := range s.Device {
		parts = append(parts, d.Path)
	}
	return strings.Join(parts, " ")
}

// ListPools returns every pool libvirt has, active or not.
func (c *Conn) ListPools(ctx context.Context) ([]hypervisor.PoolInfo, error) {
	return do(ctx, c, "list storage pools", func(l *golibvirt.Libvirt) ([]hypervisor.PoolInfo, error) {
		pools, _, err := l.ConnectListAllStoragePools(1, 0)
		if err != nil {
			return nil, err
		}
		out := make([]hypervisor.PoolInfo, 0, len(pools))
		for _, p := range pools {
			info, err := poolInfo(l, p)
			if err != nil {
				if isCode(err, golibvirt.ErrNoStoragePool) {
					continue // removed meanwhile
				}
				return nil, err
			}
			out = append(out, info)
		}
		return out, nil
	})
}

// DefinePool defines, builds, starts and autostarts a pool. A step that
// fails undoes the ones before it.
func (c *Conn) DefinePool(ctx context.Context, doc string, build bool, buildFlags uint32) (hypervisor.PoolInfo, error) {
	return do(ctx, c, "create storage pool", func(l *golibvirt.Libvirt) (hypervisor.PoolInfo, error) {
		pool, err := l.StoragePoolDefineXML(doc, 0)
		if err != nil {
			return hypervisor.PoolInfo{}, err
		}
		fail := func(err error) (hypervisor.PoolInfo, error) {
			_ = l.StoragePoolDestroy(pool)
			_ = l.StoragePoolUndefine(pool)
			return hypervisor.PoolInfo{}, err
		}
		if build {
			if err := l.StoragePoolBuild(pool, golibvirt.StoragePoolBuildFlags(buildFlags)); err != nil {
				return fail(err)
			}
		}
		if err := l.StoragePoolCreate(pool, 0); err != nil {
			return fail(err)
		}
		if err := l.StoragePoolSetAutostart(pool, 1); err != nil {
			return fail(err)
		}
		return poolInfo(l, pool)
	})
}

// DeletePool stops and undefines a pool (and removes its directory).
func (c *Conn) DeletePool(ctx context.Context, name string, removeDir bool) error {
	return do0(ctx, c, "delete storage pool "+name, func(l *golibvirt.Libvirt) error {
		pool, err := l.StoragePoolLookupByName(name)
		if err != nil {
			return err
		}
		active, err := l.StoragePoolIsActive(pool)
		if err != nil {
			return err
		}
		if active == 1 {
			if err := l.StoragePoolDestroy(pool); err != nil {
				return err
			}
		}
		if removeDir {
			if err := l.StoragePoolDelete(pool, 0); err != nil {
				return fmt.Errorf("remove the pool's directory: %w", err)
			}
		}
		return l.StoragePoolUndefine(pool)
	})
}

// ListVolumes returns a pool's volumes (after a refresh, so files added
// outside libvirt show).
func (c *Conn) ListVolumes(ctx context.Context, poolName string) ([]hypervisor.VolumeInfo, error) {
	return do(ctx, c, "list volumes of "+poolName, func(l *golibvirt.Libvirt) ([]hypervisor.VolumeInfo, error) {
		pool, err := l.StoragePoolLookupByName(poolName)
		if err != nil {
			return nil, err
		}
		if active, err := l.StoragePoolIsActive(pool); err != nil || active == 0 {
			return nil, err
		}
		_ = l.StoragePoolRefresh(pool, 0)
		vols, _, err := l.StoragePoolListAllVolumes(pool, 1, 0)
		if err != nil {
			return nil, err
		}
		out := make([]hypervisor.VolumeInfo, 0, len(vols))
		for _, v := range vols {
			// Directories in a pool (an fs pool's lost+found) are not
			// volumes anyone can use.
			if typ, _, _, err := l.StorageVolGetInfo(v); err == nil && typ == int8(golibvirt.StorageVolDir) {
				continue
			}
			info, err := volumeInfo(l, v)
			if err != nil {
				if isCode(err, golibvirt.ErrNoStorageVol) {
					continue
				}
				return nil, err
			}
			out = append(out, info)
		}
		return out, nil
	})
}

// CloneVolume copies a volume with libvirt (qemu-img convert for files).
// It can take long: it runs without the call timeout, bounded by ctx.
func (c *Conn) CloneVolume(ctx context.Context, poolName string, v hypervisor.Volume, fromPool, from string) (hypervisor.VolumeInfo, error) {
	x := libvirtxml.StorageVolume{Name: v.Name}
	if v.Format != "" {
		x.Target = &libvirtxml.StorageVolumeTarget{Format: &libvirtxml.StorageVolumeTargetFormat{Type: v.Format}}
	}
	if v.Capacity > 0 {
		x.Capacity = &libvirtxml.StorageVolumeSize{Unit: "bytes", Value: v.Capacity}
	}
	doc, err := x.Marshal()
	if err != nil {
		return hypervisor.VolumeInfo{}, err
	}
	return doLong(ctx, c, "clone volume "+fromPool+"/"+from+" to "+poolName+"/"+v.Name, func(l *golibvirt.Libvirt) (hypervisor.VolumeInfo, error) {
		src, err := lookupVolume(l, fromPool, from)
		if err != nil {
			return hypervisor.VolumeInfo{}, err
		}
		pool, err := l.StoragePoolLookupByName(poolName)
		if err != nil {
			return hypervisor.VolumeInfo{}, err
		}
		vol, err := l.StorageVolCreateXMLFrom(pool, doc, src, 0)
		if err != nil {
			return hypervisor.VolumeInfo{}, err
		}
		return volumeInfo(l, vol)
	})
}

// UploadVolume streams r into the volume through libvirt. Cancelling ctx
// makes the reader fail, which aborts the stream.
func (c *Conn) UploadVolume(ctx context.Context, poolName, name string, r io.Reader, length uint64) error {
	_, err := doLong(ctx, c, "upload volume "+poolName+"/"+name, func(l *golibvirt.Libvirt) (struct{}, error) {
		vol, err := lookupVolume(l, poolName, name)
		if err != nil {
			return struct{}{}, err
		}
		return struct{}{}, l.StorageVolUpload(vol, ioctx.Reader(ctx, r), 0, length, 0)
	})
	return err
}

// DownloadVolume streams the volume to w through libvirt.
func (c *Conn) DownloadVolume(ctx context.Context, poolName, name string, w io.Writer) error {
	_, err := doLong(ctx, c, "download volume "+poolName+"/"+name, func(l *golibvirt.Libvirt) (struct{}, error) {
		vol, err := lookupVolume(l, poolName, name)
		if err != nil {
			return struct{}{}, err
		}
		return struct{}{}, l.StorageVolDownload(vol, ioctx.Writer(ctx, w), 0, 0, 0)
	})
	return err
}

// doLong is do without the default call timeout: for calls that move
// data and take as long as the data needs. ctx still bounds them.
func doLong[T any](ctx context.Context, c *Conn, what string, f func(l *golibvirt.Libvirt) (T, error)) (T, error) {
	return run(ctx, c, what, "", f)
}

// AttachDevice hot-plugs a device (live) and records it in the definition.
func (c *Conn) AttachDevice(ctx context.Context, name, doc string, live bool) error {
	return c.onDomain(ctx, "attach device to", name, func(l *golibvirt.Libvirt, d golibvirt.Domain) error {
		return l.DomainAttachDeviceFlags(d, doc, deviceFlags(live))
	})
}

// DetachDevice hot-unplugs a device (live) and drops it from the definition.
func (c *Conn) DetachDevice(ctx context.Context, name, doc string, live bool) error {
	return c.onDomain(ctx, "detach device from", name, func(l *golibvirt.Libvirt, d golibvirt.Domain) error {
		return l.DomainDetachDeviceFlags(d, doc, deviceFlags(live))
	})
}

// deviceFlags change a device in the definition, and with live in the
// running domain too.
func deviceFlags(live bool) uint32 {
	flags := uint32(golibvirt.DomainDeviceModifyConfig)
	if live {
		flags |= uint32(golibvirt.DomainDeviceModifyLive)
	}
	return flags
}

// BlockResize grows a running domain's disk to size bytes.
func (c *Conn) BlockResize(ctx context.Context, name, target string, size uint64) error {
	return c.onDomain(ctx, "resize disk "+target+" of", name, func(l *golibvirt.Libvirt, d golibvirt.Domain) error {
		return l.DomainBlockResize(d, target, size, golibvirt.DomainBlockResizeBytes)
	})
}

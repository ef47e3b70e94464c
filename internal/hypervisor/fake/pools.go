package fake

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sort"

	"libvirt.org/go/libvirtxml"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/hypervisor"
)

// PoolXML returns the XML a pool was defined with ("" for EnsurePool's).
func (f *Fake) PoolXML(name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p, ok := f.pools[name]; ok {
		return p.xml
	}
	return ""
}

// VolumeData returns what was uploaded into a volume.
func (f *Fake) VolumeData(poolName, name string) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]byte(nil), f.data[poolName+"/"+name]...)
}

// ListPools returns every pool, by name.
func (f *Fake) ListPools(ctx context.Context) ([]hypervisor.PoolInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(ctx, "ListPools", ""); err != nil {
		return nil, err
	}
	out := make([]hypervisor.PoolInfo, 0, len(f.pools))
	for _, p := range f.pools {
		out = append(out, f.poolInfo(p))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// DefinePool defines an active, autostarting pool of 10 GiB from XML.
func (f *Fake) DefinePool(ctx context.Context, doc string, build bool, buildFlags uint32) (hypervisor.PoolInfo, error) {
	var x libvirtxml.StoragePool
	perr := x.Unmarshal(doc)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(ctx, "DefinePool", x.Name); err != nil {
		return hypervisor.PoolInfo{}, err
	}
	if perr != nil {
		return hypervisor.PoolInfo{}, &Error{Op: "create storage pool", Msg: "XML error: " + perr.Error()}
	}
	if _, ok := f.pools[x.Name]; ok {
		return hypervisor.PoolInfo{}, &Error{Op: "create storage pool", Msg: fmt.Sprintf("operation failed: pool '%s' already exists", x.Name)}
	}
	p := &pool{
		PoolInfo: hypervisor.PoolInfo{Name: x.Name, Type: x.Type, Active: true, Autostart: true, Capacity: uint64(10 * api.GiB)},
		volumes:  map[string]*hypervisor.VolumeInfo{}, xml: doc,
	}
	if x.Target != nil {
		p.Path = x.Target.Path
	}
	f.pools[x.Name] = p
	return f.poolInfo(p), nil
}

// DeletePool removes a pool; libvirt refuses to delete the directory of a
// pool that still has volumes.
func (f *Fake) DeletePool(ctx context.Context, name string, removeDir bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(ctx, "DeletePool", name); err != nil {
		return err
	}
	p, err := f.pool("delete storage pool", name)
	if err != nil {
		return err
	}
	if removeDir && len(p.volumes) > 0 {
		return &Error{Op: "delete storage pool " + name, Msg: "cannot remove directory: Directory not empty"}
	}
	delete(f.pools, name)
	return nil
}

// ListVolumes returns a pool's volumes, by name.
func (f *Fake) ListVolumes(ctx context.Context, poolName string) ([]hypervisor.VolumeInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(ctx, "ListVolumes", poolName); err != nil {
		return nil, err
	}
	p, err := f.pool("list volumes of", poolName)
	if err != nil {
		return nil, err
	}
	out := make([]hypervisor.VolumeInfo, 0, len(p.volumes))
	for _, v := range p.volumes {
		out = append(out, *v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// CloneVolume copies a volume (and its uploaded data).
func (f *Fake) CloneVolume(ctx context.Context, poolName string, v hypervisor.Volume, fromPool, from string) (hypervisor.VolumeInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(ctx, "CloneVolume", poolName+"/"+v.Name); err != nil {
		return hypervisor.VolumeInfo{}, err
	}
	sp, err := f.pool("clone volume from", fromPool)
	if err != nil {
		return hypervisor.VolumeInfo{}, err
	}
	src, ok := sp.volumes[from]
	if !ok {
		return hypervisor.VolumeInfo{}, errNoVolume("clone volume", fromPool, from)
	}
	dp, err := f.pool("clone volume into", poolName)
	if err != nil {
		return hypervisor.VolumeInfo{}, err
	}
	if _, ok := dp.volumes[v.Name]; ok {
		return hypervisor.VolumeInfo{}, &Error{Op: "clone volume " + poolName + "/" + v.Name, Kind: hypervisor.ErrExists,
			Msg: fmt.Sprintf("storage volume '%s' exists already", v.Name)}
	}
	info := *src
	info.Name, info.Path, info.Backing = v.Name, filepath.Join(dp.Path, v.Name), ""
	if v.Format != "" {
		info.Format = v.Format
	}
	dp.volumes[v.Name] = &info
	if d, ok := f.data[fromPool+"/"+from]; ok {
		f.data[poolName+"/"+v.Name] = append([]byte(nil), d...)
	}
	return info, nil
}

// UploadVolume keeps the bytes (for DownloadVolume and VolumeData).
func (f *Fake) UploadVolume(ctx context.Context, poolName, name string, r io.Reader, length uint64) error {
	f.mu.Lock()
	if err := f.enter(ctx, "UploadVolume", poolName+"/"+name); err != nil {
		f.mu.Unlock()
		return err
	}
	p, err := f.pool("upload volume to", poolName)
	if err == nil {
		if v, ok := p.volumes[name]; !ok {
			err = errNoVolume("upload volume", poolName, name)
		} else if length > v.Capacity {
			err = &Error{Op: "upload volume " + poolName + "/" + name, Msg: "invalid argument: can't upload more than the volume's capacity"}
		}
	}
	f.mu.Unlock()
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if _, err := io.Copy(&b, io.LimitReader(r, int64(length))); err != nil {
		return &Error{Op: "upload volume " + poolName + "/" + name, Msg: err.Error()}
	}
	f.mu.Lock()
	f.data[poolName+"/"+name] = b.Bytes()
	f.mu.Unlock()
	return nil
}

// DownloadVolume writes the uploaded bytes, zero-padded to the capacity.
func (f *Fake) DownloadVolume(ctx context.Context, poolName, name string, w io.Writer) error {
	f.mu.Lock()
	if err := f.enter(ctx, "DownloadVolume", poolName+"/"+name); err != nil {
		f.mu.Unlock()
		return err
	}
	p, err := f.pool("download volume from", poolName)
	var out []byte
	if err == nil {
		v, ok := p.volumes[name]
		if !ok {
			err = errNoVolume("download volume", poolName, name)
		} else {
			out = make([]byte, v.Capacity)
			copy(out, f.data[poolName+"/"+name])
		}
	}
	f.mu.Unlock()
	if err != nil {
		return err
	}
	_, err = w.Write(out)
	return err
}

// attachDisk adds a disk to the domain's definition (and live config).
func (f *Fake) attachDisk(ctx context.Context, name, doc string, live bool) error {
	return f.changeDisks(ctx, "AttachDevice", name, doc, live, func(disks []libvirtxml.DomainDisk, d libvirtxml.DomainDisk) ([]libvirtxml.DomainDisk, error) {
		for _, x := range disks {
			if x.Target != nil && d.Target != nil && x.Target.Dev == d.Target.Dev {
				return nil, fmt.Errorf("target %s already exists", d.Target.Dev)
			}
		}
		return append(disks, d), nil
	})
}

// detachDisk removes the disk with the same target.
func (f *Fake) detachDisk(ctx context.Context, name, doc string, live bool) error {
	return f.changeDisks(ctx, "DetachDevice", name, doc, live, func(disks []libvirtxml.DomainDisk, d libvirtxml.DomainDisk) ([]libvirtxml.DomainDisk, error) {
		for i, x := range disks {
			if x.Target != nil && d.Target != nil && x.Target.Dev == d.Target.Dev {
				return append(disks[:i:i], disks[i+1:]...), nil
			}
		}
		return nil, fmt.Errorf("disk %v not found", d.Target)
	})
}

func (f *Fake) changeDisks(ctx context.Context, method, name, doc string, live bool,
	change func([]libvirtxml.DomainDisk, libvirtxml.DomainDisk) ([]libvirtxml.DomainDisk, error)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(ctx, method, name); err != nil {
		return err
	}
	d, ok := f.domains[name]
	if !ok {
		return f.errNoDomain(method, name)
	}
	if live && !d.State.Active() {
		return invalid(method, name, "domain is not running")
	}
	var disk libvirtxml.DomainDisk
	if err := disk.Unmarshal(doc); err != nil {
		return &Error{Op: method + " " + name, Msg: "XML error: " + err.Error()}
	}
	edit := func(doc string) (string, error) {
		var dom libvirtxml.Domain
		if err := dom.Unmarshal(doc); err != nil {
			return "", err
		}
		if dom.Devices == nil {
			dom.Devices = &libvirtxml.DomainDeviceList{}
		}
		disks, err := change(dom.Devices.Disks, disk)
		if err != nil {
			return "", err
		}
		dom.Devices.Disks = disks
		return dom.Marshal()
	}
	x, err := edit(d.xml)
	if err != nil {
		return &Error{Op: method + " " + name, Msg: err.Error()}
	}
	if live {
		lx, err := edit(d.liveXML)
		if err != nil {
			return &Error{Op: method + " " + name, Msg: err.Error()}
		}
		d.liveXML = lx
	}
	d.xml = x
	return nil
}

// BlockResize grows a running domain's disk (the volume's capacity, when
// a volume has that path).
func (f *Fake) BlockResize(ctx context.Context, name, target string, size uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(ctx, "BlockResize", name+"/"+target); err != nil {
		return err
	}
	d, ok := f.domains[name]
	if !ok {
		return f.errNoDomain("resize disk of", name)
	}
	if !d.State.Active() {
		return invalid("resize disk of", name, "domain is not running")
	}
	var dom libvirtxml.Domain
	if err := dom.Unmarshal(d.liveXML); err != nil || dom.Devices == nil {
		return &Error{Op: "resize disk of " + name, Msg: "no live XML"}
	}
	for _, disk := range dom.Devices.Disks {
		if disk.Target == nil || disk.Target.Dev != target || disk.Source == nil || disk.Source.File == nil {
			continue
		}
		for _, p := range f.pools {
			for _, v := range p.volumes {
				if v.Path == disk.Source.File.File {
					if size < v.Capacity {
						return &Error{Op: "resize disk of " + name, Msg: "invalid argument: shrinking is not allowed"}
					}
					v.Capacity = size
				}
			}
		}
		return nil
	}
	return &Error{Op: "resize disk of " + name, Msg: fmt.Sprintf("invalid argument: disk '%s' was not found in the domain", target), Kind: hypervisor.ErrNotFound}
}

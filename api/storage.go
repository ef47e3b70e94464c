package api

import "time"

// Pool types godwit creates. libvirt may hold pools of other types; they
// are listed too.
const (
	PoolDir     = "dir"     // a directory on the host
	PoolFS      = "fs"      // a filesystem on a block device, mounted by libvirt
	PoolLogical = "logical" // an LVM volume group
	PoolNetFS   = "netfs"   // an NFS export, mounted by libvirt
)

// PoolCreate asks for a new storage pool.
type PoolCreate struct {
	Name string `json:"name" doc:"Pool name; also the libvirt pool name." example:"fast"`
	Type string `json:"type,omitempty" enum:"dir,fs,logical,netfs" doc:"dir (default), fs, logical or netfs."`
	Path string `json:"path,omitempty" doc:"Target: the directory (dir), the mount point (fs, netfs); for logical /dev/VG (default)."`
	// Device is the block device of an fs pool, or the physical volume of a
	// logical pool that godwit should make into a volume group.
	Device string `json:"device,omitempty" doc:"Block device: fs (the filesystem's device) or logical (the PV to build the VG on)."`
	Format string `json:"format,omitempty" doc:"fs: the filesystem type (default auto; ext4 with build)."`
	// Host and Export name an NFS share (netfs).
	Host   string `json:"host,omitempty" doc:"netfs: the NFS server."`
	Export string `json:"export,omitempty" doc:"netfs: the exported directory on the server, e.g. /srv/vms."`
	// VG names the LVM volume group of a logical pool (default: the pool name).
	VG string `json:"vg,omitempty" doc:"logical: the volume group (default: the pool name)."`
	// Build formats the device (fs: mkfs if it holds no filesystem;
	// logical: pvcreate + vgcreate).
	Build bool `json:"build,omitempty" doc:"fs: make the filesystem when the device has none; logical: create the volume group on device."`
	// Shared marks a pool whose path is the same shared filesystem on
	// every host (migration then moves no disk data).
	Shared bool `json:"shared,omitempty" doc:"The pool's path is the same shared filesystem on every host."`
}

// Pool is a libvirt storage pool as godwit reports it.
type Pool struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	Path       string `json:"path"`
	Source     string `json:"source,omitempty" doc:"Device, volume group or host:/export, when the pool has one."`
	Active     bool   `json:"active"`
	Autostart  bool   `json:"autostart"`
	Shared     bool   `json:"shared"`
	Default    bool   `json:"default" doc:"The daemon's own pool, where VM disks go."`
	Capacity   Size   `json:"capacity"`
	Allocation Size   `json:"allocation"`
	Available  Size   `json:"available"`
	Volumes    int    `json:"volumes"`
}

// PoolList is the answer to GET /v1/pools.
type PoolList struct {
	Pools []Pool `json:"pools"`
}

// VolumeCreate asks for a new blank volume.
type VolumeCreate struct {
	Name   string `json:"name" doc:"Volume name, unique in its pool." example:"data1"`
	Size   Size   `json:"size" doc:"Virtual size with a unit, e.g. 10GiB."`
	Format string `json:"format,omitempty" enum:"qcow2,raw" doc:"qcow2 (default) or raw."`
}

// Volume is a storage volume.
type Volume struct {
	Pool       string   `json:"pool"`
	Name       string   `json:"name"`
	Path       string   `json:"path"`
	Format     string   `json:"format,omitempty"`
	Capacity   Size     `json:"capacity"`
	Allocation Size     `json:"allocation"`
	Backing    string   `json:"backing,omitempty" doc:"Backing file of a qcow2 overlay."`
	UsedBy     []string `json:"usedBy,omitempty" doc:"VMs whose disk this volume is."`
}

// VolumeList is the answer to GET /v1/volumes.
type VolumeList struct {
	Volumes []Volume `json:"volumes"`
}

// VolumeResize sets a volume's virtual size; it only grows.
type VolumeResize struct {
	Size Size `json:"size" doc:"New virtual size; volumes only grow."`
}

// VolumeClone copies a volume into a new, independent one.
type VolumeClone struct {
	Name string `json:"name" doc:"Name of the copy."`
	Pool string `json:"pool,omitempty" doc:"Pool of the copy (default: the source's pool)."`
}

// Transfer is the result of a volume upload or download.
type Transfer struct {
	Bytes   int64         `json:"bytes"`
	SHA256  string        `json:"sha256" doc:"Hex SHA-256 of the bytes moved, as the daemon counted them."`
	Elapsed time.Duration `json:"elapsedNs"`
}

// Header and trailer names of the volume data endpoints.
const (
	// HeaderSHA256 carries a hex SHA-256: on upload the expected one
	// (optional), on download the daemon's, as an HTTP trailer.
	HeaderSHA256 = "X-Godwit-Sha256"
	// HeaderError is a download trailer set when the stream broke off.
	HeaderError = "X-Godwit-Error"
)

// DiskAttach attaches an existing volume to a VM, running or stopped.
type DiskAttach struct {
	Volume string `json:"volume" doc:"POOL/VOLUME." example:"default/data1"`
	Name   string `json:"name,omitempty" doc:"Disk name in the VM (default: from the volume name)."`
}

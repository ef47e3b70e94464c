package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"libvirt.org/go/libvirtxml"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/hypervisor"
	"github.com/godwit-project/godwit/internal/hypervisor/fake"
	"github.com/godwit-project/godwit/internal/store/bolt"
)

// What godwit sends libvirt for each pool type: logical and netfs cannot
// run on this machine's kernel, so this is where they are pinned.
func TestPoolXML(t *testing.T) {
	cases := []struct {
		req        api.PoolCreate
		build      bool
		flags      uint32
		wantSource func(*libvirtxml.StoragePoolSource) bool
		wantTarget string
	}{
		{api.PoolCreate{Name: "d", Type: "dir", Path: "/srv/d/"}, true, 0,
			func(s *libvirtxml.StoragePoolSource) bool { return s == nil }, "/srv/d"},
		{api.PoolCreate{Name: "f", Type: "fs", Device: "/dev/loop3", Path: "/srv/f", Build: true}, true, 4,
			func(s *libvirtxml.StoragePoolSource) bool {
				return len(s.Device) == 1 && s.Device[0].Path == "/dev/loop3" && s.Format.Type == "ext4"
			}, "/srv/f"},
		{api.PoolCreate{Name: "f2", Type: "fs", Device: "/dev/sdb1", Path: "/srv/f2"}, true, 0,
			func(s *libvirtxml.StoragePoolSource) bool { return s.Format.Type == "auto" }, "/srv/f2"},
		{api.PoolCreate{Name: "vg", Type: "logical", Device: "/dev/sdc", Build: true}, true, 4,
			func(s *libvirtxml.StoragePoolSource) bool {
				return s.Name == "vg" && s.Format.Type == "lvm2" && len(s.Device) == 1 && s.Device[0].Path == "/dev/sdc"
			}, "/dev/vg"},
		{api.PoolCreate{Name: "lv", Type: "logical", VG: "existing"}, false, 0,
			func(s *libvirtxml.StoragePoolSource) bool { return s.Name == "existing" && len(s.Device) == 0 }, "/dev/existing"},
		{api.PoolCreate{Name: "n", Type: "netfs", Host: "nas", Export: "/vms", Path: "/srv/n"}, true, 0,
			func(s *libvirtxml.StoragePoolSource) bool {
				return len(s.Host) == 1 && s.Host[0].Name == "nas" && s.Dir.Path == "/vms" && s.Format.Type == "nfs"
			}, "/srv/n"},
	}
	for _, c := range cases {
		def, err := poolXML(c.req)
		if err != nil {
			t.Fatalf("%s: %v", c.req.Name, err)
		}
		var x libvirtxml.StoragePool
		if err := x.Unmarshal(def.XML); err != nil {
			t.Fatalf("%s: %v\n%s", c.req.Name, err, def.XML)
		}
		if x.Type != c.req.Type || x.Name != c.req.Name || x.Target.Path != c.wantTarget || !c.wantSource(x.Source) {
			t.Errorf("%s: XML\n%s", c.req.Name, def.XML)
		}
		if def.Build != c.build || def.BuildFlags != c.flags {
			t.Errorf("%s: build %v/%d, want %v/%d", c.req.Name, def.Build, def.BuildFlags, c.build, c.flags)
		}
	}
	if _, err := poolXML(api.PoolCreate{Name: "x", Type: "zfs"}); api.Status(err) != 400 {
		t.Errorf("zfs: %v", err)
	}
}

type users map[string][]string

func (u users) VolumeUsers(_ context.Context, pool, vol string) ([]string, error) {
	return u[pool+"/"+vol], nil
}

func (u users) ResizeDisk(context.Context, string, string, string, uint64) error { return nil }

func newService(t *testing.T) (*Service, *fake.Fake) {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	hv := fake.New()
	if _, err := hv.EnsurePool(context.Background(), hypervisor.Pool{Name: "godwit", Path: "/var/lib/godwit/pool"}); err != nil {
		t.Fatal(err)
	}
	s := New(hv, st, "godwit", slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.SetUsers(users{"godwit/used": {"vm1"}})
	return s, hv
}

func TestPools(t *testing.T) {
	ctx := context.Background()
	s, hv := newService(t)
	dir := t.TempDir()
	bad := []struct {
		req  api.PoolCreate
		want string
	}{
		{api.PoolCreate{Name: "a/b", Path: dir + "/p"}, "name"},
		{api.PoolCreate{Name: "..", Path: dir + "/p"}, "name"},
		{api.PoolCreate{Name: "p", Path: "rel/path"}, "absolute"},
		{api.PoolCreate{Name: "p", Path: dir + "/missing/p"}, "does not exist"},
		{api.PoolCreate{Name: "p", Type: "fs", Device: dir, Path: dir + "/m"}, "not a block device"},
		{api.PoolCreate{Name: "p", Type: "netfs", Export: "/x", Path: dir + "/m"}, "host"},
		{api.PoolCreate{Name: "p", Type: "logical", Build: true}, "device"},
		{api.PoolCreate{Name: "godwit", Path: dir + "/p"}, "already exists"},
	}
	for _, b := range bad {
		if _, err := s.CreatePool(ctx, b.req); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("CreatePool(%+v) = %v, want an error about %s", b.req, err, b.want)
		}
	}
	p, err := s.CreatePool(ctx, api.PoolCreate{Name: "shared1", Path: dir + "/p", Shared: true})
	if err != nil || !p.Shared || p.Default {
		t.Fatalf("CreatePool = %+v, %v", p, err)
	}
	if shared, _ := s.IsShared(ctx, "shared1"); !shared {
		t.Error("IsShared(shared1) = false")
	}
	if shared, _ := s.IsShared(ctx, "godwit"); shared {
		t.Error("IsShared(godwit) = true")
	}
	list, err := s.ListPools(ctx)
	if err != nil || len(list) != 2 || !list[0].Default || list[0].Name != "godwit" || !list[1].Shared {
		t.Fatalf("ListPools = %+v, %v", list, err)
	}
	if err := s.DeletePool(ctx, "godwit"); api.Status(err) != 409 {
		t.Errorf("deleting the default pool: %v", err)
	}
	if _, err := s.CreateVolume(ctx, "shared1", api.VolumeCreate{Name: "v", Size: api.GiB}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeletePool(ctx, "shared1"); api.Status(err) != 409 || !strings.Contains(err.Error(), "v") {
		t.Errorf("deleting a pool with a volume: %v", err)
	}
	_ = s.DeleteVolume(ctx, "shared1", "v")
	if err := s.DeletePool(ctx, "shared1"); err != nil {
		t.Fatal(err)
	}
	if shared, _ := s.IsShared(ctx, "shared1"); shared {
		t.Error("the deleted pool is still marked shared")
	}
	if hv.PoolXML("shared1") != "" {
		t.Error("the fake still has the pool")
	}
}

func TestVolumeRules(t *testing.T) {
	ctx := context.Background()
	s, hv := newService(t)
	for _, c := range []struct {
		req  api.VolumeCreate
		want string
	}{
		{api.VolumeCreate{Name: "../etc", Size: api.GiB}, "'/'"},
		{api.VolumeCreate{Name: "x", Size: 12}, "below the minimum"},
		{api.VolumeCreate{Name: "x"}, "missing"},
		{api.VolumeCreate{Name: "x", Size: api.GiB, Format: "vmdk"}, "qcow2 or raw"},
	} {
		if _, err := s.CreateVolume(ctx, "godwit", c.req); api.Status(err) != 400 || !strings.Contains(err.Error(), c.want) {
			t.Errorf("CreateVolume(%+v) = %v, want a 400 about %s", c.req, err, c.want)
		}
	}
	if _, err := hv.CreateVolume(ctx, "godwit", hypervisor.Volume{Name: "used", Capacity: uint64(api.GiB)}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteVolume(ctx, "godwit", "used"); api.Status(err) != 409 || !strings.Contains(err.Error(), "vm1") {
		t.Errorf("deleting a volume in use: %v", err)
	}
	if _, err := s.ResizeVolume(ctx, "godwit", "used", api.MiB*512); api.Status(err) != 400 || !strings.Contains(err.Error(), "only grow") {
		t.Errorf("shrinking: %v", err)
	}

	// Upload: the checksum is checked, and a volume the upload made is
	// deleted again when it fails.
	data := bytes.Repeat([]byte("godwit"), 100000)
	sum := sha256.Sum256(data)
	if _, err := s.Upload(ctx, "godwit", "new", bytes.NewReader(data), int64(len(data)), UploadOptions{Create: true, SHA256: strings.Repeat("a", 64)}); api.Status(err) != 400 {
		t.Fatalf("upload with a wrong sha256: %v", err)
	}
	if _, err := hv.VolumeInfo(ctx, "godwit", "new"); err == nil {
		t.Fatal("a failed upload left its volume")
	}
	tr, err := s.Upload(ctx, "godwit", "new", bytes.NewReader(data), int64(len(data)), UploadOptions{Create: true, SHA256: hex.EncodeToString(sum[:])})
	if err != nil || tr.Bytes != int64(len(data)) || tr.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("upload = %+v, %v", tr, err)
	}
	if !bytes.Equal(hv.VolumeData("godwit", "new"), data) {
		t.Fatal("the fake did not get the bytes")
	}
	// A short body is an error, not a silently short volume.
	if _, err := s.Upload(ctx, "godwit", "short", bytes.NewReader(data[:10]), int64(len(data)), UploadOptions{Create: true}); err == nil {
		t.Fatal("a short upload succeeded")
	}
	if _, err := hv.VolumeInfo(ctx, "godwit", "short"); err == nil {
		t.Fatal("a short upload left its volume")
	}
	if _, err := s.Upload(ctx, "godwit", "used", bytes.NewReader(data), int64(len(data)), UploadOptions{}); api.Status(err) != 409 {
		t.Fatalf("upload over a VM's disk: %v", err)
	}
	size, stream, err := s.Download(ctx, "godwit", "new")
	if err != nil || size != int64(len(data)) {
		t.Fatalf("download: %d %v", size, err)
	}
	var out bytes.Buffer
	tr, err = stream(ctx, &out)
	if err != nil || !bytes.Equal(out.Bytes(), data) || tr.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("download = %+v, %v", tr, err)
	}
}

// cancelReader cancels its context after n bytes, like a client that
// went away mid-upload.
type cancelReader struct {
	r      io.Reader
	n      int
	cancel context.CancelFunc
}

func (c *cancelReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		c.cancel()
		return 0, context.Canceled
	}
	if len(p) > c.n {
		p = p[:c.n]
	}
	n, err := c.r.Read(p)
	c.n -= n
	return n, err
}

// A cancelled upload fails and takes back the volume it made.
func TestUploadCancel(t *testing.T) {
	s, hv := newService(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	data := bytes.Repeat([]byte{7}, 4<<20)
	r := &cancelReader{r: bytes.NewReader(data), n: 1 << 20, cancel: cancel}
	if _, err := s.Upload(ctx, "godwit", "c", r, int64(len(data)), UploadOptions{Create: true}); err == nil {
		t.Fatal("a cancelled upload succeeded")
	}
	if _, err := hv.VolumeInfo(context.Background(), "godwit", "c"); err == nil {
		t.Fatal("a cancelled upload left its volume")
	}
}

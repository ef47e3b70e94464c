package daemon

import (
	"context"
	"io"
	"net/http"
	"os"
	"strconv"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/ops"
	"github.com/godwit-project/godwit/internal/storage"
)

// storageRoutes are pools, volumes, images and VM disk hot-plug.
func (d *Daemon) storageRoutes() []route {
	return []route{
		{Read, op("list-pools", http.MethodGet, "/v1/pools", "List storage pools (every libvirt pool)", "pools"), handle(d.listPools)},
		{Admin, op("create-pool", http.MethodPost, "/v1/pools", "Create a storage pool: dir, fs, logical or netfs", "pools"), handle(d.createPool)},
		{Read, op("get-pool", http.MethodGet, "/v1/pools/{pool}", "Show a storage pool", "pools"), handle(d.getPool)},
		{Admin, op("delete-pool", http.MethodDelete, "/v1/pools/{pool}", "Delete an empty storage pool", "pools"), handle(d.deletePool)},

		{Read, op("list-volumes", http.MethodGet, "/v1/volumes", "List volumes of every pool, or of one", "volumes"), handle(d.listVolumes)},
		{Admin, op("create-volume", http.MethodPost, "/v1/pools/{pool}/volumes", "Create a blank volume", "volumes"), handle(d.createVolume)},
		{Read, op("get-volume", http.MethodGet, "/v1/pools/{pool}/volumes/{volume}", "Show a volume", "volumes"), handle(d.getVolume)},
		{Admin, op("delete-volume", http.MethodDelete, "/v1/pools/{pool}/volumes/{volume}", "Delete a volume no VM uses", "volumes"), handle(d.deleteVolume)},
		{Admin, op("resize-volume", http.MethodPost, "/v1/pools/{pool}/volumes/{volume}/resize", "Grow a volume (online when a running VM uses it)", "volumes"), handle(d.resizeVolume)},
		{Admin, accepted(op("clone-volume", http.MethodPost, "/v1/pools/{pool}/volumes/{volume}/clone", "Copy a volume into a new one", "volumes")), handle(d.cloneVolume)},
		{Admin, op("upload-volume", http.MethodPut, "/v1/pools/{pool}/volumes/{volume}/data", "Upload a volume's bytes (streamed)", "volumes"), d.registerVolumeUpload},
		{Read, op("download-volume", http.MethodGet, "/v1/pools/{pool}/volumes/{volume}/data", "Download a volume's bytes (streamed; SHA-256 in a trailer)", "volumes"), d.registerVolumeDownload},

		{Read, op("list-images", http.MethodGet, "/v1/images", "List the image catalog", "images"), handle(d.listImages)},
		{Admin, accepted(op("import-image", http.MethodPost, "/v1/images", "Import an image from a URL or a file on the host", "images")), handle(d.importImage)},
		{Admin, accepted(op("build-image", http.MethodPost, "/v1/images/build", "Build an image from a distribution's packages (debootstrap)", "images")), handle(d.buildImage)},
		{Read, op("get-image", http.MethodGet, "/v1/images/{image}", "Show an image (qemu-img info)", "images"), handle(d.getImage)},
		{Admin, op("delete-image", http.MethodDelete, "/v1/images/{image}", "Delete an image no VM uses", "images"), handle(d.deleteImage)},
		{Admin, accepted(op("convert-image", http.MethodPost, "/v1/images/{image}/convert", "Convert an image (raw <-> qcow2) into a new one", "images")), handle(d.convertImage)},

		{Admin, op("attach-disk", http.MethodPost, "/v1/vms/{name}/disks", "Attach a volume to a VM (hot-plug when it runs)", "vms"), handle(d.attachDisk)},
		{Admin, op("detach-disk", http.MethodDelete, "/v1/vms/{name}/disks/{disk}", "Detach an attached volume from a VM", "vms"), handle(d.detachDisk)},
	}
}

type poolInput struct {
	Pool string `path:"pool" doc:"Storage pool name"`
}

type volumeInput struct {
	Pool   string `path:"pool" doc:"Storage pool name"`
	Volume string `path:"volume" doc:"Volume name, unique in its pool"`
}

func (d *Daemon) listPools(ctx context.Context, _ *struct{}) (*struct{ Body api.PoolList }, error) {
	if err := d.host.ensure(ctx); err != nil {
		return nil, err
	}
	pools, err := d.storage.ListPools(ctx)
	if err != nil {
		return nil, err
	}
	return &struct{ Body api.PoolList }{api.PoolList{Pools: pools}}, nil
}

func (d *Daemon) createPool(ctx context.Context, in *struct{ Body api.PoolCreate }) (*struct{ Body api.Pool }, error) {
	if err := d.host.ensure(ctx); err != nil {
		return nil, err
	}
	p, err := d.storage.CreatePool(ctx, in.Body)
	if err != nil {
		return nil, err
	}
	return &struct{ Body api.Pool }{p}, nil
}

func (d *Daemon) getPool(ctx context.Context, in *poolInput) (*struct{ Body api.Pool }, error) {
	p, err := d.storage.GetPool(ctx, in.Pool)
	if err != nil {
		return nil, err
	}
	return &struct{ Body api.Pool }{p}, nil
}

func (d *Daemon) deletePool(ctx context.Context, in *poolInput) (*struct{}, error) {
	return nil, d.storage.DeletePool(ctx, in.Pool)
}

type listVolumesInput struct {
	Pool string `query:"pool" doc:"Only this pool's volumes."`
}

func (d *Daemon) listVolumes(ctx context.Context, in *listVolumesInput) (*struct{ Body api.VolumeList }, error) {
	if err := d.host.ensure(ctx); err != nil {
		return nil, err
	}
	vols, err := d.storage.ListVolumes(ctx, in.Pool)
	if err != nil {
		return nil, err
	}
	if vols == nil {
		vols = []api.Volume{}
	}
	return &struct{ Body api.VolumeList }{api.VolumeList{Volumes: vols}}, nil
}

func (d *Daemon) createVolume(ctx context.Context, in *struct {
	Pool string `path:"pool" doc:"Storage pool name"`
	Body api.VolumeCreate
}) (*struct{ Body api.Volume }, error) {
	if err := d.host.ensure(ctx); err != nil {
		return nil, err
	}
	v, err := d.storage.CreateVolume(ctx, in.Pool, in.Body)
	if err != nil {
		return nil, err
	}
	return &struct{ Body api.Volume }{v}, nil
}

func (d *Daemon) getVolume(ctx context.Context, in *volumeInput) (*struct{ Body api.Volume }, error) {
	v, err := d.storage.GetVolume(ctx, in.Pool, in.Volume)
	if err != nil {
		return nil, err
	}
	return &struct{ Body api.Volume }{v}, nil
}

func (d *Daemon) deleteVolume(ctx context.Context, in *volumeInput) (*struct{}, error) {
	return nil, d.storage.DeleteVolume(ctx, in.Pool, in.Volume)
}

func (d *Daemon) resizeVolume(ctx context.Context, in *struct {
	Pool   string `path:"pool" doc:"Storage pool name"`
	Volume string `path:"volume" doc:"Volume name, unique in its pool"`
	Body   api.VolumeResize
}) (*struct{ Body api.Volume }, error) {
	v, err := d.storage.ResizeVolume(ctx, in.Pool, in.Volume, in.Body.Size)
	if err != nil {
		return nil, err
	}
	return &struct{ Body api.Volume }{v}, nil
}

func (d *Daemon) cloneVolume(ctx context.Context, in *struct {
	Pool   string `path:"pool" doc:"Storage pool name"`
	Volume string `path:"volume" doc:"Volume name, unique in its pool"`
	Body   api.VolumeClone
}) (*opOutput, error) {
	if err := d.storage.CheckClone(ctx, in.Pool, in.Volume, in.Body); err != nil {
		return nil, err
	}
	dst := in.Body.Pool
	if dst == "" {
		dst = in.Pool
	}
	o := d.ops.Start("volume.clone", "volume/"+dst+"/"+in.Body.Name, func(ctx context.Context, o *ops.Op) error {
		o.Progress("copying "+in.Pool+"/"+in.Volume, 0, 0, "")
		v, err := d.storage.CloneVolume(ctx, in.Pool, in.Volume, in.Body)
		if err != nil {
			return err
		}
		o.SetResult(v)
		return nil
	})
	return &opOutput{o}, nil
}

// volumeUploadInput takes the request body as a stream: huma reads no body for
// an input without Body, and Resolve hands over the reader.
type volumeUploadInput struct {
	Pool   string `path:"pool" doc:"Storage pool name"`
	Volume string `path:"volume" doc:"Volume name, unique in its pool"`
	Create bool   `query:"create" doc:"Create the volume (Content-Length bytes) when missing."`
	Format string `query:"format" enum:"qcow2,raw," doc:"Format of a volume made with create (default raw)."`
	SHA256 string `header:"X-Godwit-Sha256" doc:"Expected hex SHA-256 of the body; a mismatch fails the upload."`
	body   io.Reader
	length int64
}

func (u *volumeUploadInput) Resolve(ctx huma.Context) []error {
	u.body = ctx.BodyReader()
	u.length = -1
	if cl := ctx.Header("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil {
			u.length = n
		}
	}
	return nil
}

func (d *Daemon) registerVolumeUpload(a huma.API, o huma.Operation) {
	o.RequestBody = &huma.RequestBody{
		Description: "The volume's bytes (Content-Length required).",
		Content:     map[string]*huma.MediaType{"application/octet-stream": {}},
	}
	huma.Register(a, o, func(ctx context.Context, in *volumeUploadInput) (*struct{ Body api.Transfer }, error) {
		format := in.Format
		if format == "" {
			format = "raw"
		}
		t, err := d.storage.Upload(ctx, in.Pool, in.Volume, in.body, in.length,
			storage.UploadOptions{Create: in.Create, Format: format, SHA256: in.SHA256})
		if err != nil {
			return nil, toStatus(err)
		}
		return &struct{ Body api.Transfer }{t}, nil
	})
}

// HeaderSize announces a download's length (for progress) when the body
// is sent without Content-Length.
const HeaderSize = "X-Godwit-Size"

func (d *Daemon) registerVolumeDownload(a huma.API, o huma.Operation) {
	o.Responses = map[string]*huma.Response{"200": {
		Description: "The volume's bytes; the SHA-256 follows in the X-Godwit-Sha256 trailer.",
		Content:     map[string]*huma.MediaType{"application/octet-stream": {}},
	}}
	huma.Register(a, o, func(ctx context.Context, in *volumeInput) (*huma.StreamResponse, error) {
		size, stream, err := d.storage.Download(ctx, in.Pool, in.Volume)
		if err != nil {
			return nil, toStatus(err)
		}
		if v, err := d.storage.GetVolume(ctx, in.Pool, in.Volume); err == nil {
			if st, err := os.Stat(v.Path); err == nil && st.Mode().IsRegular() {
				size = st.Size() // libvirt streams the file as it is
			}
		}
		return &huma.StreamResponse{Body: func(hc huma.Context) {
			_, w := humago.Unwrap(hc)
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set(HeaderSize, strconv.FormatInt(size, 10))
			w.Header().Set("Trailer", api.HeaderSHA256+", "+api.HeaderError)
			w.WriteHeader(http.StatusOK)
			t, err := stream(hc.Context(), w)
			if err != nil {
				d.log.Warn("volume download broke off", "pool", in.Pool, "volume", in.Volume, "err", err)
				w.Header().Set(api.HeaderError, err.Error())
				return
			}
			w.Header().Set(api.HeaderSHA256, t.SHA256)
		}}, nil
	})
}

type imageInput struct {
	Image string `path:"image" doc:"Catalog image name"`
}

func (d *Daemon) listImages(ctx context.Context, _ *struct{}) (*struct{ Body api.ImageList }, error) {
	imgs, err := d.images.List(ctx)
	if err != nil {
		return nil, err
	}
	return &struct{ Body api.ImageList }{api.ImageList{Images: imgs}}, nil
}

func (d *Daemon) getImage(ctx context.Context, in *imageInput) (*struct{ Body api.Image }, error) {
	img, err := d.images.Get(ctx, in.Image)
	if err != nil {
		return nil, err
	}
	return &struct{ Body api.Image }{img}, nil
}

func (d *Daemon) deleteImage(ctx context.Context, in *imageInput) (*struct{}, error) {
	return nil, d.images.Delete(ctx, in.Image)
}

func (d *Daemon) importImage(ctx context.Context, in *struct{ Body api.ImageImport }) (*opOutput, error) {
	o, err := d.images.Import(ctx, in.Body)
	if err != nil {
		return nil, err
	}
	return &opOutput{o}, nil
}

func (d *Daemon) buildImage(ctx context.Context, in *struct{ Body api.ImageBuild }) (*opOutput, error) {
	o, err := d.images.Build(ctx, in.Body)
	if err != nil {
		return nil, err
	}
	return &opOutput{o}, nil
}

func (d *Daemon) convertImage(ctx context.Context, in *struct {
	Image string `path:"image" doc:"Catalog image name"`
	Body  api.ImageConvert
}) (*opOutput, error) {
	o, err := d.images.Convert(ctx, in.Image, in.Body)
	if err != nil {
		return nil, err
	}
	return &opOutput{o}, nil
}

func (d *Daemon) attachDisk(ctx context.Context, in *struct {
	Name string `path:"name" doc:"VM name"`
	Body api.DiskAttach
}) (*vmOutput, error) {
	return d.vmAction(ctx, func() (api.VM, error) { return d.vms.AttachDisk(ctx, in.Name, in.Body) })
}

func (d *Daemon) detachDisk(ctx context.Context, in *struct {
	Name string `path:"name" doc:"VM name"`
	Disk string `path:"disk" doc:"Disk name in the VM"`
}) (*vmOutput, error) {
	return d.vmAction(ctx, func() (api.VM, error) { return d.vms.DetachDisk(ctx, in.Name, in.Disk) })
}

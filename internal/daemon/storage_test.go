package daemon

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
)

// The storage routes over the socket: pools, volumes (streamed upload and
// download with the checksum in a trailer), images and bad input as 400s.
func TestStorageRoutes(t *testing.T) {
	td := newDaemon(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pools, err := td.c.ListPools(ctx)
	if err != nil || len(pools) != 1 || !pools[0].Default {
		t.Fatalf("ListPools = %+v, %v", pools, err)
	}
	pool := pools[0].Name

	st, h, body := td.do("POST", "/v1/pools", `{"name":"../evil","path":"/tmp/x"}`)
	wantError(t, "pool with a path in its name", st, h, body, 400, "name")
	st, h, body = td.do("POST", "/v1/pools/"+pool+"/volumes", `{"name":"v","size":"10XB"}`)
	wantError(t, "bad size unit", st, h, body, 400, "unknown unit")
	st, h, body = td.do("DELETE", "/v1/pools/"+pool, "")
	wantError(t, "delete the default pool", st, h, body, 409, "own disk pool")
	st, h, body = td.do("GET", "/v1/images/no-such", "")
	wantError(t, "missing image", st, h, body, 404, "no-such")
	st, h, body = td.do("POST", "/v1/images", `{"name":"x","url":"ftp://host/x.img"}`)
	wantError(t, "ftp URL", st, h, body, 400, "http")

	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<17)
	tr, err := td.c.UploadVolume(ctx, pool, "up", bytes.NewReader(data), int64(len(data)), client.UploadOptions{Create: true})
	if err != nil || tr.Bytes != int64(len(data)) {
		t.Fatalf("upload = %+v, %v", tr, err)
	}
	dl, err := td.c.DownloadVolume(ctx, pool, "up")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(dl.Body)
	if err != nil {
		t.Fatal(err)
	}
	back, err := dl.Finish()
	if err != nil || !bytes.Equal(got, data) || back.SHA256 != tr.SHA256 {
		t.Fatalf("download: %d bytes, %+v, %v", len(got), back, err)
	}
	// Upload without create to a missing volume; a body shorter than its
	// Content-Length.
	if _, err := td.c.UploadVolume(ctx, pool, "missing", bytes.NewReader(data), int64(len(data)), client.UploadOptions{}); api.Status(err) != 404 {
		t.Fatalf("upload to a missing volume: %v", err)
	}
	vols, err := td.c.ListVolumes(ctx, "")
	if err != nil || len(vols) != 1 || vols[0].Name != "up" || vols[0].Format != "raw" {
		t.Fatalf("ListVolumes = %+v, %v", vols, err)
	}
	if _, err := td.c.ResizeVolume(ctx, pool, "up", api.MiB); api.Status(err) != 400 || !strings.Contains(err.Error(), "grow") {
		t.Fatalf("shrink: %v", err)
	}
	if err := td.c.DeleteVolume(ctx, pool, "up"); err != nil {
		t.Fatal(err)
	}
}

package e2e

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
)

// qemuImgInfo reads `qemu-img info` of a file.
func qemuImgInfo(t *testing.T, path string) (format, backing string, virtual int64) {
	t.Helper()
	out, err := exec.Command("qemu-img", "info", "--output=json", "-U", path).Output()
	if err != nil {
		t.Fatalf("qemu-img info %s: %v", path, err)
	}
	var info struct {
		Format      string `json:"format"`
		Backing     string `json:"backing-filename"`
		VirtualSize int64  `json:"virtual-size"`
	}
	json.Unmarshal(out, &info)
	return info.Format, info.Backing, info.VirtualSize
}

func (d *Daemon) imageJSON(name string) api.Image {
	d.t.Helper()
	var img api.Image
	if err := json.Unmarshal([]byte(d.MustCLI("image", "show", name, "-o", "json")), &img); err != nil {
		d.t.Fatal(err)
	}
	return img
}

// The catalog: import from a URL (an HTTP server on loopback, checksum
// checked) and from a file, refuse what is no image, convert, and give VM
// disks as overlays or full copies; an image a VM uses is not deleted.
func TestImageCatalog(t *testing.T) {
	concurrent(t)
	d := StartDaemon(t)
	src := filepath.Join(d.Dir, "src.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", src, "48M").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	srcSum := sha(t, src)
	srv := httptest.NewServer(http.FileServer(http.Dir(d.Dir)))
	t.Cleanup(srv.Close)

	// A wrong checksum fails and leaves nothing.
	_, errOut, code := d.CLI("image", "import", srv.URL+"/src.qcow2", "--name", "web", "--sha256", strings.Repeat("1", 64))
	if code != 1 || !strings.Contains(errOut, "sha256") {
		t.Fatalf("import with a wrong sha256: exit %d, %q", code, errOut)
	}
	if out := d.MustCLI("image", "list", "-q"); strings.TrimSpace(out) != "" {
		t.Fatalf("a failed import left %q", out)
	}
	if ents, _ := filepath.Glob(filepath.Join(d.Dir, "state", "images", "*")); len(ents) != 0 {
		t.Fatalf("a failed import left files: %v", ents)
	}
	d.MustCLI("image", "import", srv.URL+"/src.qcow2", "--name", "web", "--sha256", srcSum)
	img := d.imageJSON("web")
	if img.Format != "qcow2" || img.VirtualSize != 48*api.MiB || img.SHA256 != srcSum || len(img.Backing) != 0 || img.ActualSize == 0 {
		t.Fatalf("imported image = %+v", img)
	}
	if _, _, code := d.CLI("image", "import", src, "--name", "web"); code != 1 {
		t.Fatal("a second image of the same name was accepted")
	}
	_, errOut, code = d.CLI("image", "import", srv.URL+"/nothing-here.qcow2", "--name", "gone")
	if code != 1 || !strings.Contains(errOut, "404") {
		t.Fatalf("import of a missing URL: exit %d, %q", code, errOut)
	}

	// Not images: text, a truncated qcow2; and names that walk paths.
	text := filepath.Join(d.Dir, "notes.txt")
	os.WriteFile(text, []byte(strings.Repeat("just some text\n", 100)), 0o644)
	trunc := filepath.Join(d.Dir, "trunc.qcow2")
	raw, _ := os.ReadFile(src)
	os.WriteFile(trunc, raw[:300], 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"image", "import", text, "--name", "text"}, "not a disk image"},
		{[]string{"image", "import", trunc, "--name", "trunc"}, "not a usable disk image"},
		{[]string{"image", "import", src, "--name", "../../etc/evil"}, "must not contain '/'"},
		{[]string{"image", "import", src, "--name", "a..b"}, "'..'"},
		{[]string{"image", "import", filepath.Join(d.Dir, "missing.qcow2"), "--name", "missing"}, "no such file"},
		{[]string{"image", "show", "no-such-image"}, "not found"},
	} {
		_, errOut, code := d.CLI(c.args...)
		if code == 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("godwit %s: exit %d, %q; want an error saying %q", strings.Join(c.args, " "), code, errOut, c.want)
		}
	}
	if out := strings.Fields(d.MustCLI("image", "list", "-q")); len(out) != 1 {
		t.Fatalf("refused imports left images: %v", out)
	}
	if _, err := os.Stat("/etc/evil.qcow2"); err == nil {
		t.Fatal("a name with ../ wrote outside the catalog")
	}

	// Convert both ways.
	d.MustCLI("image", "convert", "web", "--format", "raw", "--name", "web-raw")
	if f, _, v := qemuImgInfo(t, d.imageJSON("web-raw").Path); f != "raw" || v != 48<<20 {
		t.Fatalf("converted to raw: %s %d", f, v)
	}
	d.MustCLI("image", "convert", "web-raw", "--format", "qcow2", "--name", "web-q2")
	if f, _, _ := qemuImgInfo(t, d.imageJSON("web-q2").Path); f != "qcow2" {
		t.Fatalf("converted back: %s", f)
	}

	// A VM's disk on a catalog image is an overlay on it; clone: full is
	// an independent copy.
	name := "e2e-img-" + uniq()
	spec := guestSpec(t, name)
	spec.Disks = []api.Disk{{Name: "root", Image: "web", Size: 64 * api.MiB}, {Name: "copy", Image: "web-q2", Clone: "full"}}
	d.createVM(spec, true)
	d.waitConsole(name, "GUEST-DEVICES blk=vda,vdb", 0, guestWait)
	v, _ := d.C.GetVM(ctxT(t, 10*time.Second), name)
	if f, backing, size := qemuImgInfo(t, v.Disks[0].Path); f != "qcow2" || backing != img.Path || size != 64<<20 || v.Disks[0].Image != "web" {
		t.Fatalf("image disk: %s backing %q size %d, disk %+v", f, backing, size, v.Disks[0])
	}
	if f, backing, size := qemuImgInfo(t, v.Disks[1].Path); f != "qcow2" || backing != "" || size != 48<<20 {
		t.Fatalf("full clone: %s backing %q size %d", f, backing, size)
	}
	_, errOut, code = d.CLI("image", "delete", "web")
	if code != 1 || !strings.Contains(errOut, name) || !strings.Contains(errOut, "in use") {
		t.Fatalf("deleting an image in use: exit %d, %q", code, errOut)
	}
	// The full copy does not need its image.
	d.MustCLI("image", "delete", "web-q2")
	if used := d.imageJSON("web").UsedBy; len(used) != 1 || used[0] != name {
		t.Fatalf("image usedBy = %v", used)
	}
	// A spec naming a missing image is a 400 that says so.
	bad := guestSpec(t, "e2e-img-bad-"+uniq())
	bad.Disks = []api.Disk{{Name: "root", Image: "no-such-image"}}
	if _, err := d.C.CreateVM(ctxT(t, 10*time.Second), bad, clientCreate()); api.Status(err) != 400 || !strings.Contains(err.Error(), "no-such-image") {
		t.Fatalf("create with a missing image: %v", err)
	}
	d.MustCLI("vm", "delete", "--force", name)
	d.MustCLI("image", "delete", "web")
	d.MustCLI("image", "delete", "web-raw")
	if ents, _ := filepath.Glob(filepath.Join(d.Dir, "state", "images", "*")); len(ents) != 0 {
		t.Fatalf("deleted images left files: %v", ents)
	}
}

func clientCreate() client.CreateOptions { return client.CreateOptions{} }

func clientDelete() client.DeleteOptions { return client.DeleteOptions{Force: true} }

// Cancelling a URL import stops the download and leaves nothing behind.
func TestImageImportCancel(t *testing.T) {
	d := StartDaemon(t)
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1073741824")
		buf := make([]byte, 64<<10)
		for {
			if _, err := w.Write(buf); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-stop:
				return
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}))
	t.Cleanup(func() { close(stop); srv.Close() })
	id := strings.TrimSpace(d.MustCLI("image", "import", srv.URL+"/slow.raw", "--name", "slow", "--no-wait", "-q"))
	eventually(t, 30*time.Second, "the download to start", func() bool {
		op, err := d.C.GetOperation(ctxT(t, 5*time.Second), id)
		return err == nil && op.Progress.Current > 0
	})
	d.MustCLI("op", "cancel", id)
	op, _ := d.C.WaitOperation(ctxT(t, 30*time.Second), id, nil)
	if op.State != api.OpCancelled {
		t.Fatalf("import after cancel: %s %s", op.State, op.Error)
	}
	if out := strings.TrimSpace(d.MustCLI("image", "list", "-q")); out != "" {
		t.Fatalf("a cancelled import left %q", out)
	}
	if ents, _ := filepath.Glob(filepath.Join(d.Dir, "state", "images", "*")); len(ents) != 0 {
		t.Fatalf("a cancelled import left files: %v", ents)
	}
	if ents, _ := filepath.Glob(filepath.Join(d.Dir, "state", "images", ".*")); len(ents) != 0 {
		t.Fatalf("a cancelled import left files: %v", ents)
	}
}

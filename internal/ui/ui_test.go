package ui

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/godwit-project/godwit/internal/testenv"
)

// The page's scripts parse (node --check), and the page loads only its
// own files: the CSP forbids the rest, so a CDN link would break it.
func TestAssets(t *testing.T) {
	html, err := fs.ReadFile(assets, "assets/index.html")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"http://", "https://", "<script>", "style="} {
		if strings.Contains(string(html), bad) {
			t.Errorf("index.html has %q: the CSP allows only the page's own files, no inline script or style", bad)
		}
	}
	testenv.RequireCommand(t, "node")
	scripts, _ := fs.Glob(assets, "assets/*.js")
	if len(scripts) == 0 {
		t.Fatal("no scripts embedded")
	}
	for _, s := range scripts {
		src, _ := fs.ReadFile(assets, s)
		// vnc.js is a module (noVNC waits at top level); the rest are scripts.
		kind := "--input-type=commonjs"
		if s == "assets/vnc.js" {
			kind = "--input-type=module"
		}
		cmd := exec.Command("node", "--check", kind)
		cmd.Stdin = strings.NewReader(string(src))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s does not parse: %v\n%s", s, err, out)
		}
	}
}

// The committed assets are what the sources and the lockfile build:
// web/built.sha256 (written by web/build.sh) names every input and output
// with its hash. An edited source without a rebuild, or a built file
// edited by hand, fails here without npm; make test's ui-check rebuilds.
func TestAssetsBuilt(t *testing.T) {
	want, err := os.ReadFile("web/built.sha256")
	if err != nil {
		t.Fatal(err)
	}
	srcs, _ := filepath.Glob("web/src/*")
	sort.Strings(srcs)
	files := []string{"build.sh", "package.json", "package-lock.json"}
	for _, s := range srcs {
		files = append(files, strings.TrimPrefix(s, "web/"))
	}
	files = append(files, "../assets/app.css", "../assets/app.js", "../assets/index.html", "../assets/vnc.js")
	var got strings.Builder
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join("web", f))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&got, "%x  %s\n", sha256.Sum256(b), f)
	}
	if got.String() != string(want) {
		t.Fatalf("internal/ui/assets are stale against web/src and web/package-lock.json (run make ui-assets, commit the result)\nnow:\n%swhen built:\n%s", got.String(), want)
	}
}

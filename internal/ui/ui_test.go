package ui

import (
	"io/fs"
	"os/exec"
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
		cmd := exec.Command("node", "--check", "--input-type=commonjs")
		cmd.Stdin = strings.NewReader(string(src))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s does not parse: %v\n%s", s, err, out)
		}
	}
}

package e2e

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"libvirt.org/go/libvirtxml"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
)

// vncSpec is the test guest with a graphical console; console=tty0 puts
// the kernel's messages on its screen too (its serial stays the test's).
func vncSpec(t *testing.T, name string) api.VMSpec {
	s := guestSpec(t, name, "console=tty0", "loglevel=7")
	s.Graphics = api.GraphicsVNC
	return s
}

// startVNCGuest starts a daemon with a TLS listener (at addr) and a
// graphics: vnc guest named prefix+something, booted.
func startVNCGuest(t *testing.T, prefix string) (d *Daemon, addr, name string) {
	concurrent(t)
	addr = freeAddr(t)
	d = StartDaemon(t, "--listen", addr)
	name = prefix + uniq()
	d.createVM(vncSpec(t, name), true)
	d.waitConsole(name, `GODWIT-GUEST-UP`, 0, 2*time.Minute)
	return d, addr, name
}

// A VM with graphics: vnc shows its screen through the daemon's
// websocket and nowhere else: QEMU listens on a unix socket in libvirt's
// private directory and on no TCP port; an admin's Ctrl-Alt-Del reaches
// the guest (it reboots), a read-scope viewer sees the screen but its
// Ctrl-Alt-Del does not; a second viewer does not disconnect the first;
// a cross-site upgrade is refused; a VM without graphics gets a 409 that
// says why.
func TestVNCConsole(t *testing.T) {
	d, addr, name := startVNCGuest(t, "e2e-vnc-")

	plain := "e2e-novnc-" + uniq()
	d.createVM(guestSpec(t, plain), false)
	if _, err := d.C.AttachVNC(ctxT(t, 10*time.Second), plain); api.Status(err) != http.StatusConflict || !strings.Contains(err.Error(), "graphics: vnc") {
		t.Fatalf("a VM without graphics: %v (status %d), want a 409 naming graphics: vnc", err, api.Status(err))
	}

	// The display is a unix socket in a directory only root and QEMU
	// enter, and QEMU listens on no TCP port.
	live, err := virsh(t, "dumpxml", name)
	if err != nil {
		t.Fatal(err)
	}
	sock := checkVNCOnSocketOnly(t, live)
	if st, err := os.Stat(filepath.Dir(sock)); err != nil || st.Mode().Perm()&0o007 != 0 {
		t.Fatalf("the socket's directory %s: %v, mode %v: others may enter", filepath.Dir(sock), err, st.Mode())
	}
	pid := readPIDFile(t, "/run/libvirt/qemu/"+name+".pid")
	ss, err := exec.Command("ss", "-ltnpH").CombinedOutput()
	if err != nil || pid == 0 {
		t.Fatalf("ss -ltnp: %v %s (qemu pid %d)", err, ss, pid)
	}
	if strings.Contains(string(ss), "pid="+strconv.Itoa(pid)+",") {
		t.Fatalf("QEMU (pid %d) listens on TCP:\n%s", pid, ss)
	}

	// An admin's view: the screen has the size the server says, and the
	// kernel's text on it.
	first := vncViewer(t, d.C, name)
	painted, err := first.update()
	if err != nil {
		t.Fatal(err)
	}
	if first.width != 720 || first.height != 400 || painted != first.width*first.height {
		t.Errorf("screen %dx%d, %d pixels painted; want VGA text mode's 720x400, all of it", first.width, first.height, painted)
	}
	lit := first.lit()
	png := filepath.Join(screenshotDir(t), "vnc-framebuffer.png")
	if err := first.savePNG(png); err != nil {
		t.Fatal(err)
	}
	t.Logf("screen %dx%d %q: %d of %d pixels lit, picture %s", first.width, first.height, first.name, lit, painted, png)
	if lit < 1000 {
		t.Fatalf("the screen is blank: %d pixels lit", lit)
	}

	// A second viewer, a read-scope token over TLS: it sees the screen,
	// and the first viewer stays connected.
	reader := readScopeClient(t, d, addr)
	viewer := vncViewer(t, reader, name)
	if _, err := viewer.update(); err != nil || viewer.lit() < 1000 {
		t.Fatalf("the read-scope viewer's screen: %v, %d pixels lit", err, viewer.lit())
	}
	if _, err := first.update(); err != nil {
		t.Fatalf("the first viewer after a second connected: %v", err)
	}

	// Its Ctrl-Alt-Del never reaches the guest: no reboot, the ticks go on.
	offset := consoleSize(t, d, name)
	if err := viewer.ctrlAltDel(); err != nil {
		t.Fatal(err)
	}
	if _, err := viewer.update(); err != nil {
		t.Fatalf("the read-scope viewer after its keys: %v", err)
	}
	time.Sleep(8 * time.Second)
	after := d.consoleFrom(name, offset)
	if strings.Contains(after, "GODWIT-GUEST-UP") || lastTick(after) == 0 {
		t.Fatalf("after a read-scope Ctrl-Alt-Del the guest rebooted or stopped; its console:\n%s", after)
	}
	// The daemon says what it dropped when the viewer leaves.
	viewer.conn.Close()
	eventually(t, 10*time.Second, "the daemon's log to say it dropped the read-scope viewer's input", func() bool {
		return strings.Contains(d.Log(), `msg="vnc viewer's input dropped (view only)" vm=`+name+` by=token:e2e-vnc-reader`)
	})

	// The admin's does: the kernel restarts at once (Ctrl-Alt-Del with no init to ask).
	offset = consoleSize(t, d, name)
	if err := first.ctrlAltDel(); err != nil {
		t.Fatal(err)
	}
	d.waitConsole(name, `GODWIT-GUEST-UP`, offset, 2*time.Minute)

	// A page of another site cannot open it with the user's credentials.
	roots := tlsRoots(t, d)
	h := http.Header{"Origin": {"https://evil.example"}, "Authorization": {"Bearer " + adminToken(t, d)}}
	_, resp, err := websocket.Dial(ctxT(t, 10*time.Second), "wss://"+addr+"/v1/vms/"+name+"/vnc/ws", &websocket.DialOptions{HTTPHeader: h,
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a cross-site upgrade: %v, response %v; want 403", err, resp)
	}

	// godwit vm vnc serves it on a loopback port for a desktop viewer,
	// and never on another address.
	if _, errOut, code := d.CLI("vm", "vnc", name, "--listen", "0.0.0.0:5999"); code != 1 || !strings.Contains(errOut, "not a loopback address") {
		t.Fatalf("vm vnc --listen 0.0.0.0: exit %d, %q", code, errOut)
	}
	tcp := vncViewerTCP(t, d, name)
	if _, err := tcp.update(); err != nil || tcp.width != 720 || tcp.lit() < 1000 {
		t.Fatalf("through vm vnc: %v, %dx%d, %d pixels lit", err, tcp.width, tcp.height, tcp.lit())
	}

	// Stopped, it has no display.
	d.waitOp(d.C.StopVM(ctxT(t, time.Minute), name, api.StopRequest{Force: true}))
	if _, err := d.C.AttachVNC(ctxT(t, 10*time.Second), name); api.Status(err) != http.StatusConflict || !strings.Contains(err.Error(), "only while it runs") {
		t.Fatalf("a stopped VM's display: %v, want a 409", err)
	}
}

// checkVNCOnSocketOnly checks that a running domain's VNC display is on
// a unix socket and no TCP port, and returns the socket.
func checkVNCOnSocketOnly(t *testing.T, liveXML string) string {
	t.Helper()
	var dom libvirtxml.Domain
	if err := dom.Unmarshal(liveXML); err != nil {
		t.Fatal(err)
	}
	if dom.Devices == nil || len(dom.Devices.Graphics) != 1 || dom.Devices.Graphics[0].VNC == nil {
		t.Fatalf("the domain has no one VNC display:\n%s", liveXML)
	}
	v := dom.Devices.Graphics[0].VNC
	if v.Port != 0 || v.AutoPort != "" || v.Listen != "" || v.WebSocket != 0 || len(v.Listeners) != 1 || v.Listeners[0].Socket == nil ||
		v.Listeners[0].Socket.Socket == "" {
		t.Fatalf("the VNC display is not on a unix socket only: %+v", v)
	}
	return v.Listeners[0].Socket.Socket
}

// vncViewer connects to name's display through c and shakes hands.
func vncViewer(t *testing.T, c *client.Client, name string) *rfb {
	t.Helper()
	conn, err := c.AttachVNC(ctxT(t, 30*time.Second), name)
	if err != nil {
		t.Fatalf("vnc %s: %v", name, err)
	}
	t.Cleanup(func() { conn.Close() })
	v, err := rfbHandshake(conn)
	if err != nil {
		t.Fatalf("vnc %s: %v", name, err)
	}
	return v
}

// tlsRoots is the daemon's CA.
func tlsRoots(t *testing.T, d *Daemon) *x509.CertPool {
	t.Helper()
	ca, err := os.ReadFile(filepath.Join(d.Dir, "state", "tls", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca) {
		t.Fatal("the daemon's ca.crt holds no certificate")
	}
	return roots
}

// readScopeClient is a client of d's TCP listener with a new read-scope
// token and no client certificate.
func readScopeClient(t *testing.T, d *Daemon, addr string) *client.Client {
	t.Helper()
	secret := strings.TrimSpace(d.MustCLI("token", "create", "--name", "e2e-vnc-reader-"+uniq(), "--scope", "read", "-q"))
	c, err := client.New(client.Options{URL: "https://" + addr, TLS: &tls.Config{RootCAs: tlsRoots(t, d)}, Token: secret})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// adminToken makes an admin-scope token.
func adminToken(t *testing.T, d *Daemon) string {
	t.Helper()
	return strings.TrimSpace(d.MustCLI("token", "create", "--name", "e2e-vnc-admin-"+uniq(), "--scope", "admin", "-q"))
}

// vncViewerTCP runs godwit vm vnc NAME on a free loopback port and
// connects to it as a desktop viewer would.
func vncViewerTCP(t *testing.T, d *Daemon, name string) *rfb {
	t.Helper()
	cmd := exec.Command(godwitBin, "vm", "vnc", name, "--listen", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "GODWIT_SOCKET="+d.Socket)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stderr).ReadString('\n')
	m := regexp.MustCompile(`display is at (127\.0\.0\.1:\d+)`).FindStringSubmatch(line)
	if err != nil || m == nil {
		t.Fatalf("vm vnc said %q (%v)", line, err)
	}
	conn, err := net.DialTimeout("tcp", m[1], 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	v, err := rfbHandshake(conn)
	if err != nil {
		t.Fatalf("through vm vnc: %v", err)
	}
	return v
}

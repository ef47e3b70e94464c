package domainxml

import (
	"libvirt.org/go/libvirtxml"

	"github.com/godwit-project/godwit/api"
)

// graphics gives a VM with graphics: vnc its display: VNC on a unix
// socket only, never a TCP port. The socket has no path here: libvirt
// puts it in the domain's own directory under /var/lib/libvirt/qemu
// (domain-N-NAME/vnc.sock, mode 0750, owned by the user QEMU runs as, made
// at start with QEMU's DAC label and removed at stop), which only root
// and QEMU can enter, whoever qemu.conf makes QEMU; the running domain's
// XML says where it is (VNCSocket). A migration's destination makes its
// own. The daemon proxies it over an authenticated websocket.
//
// The video card is virtio (virtio-vga on i440fx): VGA text and VBE modes
// without a driver, resizable with one. The USB tablet gives an absolute
// pointer, so the guest's cursor follows the viewer's without grabbing.
func graphics(in *Input, d *libvirtxml.Domain) error {
	if in.Spec.Graphics != api.GraphicsVNC {
		return nil
	}
	d.Devices.Graphics = []libvirtxml.DomainGraphic{{VNC: &libvirtxml.DomainGraphicVNC{
		Listeners: []libvirtxml.DomainGraphicListener{{Socket: &libvirtxml.DomainGraphicListenerSocket{}}},
	}}}
	d.Devices.Videos = []libvirtxml.DomainVideo{{Model: libvirtxml.DomainVideoModel{Type: "virtio", Heads: 1, Primary: "yes"}}}
	d.Devices.Inputs = append(d.Devices.Inputs, libvirtxml.DomainInput{Type: "tablet", Bus: "usb"})
	return nil
}

// VNCSocket is the unix socket of a running domain's VNC display, from
// its live XML; "" when it has none (not running, no VNC, or VNC on TCP,
// which godwit never proxies).
func VNCSocket(liveXML string) string {
	var d libvirtxml.Domain
	if d.Unmarshal(liveXML) != nil || d.Devices == nil {
		return ""
	}
	for _, g := range d.Devices.Graphics {
		if g.VNC == nil {
			continue
		}
		for _, l := range g.VNC.Listeners {
			if l.Socket != nil && l.Socket.Socket != "" {
				return l.Socket.Socket
			}
		}
		if g.VNC.Socket != "" {
			return g.VNC.Socket
		}
	}
	return ""
}

// deriveGraphics reads back the display graphics gives: VNC on a unix
// socket (libvirt's, or a path of the domain's own), with the virtio
// video card and the USB tablet. VNC on a TCP port is kept as it is:
// godwit proxies a unix socket only.
func deriveGraphics(d *libvirtxml.Domain, out *Derived) error {
	dev := d.Devices
	if dev == nil || len(dev.Graphics) != 1 || dev.Graphics[0].VNC == nil {
		return nil
	}
	v := *dev.Graphics[0].VNC
	if len(v.Listeners) != 1 || v.Listeners[0].Socket == nil {
		return nil
	}
	v.Listeners, v.Socket = nil, ""
	if !empty(v) {
		return nil
	}
	out.Graphics = api.GraphicsVNC
	dev.Graphics = nil
	if len(dev.Videos) == 1 {
		m := dev.Videos[0].Model
		m.Primary = ""
		if m == (libvirtxml.DomainVideoModel{Type: "virtio", Heads: 1}) && dev.Videos[0].Driver == nil {
			dev.Videos = nil
		}
	}
	var inputs []libvirtxml.DomainInput
	for _, in := range dev.Inputs {
		if in.Type == "tablet" && in.Bus == "usb" && in.Model == "" && in.Driver == nil && empty(in.Source) {
			continue
		}
		inputs = append(inputs, in)
	}
	dev.Inputs = inputs
	// libvirt gives a display an audio backend of none when it has
	// no other.
	if len(dev.Audios) == 1 && dev.Audios[0].None != nil {
		dev.Audios = nil
	}
	return nil
}

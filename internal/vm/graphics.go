package vm

import (
	"context"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/domainxml"
)

// VNCSocket returns the unix socket of a running VM's VNC display (spec
// graphics: vnc), for the daemon to proxy: a 404 for an unknown VM, a
// 409 that says why when it has no display to show now.
func (s *Service) VNCSocket(ctx context.Context, name string) (string, error) {
	r, err := s.getRecord(ctx, name)
	if err != nil {
		if api.Status(err) == 404 {
			if _, derr := s.hv.Lookup(ctx, name); derr == nil {
				return "", api.Conflict("vm %s was not created by godwit, so godwit shows no graphical console for it (vm adopt takes it under management)", name)
			}
		}
		return "", err
	}
	if r.Spec.Graphics != api.GraphicsVNC {
		return "", api.Conflict("vm %s has no graphical console: its spec has no graphics: vnc (vm apply adds it; the VM gets it at its next start)", name)
	}
	d, err := s.hv.Lookup(ctx, name)
	if err != nil {
		return "", mapHypervisorError(err)
	}
	if !d.State.Active() {
		return "", api.Conflict("vm %s is %s: its display exists only while it runs", name, d.State)
	}
	x, err := s.hv.XML(ctx, name, false)
	if err != nil {
		return "", mapHypervisorError(err)
	}
	sock := domainxml.VNCSocket(x)
	if sock == "" {
		return "", api.Conflict("vm %s runs without its VNC display (graphics: vnc was set after it started): stop and start it to get one", name)
	}
	return sock, nil
}

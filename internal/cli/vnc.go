package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/spf13/cobra"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
)

func vmVNCCmd(g *globals) *cobra.Command {
	var listen string
	cmd := &cobra.Command{
		Use:   "vnc NAME",
		Short: "Serve a VM's graphical console (graphics: vnc) on a local TCP port for a VNC viewer",
		Long: `Vnc listens on a loopback address (--listen, default 127.0.0.1:5900) and
carries each VNC viewer that connects there to the VM's display, over the
daemon's authenticated websocket (the one the web page's console uses):
vncviewer 127.0.0.1::5900. Security type None: the port is on this machine
only, and the daemon checked who you are. A read-scope login is view only.
Ctrl-C ends it.`,
		Args:              exactArgs(1, "a VM name"),
		ValidArgsFunction: completeVMs(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			return serveVNC(cmd.Context(), c, args[0], listen, g)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:5900", "the loopback address and port to serve the display on (port 0: any free one)")
	return cmd
}

// serveVNC relays every viewer that connects to listen to name's display
// until ctx ends.
func serveVNC(ctx context.Context, c *client.Client, name, listen string, g *globals) error {
	if err := loopback(listen); err != nil {
		return err
	}
	v, err := c.GetVM(ctx, name)
	if err != nil {
		return err
	}
	if v.Spec == nil || v.Spec.Graphics != api.GraphicsVNC {
		return fmt.Errorf("vm %s has no graphical console: its spec has no graphics: vnc", name)
	}
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	defer l.Close()
	fmt.Fprintf(g.errOut, "vm %s's display is at %s (e.g. vncviewer %s); Ctrl-C ends\n", name, l.Addr(), viewerAddr(l.Addr()))
	go func() { <-ctx.Done(); l.Close() }()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		viewer, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer viewer.Close()
			display, err := c.AttachVNC(ctx, name)
			if err != nil {
				fmt.Fprintf(g.errOut, "viewer %s: %v\n", viewer.RemoteAddr(), err)
				return
			}
			defer display.Close()
			go func() { <-ctx.Done(); display.Close() }()
			done := make(chan struct{})
			go func() { _, _ = io.Copy(display, viewer); display.Close(); close(done) }()
			_, _ = io.Copy(viewer, display)
			viewer.Close()
			<-done
		}()
	}
}

// loopback refuses an address off this machine: the display would be on
// the network with no password.
func loopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--listen: %w (e.g. 127.0.0.1:5900)", err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("--listen: %s is not a loopback address: the display would be open to the network without a password (use 127.0.0.1 or ::1, and an SSH tunnel to reach it from elsewhere)", host)
	}
	return nil
}

// viewerAddr is addr as vncviewer takes a port: HOST::PORT.
func viewerAddr(addr net.Addr) string {
	host, port, _ := net.SplitHostPort(addr.String())
	return host + "::" + port
}

package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
)

func newVolumeCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "volume",
		Short: "Storage volumes: create, resize, clone, upload, download",
		Long: `Volumes live in storage pools and are named POOL/VOLUME. A volume becomes a
VM's disk with 'godwit vm disk attach VM POOL/VOLUME' or a spec's
'volume: POOL/VOLUME'. Volumes only grow; a volume a VM uses is not deleted.`,
	}
	cmd.AddCommand(volumeCreateCmd(g), volumeListCmd(g), volumeShowCmd(g), volumeDeleteCmd(g), volumeResizeCmd(g),
		volumeCloneCmd(g), volumeUploadCmd(g), volumeDownloadCmd(g))
	return cmd
}

// splitVol reads POOL/VOLUME from the command line.
func splitVol(s string) (string, string, error) {
	pool, vol, ok := strings.Cut(s, "/")
	if !ok || pool == "" || vol == "" {
		return "", "", usagef("%q is not POOL/VOLUME", s)
	}
	return pool, vol, nil
}

// completeVolumes completes POOL/VOLUME names, for any argument.
func completeVolumes(g *globals) completion {
	all := func(c *client.Client, ctx context.Context) ([]api.Volume, error) { return c.ListVolumes(ctx, "") }
	return completeNames(g, all, func(v api.Volume) string { return v.Pool + "/" + v.Name + "\t" + v.Capacity.Human() })
}

// onVolume is the RunE of a command on the volume its first argument
// names: it reads POOL/VOLUME, connects and runs f.
func onVolume(g *globals, f func(cmd *cobra.Command, args []string, c *client.Client, pool, name string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		pool, name, err := splitVol(args[0])
		if err != nil {
			return err
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		return f(cmd, args, c, pool, name)
	}
}

// sizeVolume is the RunE of a command that gives the volume its first
// argument names a --size (create, resize), and prints the volume.
func sizeVolume(g *globals, size *string, what string, call func(c *client.Client, ctx context.Context, pool, name string, size api.Size) (api.Volume, error)) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		pool, name, err := splitVol(args[0])
		if err != nil {
			return err
		}
		sz, err := sizeFlag("size", *size)
		if err != nil {
			return err
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		v, err := call(c, cmd.Context(), pool, name, sz)
		if err != nil {
			return err
		}
		return printVolumeDone(g, v, what)
	}
}

// sizeFlag parses a size with a unit as a usage error when bad.
func sizeFlag(name, s string) (api.Size, error) {
	if s == "" {
		return 0, usagef("--%s is required (e.g. --%s 10GiB)", name, name)
	}
	v, err := api.ParseSize(s)
	if err != nil {
		return 0, usagef("--%s: %v", name, err)
	}
	return v, nil
}

func volumeCreateCmd(g *globals) *cobra.Command {
	var size, format string
	cmd := &cobra.Command{
		Use:     "create POOL/VOLUME --size SIZE",
		Short:   "Create a blank volume",
		Example: `  godwit volume create default/data1 --size 10GiB`,
		Args:    exactArgs(1, "POOL/VOLUME"),
		RunE: sizeVolume(g, &size, "created", func(c *client.Client, ctx context.Context, pool, name string, sz api.Size) (api.Volume, error) {
			return c.CreateVolume(ctx, pool, api.VolumeCreate{Name: name, Size: sz, Format: format})
		}),
	}
	cmd.Flags().StringVar(&size, "size", "", "virtual size with a unit, e.g. 10GiB")
	cmd.Flags().StringVar(&format, "format", "qcow2", "qcow2 or raw")
	return cmd
}

func printVolumeDone(g *globals, v api.Volume, what string) error {
	return printMade(g, v, v.Pool+"/"+v.Name, func() {
		fmt.Fprintf(g.out, "volume %s/%s %s (%s, %s)\n", v.Pool, v.Name, what, v.Format, v.Capacity.Human())
	})
}

func volumeListCmd(g *globals) *cobra.Command {
	var pool string
	cmd := listCmd(g, listing[api.Volume]{
		use:   "list [--pool POOL]",
		short: "List volumes",
		fetch: func(c *client.Client, ctx context.Context) ([]api.Volume, error) {
			return c.ListVolumes(ctx, pool)
		},
		wrap:   func(vols []api.Volume) any { return api.VolumeList{Volumes: vols} },
		name:   func(v api.Volume) string { return v.Pool + "/" + v.Name },
		header: []string{"VOLUME", "FORMAT", "CAPACITY", "ALLOCATION", "USED BY"},
		row: func(v api.Volume) []string {
			return []string{v.Pool + "/" + v.Name, orDash(v.Format), v.Capacity.Human(), v.Allocation.Human(), orDash(strings.Join(v.UsedBy, ","))}
		},
	})
	cmd.Flags().StringVar(&pool, "pool", "", "only this pool's volumes")
	_ = cmd.RegisterFlagCompletionFunc("pool", completePools(g))
	return cmd
}

func volumeShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:               "show POOL/VOLUME",
		Short:             "Show a volume",
		Args:              exactArgs(1, "POOL/VOLUME"),
		ValidArgsFunction: completeVolumes(g),
		RunE: onVolume(g, func(cmd *cobra.Command, _ []string, c *client.Client, pool, name string) error {
			v, err := c.GetVolume(cmd.Context(), pool, name)
			if err != nil {
				return err
			}
			return printObject(g, v, showVolume)
		}),
	}
}

func showVolume(w io.Writer, v api.Volume) error {
	return fields(w, [][2]string{
		{"Volume", v.Pool + "/" + v.Name}, {"Path", v.Path}, {"Format", orDash(v.Format)},
		{"Capacity", v.Capacity.Human()}, {"Allocation", v.Allocation.Human()},
		{"Backing", orDash(v.Backing)}, {"Used by", orDash(strings.Join(v.UsedBy, ", "))},
	})
}

func volumeDeleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:               "delete POOL/VOLUME",
		Short:             "Delete a volume no VM uses",
		Args:              exactArgs(1, "POOL/VOLUME"),
		ValidArgsFunction: completeVolumes(g),
		RunE: onVolume(g, func(cmd *cobra.Command, args []string, c *client.Client, pool, name string) error {
			if err := c.DeleteVolume(cmd.Context(), pool, name); err != nil {
				return err
			}
			if !g.quiet {
				fmt.Fprintf(g.out, "volume %s deleted\n", args[0])
			}
			return nil
		}),
	}
}

func volumeResizeCmd(g *globals) *cobra.Command {
	var size string
	cmd := &cobra.Command{
		Use:               "resize POOL/VOLUME --size SIZE",
		Short:             "Grow a volume (online when a running VM uses it); never shrinks",
		Args:              exactArgs(1, "POOL/VOLUME"),
		RunE:              sizeVolume(g, &size, "resized", (*client.Client).ResizeVolume),
		ValidArgsFunction: completeVolumes(g),
	}
	cmd.Flags().StringVar(&size, "size", "", "new virtual size, e.g. 20GiB")
	return cmd
}

func volumeCloneCmd(g *globals) *cobra.Command {
	var w waitFlags
	cmd := &cobra.Command{
		Use:               "clone POOL/VOLUME [POOL2/]NEW",
		Short:             "Copy a volume into a new, independent one",
		Args:              exactArgs(2, "the source POOL/VOLUME and the new [POOL/]VOLUME"),
		ValidArgsFunction: completeVolumes(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			pool, name, err := splitVol(args[0])
			if err != nil {
				return err
			}
			req := api.VolumeClone{Name: args[1]}
			if p, n, ok := strings.Cut(args[1], "/"); ok {
				req.Pool, req.Name = p, n
			}
			if _, _, err := startOp(cmd.Context(), g, w, func(c *client.Client, ctx context.Context) (api.Operation, error) {
				return c.CloneVolume(ctx, pool, name, req)
			}); err != nil || w.noWait {
				return err
			}
			if !g.quiet {
				fmt.Fprintf(g.out, "volume %s cloned to %s\n", args[0], args[1])
			}
			return nil
		},
	}
	w.add(cmd.Flags())
	return cmd
}

func volumeUploadCmd(g *globals) *cobra.Command {
	var create bool
	var format, sum string
	cmd := &cobra.Command{
		Use:   "upload POOL/VOLUME FILE",
		Short: "Upload a file's bytes into a volume (streamed, SHA-256 checked)",
		Example: `  godwit volume upload default/disk1 disk.raw --create
  godwit volume upload default/disk1 disk.raw --sha256 9f86d0...`,
		Args: exactArgs(2, "POOL/VOLUME and a FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			pool, name, err := splitVol(args[0])
			if err != nil {
				return err
			}
			f, err := os.Open(args[1])
			if err != nil {
				return err
			}
			defer f.Close()
			st, err := f.Stat()
			if err != nil {
				return err
			}
			if !st.Mode().IsRegular() {
				return usagef("%s is not a regular file", args[1])
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			r, done := byteProgress(cmd.Context(), g, "upload "+args[0], st.Size())
			t, err := c.UploadVolume(cmd.Context(), pool, name, readerFunc(func(p []byte) (int, error) {
				n, err := f.Read(p)
				r(n)
				return n, err
			}), st.Size(), client.UploadOptions{Create: create, Format: format, SHA256: sum})
			done(err == nil)
			if err != nil {
				return err
			}
			if g.output != "table" {
				return printValue(g.out, g.output, t)
			}
			if !g.quiet {
				fmt.Fprintf(g.out, "uploaded %s to %s in %s, sha256 %s\n", api.Size(t.Bytes).Human(), args[0], t.Elapsed.Round(time.Millisecond), t.SHA256)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&create, "create", false, "create the volume (the file's size) when it is missing")
	cmd.Flags().StringVar(&format, "format", "", "with --create: raw (default) or qcow2, as libvirt should know it")
	cmd.Flags().StringVar(&sum, "sha256", "", "expected SHA-256 of the file; the daemon refuses a mismatch")
	return cmd
}

func volumeDownloadCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:               "download POOL/VOLUME FILE",
		Short:             "Download a volume's bytes into a file (- for stdout), SHA-256 checked",
		Args:              exactArgs(2, "POOL/VOLUME and a FILE"),
		ValidArgsFunction: completeVolumes(g),
		RunE: onVolume(g, func(cmd *cobra.Command, args []string, c *client.Client, pool, name string) error {
			dl, err := c.DownloadVolume(cmd.Context(), pool, name)
			if err != nil {
				return err
			}
			var out io.Writer = g.out
			var f *os.File
			if args[1] != "-" {
				if f, err = os.Create(args[1]); err != nil {
					return err
				}
				out = f
			}
			r, done := byteProgress(cmd.Context(), g, "download "+args[0], dl.Size)
			_, cerr := io.Copy(out, readerFunc(func(p []byte) (int, error) {
				n, err := dl.Body.Read(p)
				r(n)
				return n, err
			}))
			t, err := dl.Finish()
			if cerr != nil && err == nil {
				err = cerr
			}
			if f != nil {
				if cerr := f.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					os.Remove(args[1])
				}
			}
			done(err == nil)
			if err != nil {
				return err
			}
			if !g.quiet && args[1] != "-" {
				fmt.Fprintf(g.errOut, "downloaded %s from %s, sha256 %s\n", api.Size(t.Bytes).Human(), args[0], t.SHA256)
			}
			return nil
		}),
	}
	return cmd
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// byteProgress shows a byte bar on a terminal (nothing otherwise, or with
// --quiet): add(n) counts bytes, done(ok) ends the bar.
func byteProgress(ctx context.Context, g *globals, label string, total int64) (add func(int), done func(bool)) {
	if g.quiet || !isTerminal(g.errOut) {
		return func(int) {}, func(bool) {}
	}
	p := mpb.NewWithContext(ctx, mpb.WithOutput(g.errOut), mpb.WithWidth(32))
	if total < 0 {
		total = 0
	}
	bar := p.New(total, mpb.BarStyle(),
		mpb.PrependDecorators(decor.Name(label, decor.WCSyncSpaceR)),
		mpb.AppendDecorators(decor.Counters(decor.SizeB1024(0), "% .1f / % .1f"), decor.Percentage(decor.WCSyncSpace),
			decor.AverageSpeed(decor.SizeB1024(0), " % .1f", decor.WCSyncSpace)))
	var mu sync.Mutex
	return func(n int) {
			mu.Lock()
			bar.IncrBy(n)
			mu.Unlock()
		}, func(ok bool) {
			mu.Lock()
			if ok {
				bar.SetTotal(-1, true)
			} else {
				bar.Abort(false)
			}
			mu.Unlock()
			p.Wait()
		}
}

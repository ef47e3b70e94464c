package cli

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
)

func newImageCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "The image catalog: import, build, convert, delete disk images",
		Long: `The daemon keeps a catalog of disk images (qcow2 or raw). A VM disk with
'image: NAME' is a copy-on-write qcow2 overlay on the catalog image, so
creating it takes the same time whatever the image's size; 'clone: full'
makes an independent copy instead. An image a VM uses cannot be deleted.

Built images (godwit image build debian) carry their kernel and initrd:
a spec boots them with 'boot: {image: NAME}'.`,
	}
	cmd.AddCommand(imageImportCmd(g), imageListCmd(g), imageShowCmd(g), imageDeleteCmd(g), imageConvertCmd(g), imageBuildCmd(g))
	return cmd
}

func completeImages(g *globals) completion {
	return firstArg(completeNames(g, (*client.Client).ListImages, func(i api.Image) string {
		return i.Name + "\t" + i.Format + " " + i.VirtualSize.Human()
	}))
}

func imageImportCmd(g *globals) *cobra.Command {
	var req api.ImageImport
	var kernel, initrd, cmdline string
	var w waitFlags
	cmd := &cobra.Command{
		Use:   "import FILE|URL --name NAME",
		Short: "Import a qcow2 or raw image from a file or an HTTP(S) URL",
		Example: `  godwit image import debian-12.qcow2 --name debian-12
  godwit image import https://example.org/img.qcow2 --name img --sha256 5f2a...`,
		Args: exactArgs(1, "a FILE or URL"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if req.Name == "" {
				return usagef("--name is required")
			}
			src := args[0]
			if strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") {
				req.URL = src
			} else {
				if g.host != "" {
					return usagef("importing a file needs the daemon on this host (its unix socket); serve the file over HTTP(S) for a remote daemon")
				}
				abs, err := filepath.Abs(src)
				if err != nil {
					return err
				}
				req.Path = abs
			}
			if kernel != "" {
				k, err := filepath.Abs(kernel)
				if err != nil {
					return err
				}
				req.Boot = &api.Boot{Kernel: k, Cmdline: cmdline}
				if initrd != "" {
					if req.Boot.Initrd, err = filepath.Abs(initrd); err != nil {
						return err
					}
				}
			} else if initrd != "" || cmdline != "" {
				return usagef("--initrd and --cmdline need --kernel")
			}
			return runImageOp(cmd.Context(), g, w, req.Name, "imported", func(c *client.Client, ctx context.Context) (api.Operation, error) {
				return c.ImportImage(ctx, req)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Name, "name", "", "catalog name of the image")
	f.StringVar(&req.SHA256, "sha256", "", "expected SHA-256 of the file")
	f.StringVar(&kernel, "kernel", "", "a kernel for direct boot that comes with the image")
	f.StringVar(&initrd, "initrd", "", "its initrd")
	f.StringVar(&cmdline, "cmdline", "", "its kernel command line")
	w.add(f)
	return cmd
}

// runImageOp starts an operation that makes image name, follows it and
// prints the image: its name with --quiet, else what the catalog has.
func runImageOp(ctx context.Context, g *globals, w waitFlags, name, what string, start func(c *client.Client, ctx context.Context) (api.Operation, error)) error {
	c, _, err := startOp(ctx, g, w, start)
	if err != nil || w.noWait {
		return err
	}
	if g.quiet {
		fmt.Fprintln(g.out, name)
		return nil
	}
	img, err := c.GetImage(ctx, name)
	if err != nil {
		return err
	}
	if g.output != "table" {
		return printValue(g.out, g.output, img)
	}
	fmt.Fprintf(g.out, "image %s %s (%s, %s virtual, %s on disk)\n", name, what, img.Format, img.VirtualSize.Human(), img.ActualSize.Human())
	return nil
}

func imageListCmd(g *globals) *cobra.Command {
	return listCmd(g, listing[api.Image]{
		use:    "list",
		short:  "List the image catalog",
		fetch:  (*client.Client).ListImages,
		wrap:   func(imgs []api.Image) any { return api.ImageList{Images: imgs} },
		name:   func(i api.Image) string { return i.Name },
		header: []string{"NAME", "FORMAT", "VIRTUAL", "ACTUAL", "BOOT", "USED BY", "AGE"},
		row: func(i api.Image) []string {
			boot := "-"
			if i.Boot != nil {
				boot = "kernel"
			}
			return []string{i.Name, i.Format, i.VirtualSize.Human(), i.ActualSize.Human(), boot, orDash(strings.Join(i.UsedBy, ",")), age(i.CreatedAt)}
		},
	})
}

func imageShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:               "show NAME",
		Short:             "Show an image: format, sizes, backing chain (qemu-img info)",
		Args:              exactArgs(1, "an image name"),
		ValidArgsFunction: completeImages(g),
		RunE:              showRun(g, (*client.Client).GetImage, showImage),
	}
}

func showImage(w io.Writer, i api.Image) error {
	chain := "none"
	if len(i.Backing) > 0 {
		chain = strings.Join(i.Backing, " <- ")
	}
	kv := [][2]string{{"Name", i.Name}, {"Format", i.Format}, {"Virtual size", i.VirtualSize.Human()},
		{"Actual size", i.ActualSize.Human()}, {"Backing chain", chain}, {"Path", i.Path},
		{"SHA-256", orDash(i.SHA256)}, {"Source", orDash(i.Source)}, {"Used by", orDash(strings.Join(i.UsedBy, ", "))}}
	if i.Boot != nil {
		kv = append(kv, [2]string{"Kernel", i.Boot.Kernel}, [2]string{"Initrd", orDash(i.Boot.Initrd)}, [2]string{"Cmdline", orDash(i.Boot.Cmdline)})
	}
	return fields(w, kv)
}

func imageDeleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:               "delete NAME",
		Short:             "Delete an image no VM uses",
		Args:              exactArgs(1, "an image name"),
		ValidArgsFunction: completeImages(g),
		RunE:              deleteRun(g, "image", "deleted", (*client.Client).DeleteImage),
	}
}

func imageConvertCmd(g *globals) *cobra.Command {
	var req api.ImageConvert
	var w waitFlags
	cmd := &cobra.Command{
		Use:               "convert NAME --format raw|qcow2 --name NEW",
		Short:             "Convert an image into a new one of another format",
		Args:              exactArgs(1, "an image name"),
		ValidArgsFunction: completeImages(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			if req.Format == "" || req.Name == "" {
				return usagef("--format and --name are required")
			}
			return runImageOp(cmd.Context(), g, w, req.Name, "converted", func(c *client.Client, ctx context.Context) (api.Operation, error) {
				return c.ConvertImage(ctx, args[0], req)
			})
		},
	}
	cmd.Flags().StringVar(&req.Format, "format", "", "raw or qcow2")
	cmd.Flags().StringVar(&req.Name, "name", "", "name of the converted image")
	w.add(cmd.Flags())
	return cmd
}

func imageBuildCmd(g *globals) *cobra.Command {
	var req api.ImageBuild
	var size string
	var w waitFlags
	cmd := &cobra.Command{
		Use:   "build debian --name NAME [--suite bookworm] [--size 4GiB]",
		Short: "Build an image from Debian's packages (debootstrap)",
		Long: `Builds a Debian image with debootstrap: an ext4 root filesystem (label
root) with a kernel, cloud-init, qemu-guest-agent and openssh-server, the
serial console on, as qcow2. Its kernel and initrd come with it: boot it
with 'boot: {image: NAME}'. Takes minutes (downloads the packages).`,
		Example: `  godwit image build debian --suite bookworm --size 4GiB --name debian-12`,
		Args:    exactArgs(1, "the distribution (debian)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Distro = args[0]
			if req.Name == "" {
				return usagef("--name is required")
			}
			if size != "" {
				sz, err := sizeFlag("size", size)
				if err != nil {
					return err
				}
				req.Size = sz
			}
			return runImageOp(cmd.Context(), g, w, req.Name, "built", func(c *client.Client, ctx context.Context) (api.Operation, error) {
				return c.BuildImage(ctx, req)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Name, "name", "", "catalog name of the image")
	f.StringVar(&req.Suite, "suite", "", "Debian suite (default bookworm)")
	f.StringVar(&size, "size", "", "virtual size (default 4GiB)")
	f.StringVar(&req.Mirror, "mirror", "", "Debian mirror URL (default http://deb.debian.org/debian)")
	w.add(f)
	return cmd
}

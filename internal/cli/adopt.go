package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
)

func vmAdoptCmd(g *globals) *cobra.Command {
	var dry bool
	cmd := &cobra.Command{
		Use:   "adopt NAME",
		Short: "Take a libvirt domain godwit did not create under management, changing nothing in it",
		Long: `Adopt a libvirt domain (one made with virsh define, virt-install,
virt-manager...): godwit derives its spec from the domain's definition
(CPUs, memory, boot, disks, NICs) and from then on starts, stops,
snapshots, backs up and migrates it. Adopting changes nothing in the
domain, and a running domain stays running. What the spec cannot express
(a display, a sound card, a disk's cache mode, a NIC on a network godwit
does not manage...) stays in the domain as it is: vm show lists it under
"Kept as is". godwit never rewrites an adopted domain from its spec (vm
apply refuses); its disks must be volumes of libvirt storage pools, and
deleting the VM leaves them. Migrating it copies disks that are not on
shared storage into the destination's pool (and removes the source
copies), as for any VM; it stays adopted there. vm release hands the
domain back. See docs/adopt.md.`,
		Args: exactArgs(1, "a libvirt domain name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			res, err := c.AdoptVM(cmd.Context(), args[0], dry)
			if err != nil {
				return err
			}
			if g.output != "table" {
				return printValue(g.out, g.output, res)
			}
			if !dry {
				if !g.quiet {
					fmt.Fprintf(g.out, "vm %s adopted (%s); nothing in the domain changed\n", args[0], res.VM.State)
					printKept(g.out, res.VM.Kept)
				}
				return nil
			}
			fmt.Fprintf(g.out, "vm %s would be adopted with this spec (nothing is recorded yet):\n\n", args[0])
			if err := printValue(g.out, "yaml", res.VM.Spec); err != nil {
				return err
			}
			printKept(g.out, res.VM.Kept)
			return nil
		},
	}
	cmd.Flags().BoolVar(&dry, "dry-run", false, "show the spec godwit derives and what it keeps as it is; record nothing")
	return cmd
}

func vmReleaseCmd(g *globals) *cobra.Command {
	return nowCmd(g, "release", "Hand an adopted VM back to plain libvirt (the domain is left as it is)", "released to libvirt", (*client.Client).ReleaseVM)
}

// printKept lists what an adopted domain keeps that the spec does not say.
func printKept(w io.Writer, kept []string) {
	if len(kept) == 0 {
		return
	}
	fmt.Fprintln(w, "Kept as is (the spec does not express these; the domain keeps them):")
	for _, k := range kept {
		fmt.Fprintln(w, "  "+k)
	}
}

// adoptedNote is what vm show says of an adopted VM.
func adoptedNote(api.VM) string {
	return "yes: a libvirt domain godwit took under management; its definition is its own (vm release hands it back)"
}

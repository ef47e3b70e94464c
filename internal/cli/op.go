package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
)

func newOpCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "op",
		Aliases: []string{"operation"},
		Short:   "Follow long jobs: create, stop, delete, migrate, backup ...",
		Long: `Long jobs run as operations in the daemon: they have an id, progress and a
result, survive the command that started them, and can be cancelled.`,
	}
	cmd.AddCommand(opListCmd(g), opShowCmd(g), opWaitCmd(g), opCancelCmd(g))
	return cmd
}

func decodeResult(op api.Operation, v any) error {
	if len(op.Result) == 0 {
		return nil
	}
	return json.Unmarshal(op.Result, v)
}

func opListCmd(g *globals) *cobra.Command {
	var f client.OperationFilter
	cmd := listCmd(g, listing[api.Operation]{
		use:     "list",
		aliases: []string{"ls"},
		short:   "List operations, newest first",
		fetch: func(c *client.Client, ctx context.Context) ([]api.Operation, error) {
			return c.ListOperations(ctx, f)
		},
		wrap:   func(list []api.Operation) any { return api.OperationList{Operations: list} },
		header: []string{"ID", "KIND", "TARGET", "STATE", "AGE", "TOOK", "DETAIL"},
		row: func(o api.Operation) []string {
			detail := o.Progress.Message
			if o.Error != "" {
				detail = o.Error
			}
			return []string{o.ID, o.Kind, o.Target, string(o.State), age(o.CreatedAt), duration(o), detail}
		},
	})
	cmd.Flags().BoolVar(&f.Active, "active", false, "only operations still running")
	cmd.Flags().StringVar(&f.Target, "target", "", "only operations on this target, e.g. vm/web1")
	return cmd
}

func duration(o api.Operation) string {
	end := o.FinishedAt
	if end.IsZero() {
		end = time.Now()
	}
	return end.Sub(o.CreatedAt).Round(time.Millisecond).String()
}

func showOp(w io.Writer, o api.Operation) error {
	kv := [][2]string{{"ID", o.ID}, {"Kind", o.Kind}, {"Target", o.Target}, {"State", string(o.State)},
		{"Created", o.CreatedAt.Local().Format(time.RFC3339)}, {"Took", duration(o)}}
	if o.Progress.Message != "" {
		p := o.Progress.Message
		if o.Progress.Total > 0 {
			p += fmt.Sprintf(" (%d/%d %s)", o.Progress.Current, o.Progress.Total, o.Progress.Unit)
		}
		kv = append(kv, [2]string{"Progress", p})
	}
	if o.Error != "" {
		kv = append(kv, [2]string{"Error", o.Error})
	}
	if len(o.Result) > 0 {
		kv = append(kv, [2]string{"Result", string(o.Result)})
	}
	return fields(w, kv)
}

func opShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show an operation",
		Args:  exactArgs(1, "an operation id"),
		RunE:  showRun(g, (*client.Client).GetOperation, showOp),
	}
}

func opWaitCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "wait ID",
		Short: "Wait for an operation to end (exit status 1 if it failed)",
		Args:  exactArgs(1, "an operation id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			o, err := c.GetOperation(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			final, err := follow(cmd.Context(), g, c, o, waitFlags{})
			if err != nil {
				return err
			}
			if g.quiet {
				return nil
			}
			return printObject(g, final, showOp)
		},
	}
}

func opCancelCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a running operation",
		Args:  exactArgs(1, "an operation id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if _, err := c.CancelOperation(cmd.Context(), args[0]); err != nil {
				return err
			}
			final, err := c.WaitOperation(cmd.Context(), args[0], nil)
			if final.State == api.OpCancelled {
				if !g.quiet {
					fmt.Fprintf(g.out, "operation %s cancelled\n", args[0])
				}
				return nil
			}
			if err != nil {
				return fmt.Errorf("operation %s ended %s: %w", args[0], final.State, err)
			}
			return fmt.Errorf("operation %s finished (%s) before the cancel took effect", args[0], final.State)
		},
	}
}

package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
)

// The shapes most commands share: list, show, delete, start an operation,
// print what was made, complete names. Each noun's file fills them in.
// The calls they make take the client first, so that a method expression
// such as (*client.Client).ListPools is one.

// listing says what a list command lists and how it shows the items.
type listing[T any] struct {
	use, short string
	aliases    []string
	fetch      func(c *client.Client, ctx context.Context) ([]T, error)
	// wrap makes the API's list object (api.VMList ...) that -o json|yaml
	// prints.
	wrap func([]T) any
	// name is what --quiet prints of an item; without it --quiet changes
	// nothing.
	name   func(T) string
	header []string
	row    func(T) []string
}

// listCmd is a list command: it fetches the items and prints them as the
// API's list object with -o json|yaml, their names with --quiet, else a
// table with a row per item.
func listCmd[T any](g *globals, l listing[T]) *cobra.Command {
	return &cobra.Command{
		Use:     l.use,
		Aliases: l.aliases,
		Short:   l.short,
		Args:    exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			items, err := l.fetch(c, cmd.Context())
			if err != nil {
				return err
			}
			return l.print(g, items)
		},
	}
}

func (l listing[T]) print(g *globals, items []T) error {
	if g.output != "table" {
		return printValue(g.out, g.output, l.wrap(items))
	}
	if g.quiet && l.name != nil {
		for _, it := range items {
			fmt.Fprintln(g.out, l.name(it))
		}
		return nil
	}
	rows := make([][]string, 0, len(items))
	for _, it := range items {
		rows = append(rows, l.row(it))
	}
	return table(g.out, l.header, rows)
}

// showRun is the RunE of a show command: get the object its argument
// names and print it (printObject).
func showRun[T any](g *globals, get func(c *client.Client, ctx context.Context, name string) (T, error), show func(io.Writer, T) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c, err := g.client()
		if err != nil {
			return err
		}
		v, err := get(c, cmd.Context(), args[0])
		if err != nil {
			return err
		}
		return printObject(g, v, show)
	}
}

// printObject prints one object: as the API has it with -o json|yaml,
// else as show prints it.
func printObject[T any](g *globals, v T, show func(io.Writer, T) error) error {
	if g.output != "table" {
		return printValue(g.out, g.output, v)
	}
	return show(g.out, v)
}

// deleteRun is the RunE of a command that deletes what its argument
// names: it says "NOUN NAME DONE" (pool web deleted) unless --quiet.
func deleteRun(g *globals, noun, done string, del func(c *client.Client, ctx context.Context, name string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c, err := g.client()
		if err != nil {
			return err
		}
		if err := del(c, cmd.Context(), args[0]); err != nil {
			return err
		}
		if !g.quiet {
			fmt.Fprintf(g.out, "%s %s %s\n", noun, args[0], done)
		}
		return nil
	}
}

// startOp connects, starts an operation and follows it (see follow). It
// returns the client for what comes next, and the operation as it ended
// (as it started, with --no-wait).
func startOp(ctx context.Context, g *globals, w waitFlags, start func(c *client.Client, ctx context.Context) (api.Operation, error)) (*client.Client, api.Operation, error) {
	c, err := g.client()
	if err != nil {
		return nil, api.Operation{}, err
	}
	op, err := start(c, ctx)
	if err != nil {
		return nil, api.Operation{}, err
	}
	final, err := follow(ctx, g, c, op, w)
	return c, final, err
}

// opResult is startOp for an operation whose result the command prints:
// it decodes the result of the operation as it ended into a T (the zero T
// with --no-wait).
func opResult[T any](ctx context.Context, g *globals, w waitFlags, start func(c *client.Client, ctx context.Context) (api.Operation, error)) (T, error) {
	var res T
	_, final, err := startOp(ctx, g, w, start)
	if err != nil || w.noWait {
		return res, err
	}
	return res, decodeResult(final, &res)
}

// printReport prints the report an operation ended with, a failed one's
// too (a verify that found damage, a drain that left VMs behind still say
// what they found): as the API has it with -o json|yaml, else what table
// prints. It returns the operation's own error, ferr, after the report.
func printReport[T any](g *globals, w waitFlags, final api.Operation, ferr error, table func(T)) error {
	if w.noWait || len(final.Result) == 0 {
		return ferr // no report to print: only the error says what happened
	}
	var rep T
	if err := decodeResult(final, &rep); err != nil {
		return err
	}
	if g.output != "table" {
		if err := printValue(g.out, g.output, rep); err != nil {
			return err
		}
		return ferr
	}
	table(rep)
	return ferr
}

// printMade prints what a command made: as the API has it with -o
// json|yaml, quiet alone with --quiet (its name, or its secret), else
// what say prints.
func printMade(g *globals, v any, quiet string, say func()) error {
	if g.output != "table" {
		return printValue(g.out, g.output, v)
	}
	if g.quiet {
		fmt.Fprintln(g.out, quiet)
		return nil
	}
	say()
	return nil
}

type completion = func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective)

// completeNames completes with what list returns, each item as its
// completion (NAME, or NAME\tDESCRIPTION). It gives up quietly after two
// seconds or when the daemon is not there.
func completeNames[T any](g *globals, list func(c *client.Client, ctx context.Context) ([]T, error), name func(T) string) completion {
	return func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		c, err := g.client()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		items, err := list(c, ctx)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		names := make([]string, 0, len(items))
		for _, it := range items {
			names = append(names, name(it))
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

// firstArg completes only the first argument with f.
func firstArg(f completion) completion {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return f(cmd, args, toComplete)
	}
}

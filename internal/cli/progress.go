package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
)

// waitFlags are the flags of every command that starts an operation.
type waitFlags struct {
	noWait bool
}

func (w *waitFlags) add(fs interface {
	BoolVar(*bool, string, bool, string)
}) {
	fs.BoolVar(&w.noWait, "no-wait", false, "print the operation id and return; 'godwit op wait ID' re-attaches")
}

// follow waits for an operation started by a command, showing progress: a
// bar on a terminal, plain lines otherwise, nothing with --quiet. With
// --no-wait it prints the id and returns. Interrupting detaches: the
// operation goes on in the daemon.
func follow(ctx context.Context, g *globals, c *client.Client, op api.Operation, w waitFlags) (api.Operation, error) {
	if w.noWait {
		if g.quiet {
			fmt.Fprintln(g.out, op.ID)
		} else {
			fmt.Fprintf(g.out, "operation %s (%s %s) started; 'godwit op wait %s' follows it\n", op.ID, op.Kind, op.Target, op.ID)
		}
		return op, nil
	}
	var show func(api.Operation)
	var done func()
	switch {
	case g.quiet:
	case isTerminal(g.errOut):
		show, done = barProgress(ctx, g.errOut)
	default:
		show, done = lineProgress(g.errOut)
	}
	final, err := c.WaitOperation(ctx, op.ID, show)
	if done != nil {
		done()
	}
	if err != nil && errors.Is(err, context.Canceled) {
		return final, fmt.Errorf("stopped waiting; operation %s goes on in the daemon ('godwit op wait %s' re-attaches, 'godwit op cancel %s' stops it)", op.ID, op.ID, op.ID)
	}
	return final, err
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// lineProgress prints a line whenever the progress message changes.
func lineProgress(w io.Writer) (func(api.Operation), func()) {
	last := ""
	return func(op api.Operation) {
		msg := op.Progress.Message
		if op.State.Final() || msg == "" || msg == last {
			return
		}
		last = msg
		if op.Progress.Total > 0 && op.Progress.Unit == "bytes" {
			fmt.Fprintf(w, "%s %s: %s (%s of %s)\n", op.Kind, op.Target, msg,
				api.Size(op.Progress.Current).Human(), api.Size(op.Progress.Total).Human())
			return
		}
		fmt.Fprintf(w, "%s %s: %s\n", op.Kind, op.Target, msg)
	}, nil
}

// barProgress draws one bar (or spinner, when the total is unknown).
func barProgress(ctx context.Context, w io.Writer) (func(api.Operation), func()) {
	p := mpb.NewWithContext(ctx, mpb.WithOutput(w), mpb.WithWidth(32))
	var mu sync.Mutex
	var bar *mpb.Bar
	msg := ""
	last := time.Now()
	show := func(op api.Operation) {
		mu.Lock()
		defer mu.Unlock()
		if op.Progress.Message != "" {
			msg = op.Progress.Message
		}
		label := op.Kind + " " + op.Target
		if bar == nil {
			decorators := mpb.PrependDecorators(
				decor.Name(label, decor.WCSyncSpaceR),
				decor.Any(func(decor.Statistics) string { return msg }, decor.WCSyncSpaceR),
			)
			if op.Progress.Total > 0 && op.Progress.Unit == "bytes" {
				bar = p.New(op.Progress.Total, mpb.BarStyle(), decorators,
					mpb.AppendDecorators(decor.Counters(decor.SizeB1024(0), "% .1f / % .1f"), decor.Percentage(decor.WCSyncSpace),
						decor.OnComplete(decor.EwmaETA(decor.ET_STYLE_GO, 30, decor.WCSyncSpace), "")))
			} else {
				bar = p.New(0, mpb.SpinnerStyle(), decorators, mpb.BarFillerOnComplete("done"))
			}
		}
		if op.Progress.Total > 0 && op.Progress.Unit == "bytes" {
			bar.SetTotal(op.Progress.Total, false)
			bar.EwmaSetCurrent(op.Progress.Current, time.Since(last))
			last = time.Now()
		}
		if op.State.Final() {
			if op.State == api.OpSucceeded {
				bar.SetTotal(-1, true)
			} else {
				bar.Abort(false)
			}
		}
	}
	done := func() {
		mu.Lock()
		if bar != nil && !bar.Completed() && !bar.Aborted() {
			bar.Abort(false)
		}
		mu.Unlock()
		p.Wait()
	}
	return show, done
}

package backup

import (
	"context"
	"sync"
)

// run is a stretch of consecutive chunks that one NBD request reads or
// writes.
type run struct{ first, count int }

// runsOf groups the chunks below n that want picks into runs of at most
// per chunks.
func runsOf(n, per int, want func(i int) bool) []run {
	var runs []run
	for i := 0; i < n; i++ {
		if !want(i) {
			continue
		}
		if k := len(runs); k > 0 && runs[k-1].first+runs[k-1].count == i && runs[k-1].count < per {
			runs[k-1].count++
		} else {
			runs = append(runs, run{i, 1})
		}
	}
	return runs
}

// worker is one goroutine of parallel: do handles a run; end is called
// once no run is left, told whether every run went well so far (to write
// out or drop what the worker holds, and release it).
type worker struct {
	do  func(run) error
	end func(ok bool) error
}

// parallel hands runs to n workers, each made by start(ctx, w) in its own
// goroutine (w counts from 0). The first error, from start, a run or an
// end, cancels the ctx the workers were given: the runs left are skipped.
// It returns that error (the caller decides whether ctx's own error, if
// any, says more).
func parallel(ctx context.Context, n int, runs []run, start func(ctx context.Context, w int) (worker, error)) error {
	work := make(chan run)
	var mu sync.Mutex
	var firstErr error
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cancel()
	}
	var wg sync.WaitGroup
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wk, err := start(wctx, w)
			if err != nil {
				fail(err)
				for range work {
				}
				return
			}
			for rn := range work {
				if wctx.Err() != nil {
					continue
				}
				if err := wk.do(rn); err != nil {
					fail(err)
				}
			}
			if err := wk.end(wctx.Err() == nil); err != nil {
				fail(err)
			}
		}()
	}
	for _, rn := range runs {
		if wctx.Err() != nil {
			break
		}
		work <- rn
	}
	close(work)
	wg.Wait()
	return firstErr
}

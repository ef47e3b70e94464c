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
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	first := &firstFailure{cancel: cancel}
	fail := first.fail
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
	feed(wctx, work, runs)
	wg.Wait()
	return first.err()
}

// A reader is one goroutine of pipeline that reads runs into buffers:
// read fills buf (of the run's length) with the run's bytes; close is
// called once no run is left.
type reader struct {
	read  func(rn run, buf []byte) error
	close func()
}

// A sink is one goroutine of pipeline that takes what the readers read:
// do handles a run's bytes (which it must not keep: the buffer is read
// into again once do returns); end is called once no run is left, told
// whether every run went well so far.
type sink struct {
	do  func(rn run, data []byte) error
	end func(ok bool) error
}

// pipeline reads runs with nr readers (each made by open(ctx, r), each
// reading its own connection) into 2*nr buffers of bufSize and hands them
// to ns sinks (each made by start(ctx, w)): a reader reads its next run
// while the sinks hash and compress the ones it read, so the disk's
// export always has reads in flight and the sinks, one a core, are never
// waiting for one. A run's length is length(rn). The first error cancels
// the ctx the goroutines were given, the runs left are skipped, and it is
// returned (as parallel).
func pipeline(ctx context.Context, nr, ns int, runs []run, bufSize int, length func(run) int,
	open func(ctx context.Context, r int) (reader, error), start func(ctx context.Context, w int) (sink, error)) error {
	type filled struct {
		rn  run
		buf []byte
	}
	work := make(chan run)
	full := make(chan filled)
	free := make(chan []byte, 2*nr)
	for range 2 * nr {
		free <- make([]byte, bufSize)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	first := &firstFailure{cancel: cancel}
	fail := first.fail
	var readers, sinks sync.WaitGroup
	for r := 0; r < nr; r++ {
		readers.Add(1)
		go func() {
			defer readers.Done()
			rd, err := open(wctx, r)
			if err != nil {
				fail(err)
				for range work {
				}
				return
			}
			defer rd.close()
			for rn := range work {
				if wctx.Err() != nil {
					continue
				}
				var buf []byte
				select {
				case buf = <-free:
				case <-wctx.Done():
					continue
				}
				buf = buf[:length(rn)]
				if err := rd.read(rn, buf); err != nil {
					fail(err)
					free <- buf
					continue
				}
				select {
				case full <- filled{rn, buf}:
				case <-wctx.Done():
					free <- buf
				}
			}
		}()
	}
	for w := 0; w < ns; w++ {
		sinks.Add(1)
		go func() {
			defer sinks.Done()
			sk, err := start(wctx, w)
			if err != nil {
				fail(err)
			}
			for f := range full {
				if err == nil && wctx.Err() == nil {
					if derr := sk.do(f.rn, f.buf); derr != nil {
						fail(derr)
					}
				}
				free <- f.buf[:cap(f.buf)]
			}
			if err == nil {
				if err := sk.end(wctx.Err() == nil); err != nil {
					fail(err)
				}
			}
		}()
	}
	feed(wctx, work, runs)
	readers.Wait()
	close(full)
	sinks.Wait()
	return first.err()
}

// firstFailure keeps the first error of a group of goroutines and, on
// it, cancels the context they were given.
type firstFailure struct {
	mu     sync.Mutex
	first  error
	cancel context.CancelFunc
}

func (f *firstFailure) fail(err error) {
	f.mu.Lock()
	if f.first == nil {
		f.first = err
	}
	f.mu.Unlock()
	f.cancel()
}

func (f *firstFailure) err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.first
}

// feed sends runs to work until ctx ends, then closes it.
func feed(ctx context.Context, work chan<- run, runs []run) {
	for _, rn := range runs {
		if ctx.Err() != nil {
			break
		}
		work <- rn
	}
	close(work)
}

package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// disk is a fake export for pipeline: byte i of chunk c is (c*7+i)%251.
func fakeChunk(c, cs int) []byte {
	b := make([]byte, cs)
	for i := range b {
		b[i] = byte((c*7 + i) % 251)
	}
	return b
}

// TestPipelineDeliversEveryRunOnce: every run's bytes reach one sink,
// once, as read, whatever reader read them; each sink ends once, told ok.
func TestPipelineDeliversEveryRunOnce(t *testing.T) {
	const cs, n = 512, 1000
	runs := runsOf(n, 4, func(i int) bool { return i%13 != 5 })
	var mu sync.Mutex
	got := map[int][]byte{}
	var opened, closed, ended atomic.Int32
	open := func(ctx context.Context, r int) (reader, error) {
		opened.Add(1)
		return reader{
			read: func(rn run, buf []byte) error {
				for k := 0; k < rn.count; k++ {
					copy(buf[k*cs:], fakeChunk(rn.first+k, cs))
				}
				return nil
			},
			close: func() { closed.Add(1) },
		}, nil
	}
	start := func(ctx context.Context, w int) (sink, error) {
		return sink{
			do: func(rn run, data []byte) error {
				mu.Lock()
				defer mu.Unlock()
				for k := 0; k < rn.count; k++ {
					if _, dup := got[rn.first+k]; dup {
						return fmt.Errorf("chunk %d delivered twice", rn.first+k)
					}
					got[rn.first+k] = bytes.Clone(data[k*cs : (k+1)*cs])
				}
				return nil
			},
			end: func(ok bool) error {
				if !ok {
					return errors.New("told not ok")
				}
				ended.Add(1)
				return nil
			},
		}, nil
	}
	length := func(rn run) int { return rn.count * cs }
	if err := pipeline(context.Background(), 6, 2, runs, 4*cs, length, open, start); err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, rn := range runs {
		want += rn.count
		for k := 0; k < rn.count; k++ {
			if !bytes.Equal(got[rn.first+k], fakeChunk(rn.first+k, cs)) {
				t.Fatalf("chunk %d: the sink got other bytes than the reader read", rn.first+k)
			}
		}
	}
	if len(got) != want {
		t.Fatalf("%d chunks delivered, want %d", len(got), want)
	}
	if opened.Load() != 6 || closed.Load() != 6 || ended.Load() != 2 {
		t.Fatalf("opened %d, closed %d readers (want 6), %d sinks ended (want 2)", opened.Load(), closed.Load(), ended.Load())
	}
}

// TestPipelineCancelsOnError: a read that fails mid-way stops the rest
// (far fewer runs read than there are), every reader is closed, every
// sink ends told not ok, and the error is the one returned; a cancelled
// ctx does the same.
func TestPipelineCancelsOnError(t *testing.T) {
	const cs = 512
	runs := runsOf(10000, 1, func(int) bool { return true })
	boom := errors.New("boom")
	for _, tc := range []string{"read error", "sink error", "cancelled"} {
		t.Run(tc, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var reads, closed, endOK, endFail atomic.Int32
			open := func(ctx context.Context, r int) (reader, error) {
				return reader{
					read: func(rn run, buf []byte) error {
						if reads.Add(1) == 50 {
							switch tc {
							case "read error":
								return boom
							case "cancelled":
								cancel()
							}
						}
						return nil
					},
					close: func() { closed.Add(1) },
				}, nil
			}
			start := func(ctx context.Context, w int) (sink, error) {
				var n int
				return sink{
					do: func(rn run, data []byte) error {
						if n++; tc == "sink error" && rn.first == 60 {
							return boom
						}
						return nil
					},
					end: func(ok bool) error {
						if ok {
							endOK.Add(1)
						} else {
							endFail.Add(1)
						}
						return nil
					},
				}, nil
			}
			err := pipeline(ctx, 3, 2, runs, cs, func(run) int { return cs }, open, start)
			switch tc {
			case "cancelled":
				if !errors.Is(ctx.Err(), context.Canceled) {
					t.Fatal("ctx not cancelled")
				}
			default:
				if !errors.Is(err, boom) {
					t.Fatalf("pipeline returned %v, want %v", err, boom)
				}
			}
			if r := reads.Load(); r > 200 {
				t.Fatalf("%d runs read after the failure at 50: the rest was not skipped", r)
			}
			if closed.Load() != 3 || endOK.Load() != 0 || endFail.Load() != 2 {
				t.Fatalf("readers closed %d (want 3), sinks ended ok %d (want 0), not ok %d (want 2)", closed.Load(), endOK.Load(), endFail.Load())
			}
		})
	}
}

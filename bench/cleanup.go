package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// cleanups is a stack of undo steps, run last-in first-out.
type cleanups struct {
	mu    sync.Mutex
	steps []*Cleanup
}

// Cleanup is one registered undo step. Run it early with Run (e.g. to
// delete a VM right after its run); it then does not run again at the end.
type Cleanup struct {
	desc string
	f    func(context.Context) error
	once sync.Once
	err  error
}

// Run runs the step now, once; later calls return the first call's error.
func (c *Cleanup) Run(ctx context.Context) error {
	c.once.Do(func() {
		if err := c.f(ctx); err != nil {
			c.err = fmt.Errorf("%s: %w", c.desc, err)
		}
	})
	return c.err
}

func (s *cleanups) push(desc string, f func(context.Context) error) *Cleanup {
	c := &Cleanup{desc: desc, f: f}
	s.mu.Lock()
	s.steps = append(s.steps, c)
	s.mu.Unlock()
	return c
}

// runAll runs every step not run yet, newest first, and joins their errors.
func (s *cleanups) runAll(ctx context.Context, logf func(string, ...any)) error {
	s.mu.Lock()
	steps := s.steps
	s.steps = nil
	s.mu.Unlock()
	var errs []error
	for i := len(steps) - 1; i >= 0; i-- {
		c := steps[i]
		ran := false
		c.once.Do(func() {
			ran = true
			logf("cleanup: %s", c.desc)
			if err := c.f(ctx); err != nil {
				c.err = fmt.Errorf("%s: %w", c.desc, err)
			}
		})
		if ran && c.err != nil {
			logf("cleanup failed: %v", c.err)
			errs = append(errs, c.err)
		}
	}
	return errors.Join(errs...)
}

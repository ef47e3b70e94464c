// Package revert undoes multi-step side effects when a later step fails:
//
//	r := revert.New()
//	defer r.Fail()
//	... create a volume; r.Add(func() { delete it })
//	... define a domain; r.Add(func() { undefine it })
//	r.Success()
//
// Fail runs the undo functions newest first, unless Success was called.
package revert

// Reverter collects undo functions.
type Reverter struct {
	fns  []func()
	done bool
}

// New returns an empty reverter.
func New() *Reverter { return &Reverter{} }

// Add registers f to run on failure.
func (r *Reverter) Add(f func()) { r.fns = append(r.fns, f) }

// Success disarms the reverter: Fail becomes a no-op.
func (r *Reverter) Success() { r.done = true }

// Fail runs the undo functions in reverse order, once, unless Success ran.
func (r *Reverter) Fail() {
	if r.done {
		return
	}
	r.done = true
	for i := len(r.fns) - 1; i >= 0; i-- {
		r.fns[i]()
	}
}

// Package fenceguard is godwit's userland watchdog for HA fencing: a small
// process, the godwit binary re-executed as "godwit fence-guard", that
// kills this host's HA VMs' QEMUs itself when the daemon stops feeding it
// (hung, stopped, killed, out of memory), so that a host whose daemon
// cannot fence still stops its copies before other hosts restart them
// (docs/cluster.md, "The fence guard").
//
// The daemon feeds it, over a pipe, only after a lease renewal the store
// accepted: the time left until fenceAfter from that renewal's send (a
// duration: each process reads its own monotonic clock) and the HA VMs to
// kill. A feed replaces the one before. Not fed in time, the guard kills
// those VMs' QEMUs (by libvirt's pid files, each checked to be that VM's),
// notes them where the daemon settles fenced VMs, logs why and exits. A
// clean stop tells it to stand down; a pipe closed without that (the
// daemon died) changes nothing: it still fires at the deadline.
//
// It needs no store, no libvirt API and no network, and its wait loop
// does not allocate. It must not grow beyond that.
package fenceguard

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// The wire protocol, one line a message:
//
//	F <nanoseconds> [vm ...]   fire that long after this line arrives,
//	                           unless fed again, killing these VMs
//	S                          stand down: exit without killing
const (
	feedMsg      = 'F'
	standDownMsg = 'S'
	// maxLine bounds a message; a longer one is dropped (no feed).
	maxLine = 64 << 10
)

// AppendFeed appends the feed message for left and vms to b.
func AppendFeed(b []byte, left time.Duration, vms []string) []byte {
	b = append(b, feedMsg, ' ')
	b = strconv.AppendInt(b, int64(left), 10)
	for _, v := range vms {
		b = append(b, ' ')
		b = append(b, v...)
	}
	return append(b, '\n')
}

// Outcome is how a guard ended.
type Outcome int

const (
	StoodDown Outcome = iota // told to, by a clean stop
	Fired                    // not fed in time: it killed the listed QEMUs
	NeverFed                 // its pipe closed before the first feed
)

// Options are what a guard needs.
type Options struct {
	Feed   *os.File // the daemon's feeds arrive here (pollable: deadlines)
	PIDDir string   // the QEMUs' pid files (LibvirtPIDDir)
	// FencedFile lists the fenced VMs the daemon settles once it holds
	// a lease again (STATE/cluster/fenced.json); "" for none.
	FencedFile string
	Log        io.Writer
}

// guard is the state of the wait loop: fixed buffers, nothing allocated.
type guard struct {
	o        Options
	in       [maxLine]byte // bytes read, not yet a whole line
	n        int
	vms      [maxLine]byte // the last feed's VM names, space separated
	nvms     int
	deadline time.Time
	armed    bool // fed at least once
}

// Run waits for feeds until stood down or not fed in time; then it kills
// the VMs of the last feed. It returns how it ended and why.
func Run(o Options) (Outcome, string) {
	g := &guard{o: o}
	out, why := g.wait()
	if out == Fired {
		g.fire(why)
	}
	return out, why
}

// wait is the guard's loop: a read bounded by the deadline, each whole
// line handled in place.
func (g *guard) wait() (Outcome, string) {
	for {
		var dl time.Time // none before the first feed
		if g.armed {
			dl = g.deadline
		}
		if err := g.o.Feed.SetReadDeadline(dl); err != nil {
			return g.closed("its pipe takes no deadline: " + err.Error())
		}
		k, err := g.o.Feed.Read(g.in[g.n:])
		g.n += k
		if g.lines() {
			return StoodDown, "told to stand down"
		}
		if g.n == len(g.in) {
			g.n = 0 // a line too long: dropped, no feed
		}
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded):
			if time.Now().Before(g.deadline) {
				continue
			}
			return Fired, "not fed before its deadline (the daemon did not renew this host's lease in time, or is hung)"
		default:
			return g.closed("the daemon's pipe closed without a stand-down (the daemon died)")
		}
	}
}

// closed: no more feeds can come; an armed guard fires at its deadline.
func (g *guard) closed(why string) (Outcome, string) {
	if !g.armed {
		return NeverFed, why + " before any feed"
	}
	time.Sleep(time.Until(g.deadline))
	return Fired, why + ", and its deadline passed"
}

// lines handles the whole lines read and keeps the rest; it says whether
// one was a stand-down.
func (g *guard) lines() bool {
	start := 0
	for i := 0; i < g.n; i++ {
		if g.in[i] != '\n' {
			continue
		}
		if g.handle(g.in[start:i]) {
			return true
		}
		start = i + 1
	}
	g.n = copy(g.in[:], g.in[start:g.n])
	return false
}

// handle applies one message; it says whether it was a stand-down. A
// malformed line changes nothing.
func (g *guard) handle(line []byte) bool {
	if len(line) == 1 && line[0] == standDownMsg {
		return true
	}
	if len(line) < 3 || line[0] != feedMsg || line[1] != ' ' {
		return false
	}
	var ns int64
	i := 2
	for ; i < len(line) && line[i] != ' '; i++ {
		c := line[i]
		if c < '0' || c > '9' || ns > (1<<62)/10 {
			return false
		}
		ns = ns*10 + int64(c-'0')
	}
	if i == 2 {
		return false
	}
	names := line[i:]
	if len(names) > 0 {
		names = names[1:]
	}
	g.nvms = copy(g.vms[:], names)
	g.deadline = time.Now().Add(time.Duration(ns))
	g.armed = true
	return false
}

// fire kills the QEMUs of the last feed's VMs, waits (a little) for them
// to go, and notes them for the daemon.
func (g *guard) fire(why string) {
	t0 := time.Now()
	names := strings.Fields(string(g.vms[:g.nvms]))
	g.logf("fencing: %s; killing the QEMUs of this host's HA VMs %v", why, names)
	var killed []string
	pids := map[string]int{}
	for _, name := range names {
		pid, err := KillQEMU(g.o.PIDDir, name)
		switch {
		case err != nil:
			g.logf("vm %s: %v", name, err)
		case pid == 0:
			g.logf("vm %s: no QEMU runs", name)
		default:
			killed, pids[name] = append(killed, name), pid
		}
	}
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		left := 0
		for name, pid := range pids {
			if IsQEMUOf(pid, name) {
				left++
			}
		}
		if left == 0 {
			break
		}
	}
	for name, pid := range pids {
		state := "gone"
		if IsQEMUOf(pid, name) {
			state = "STILL RUNNING"
		}
		g.logf("vm %s: killed its QEMU (pid %d): %s after %s", name, pid, state, time.Since(t0).Round(time.Millisecond))
	}
	if len(killed) > 0 && g.o.FencedFile != "" {
		if err := NoteFenced(g.o.FencedFile, killed); err != nil {
			g.logf("cannot note the fenced VMs for the daemon: %v", err)
		}
	}
}

func (g *guard) logf(format string, args ...any) {
	if g.o.Log != nil {
		fmt.Fprintf(g.o.Log, "%s fence-guard[%d]: %s\n", time.Now().UTC().Format(time.RFC3339Nano), os.Getpid(), fmt.Sprintf(format, args...))
	}
}

package vm

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/godwit-project/godwit/api"
)

// fakeCluster is a cluster of hosts whose locks live in one map, as the
// cluster store's do; other says which VMs another host owns.
type fakeCluster struct {
	mu    sync.Mutex
	locks map[string]string // vm -> holder
	log   []string
	other map[string]string // vm -> owning host
	// held is the lock of this host that holds a VM: as the real lock's
	// revision guard does, a relabel or release by a lock that no longer
	// holds changes nothing.
	held map[string]*fakeLock
}

type fakeLock struct {
	c  *fakeCluster
	vm string
}

func (c *fakeCluster) Lock(_ context.Context, vm, what string) (ClusterLock, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h, ok := c.locks[vm]; ok {
		return nil, api.Conflict("vm %s is busy: %s is in progress on host other", vm, h)
	}
	c.locks[vm] = what
	c.log = append(c.log, "lock "+vm+" "+what)
	l := &fakeLock{c, vm}
	if c.held == nil {
		c.held = map[string]*fakeLock{}
	}
	c.held[vm] = l
	return l, nil
}

var errLockLost = errors.New("the lock is no longer held")

func (c *fakeCluster) Owner(_ context.Context, vm string) (string, error) {
	return c.other[vm], nil
}

func (c *fakeCluster) Claim(_ context.Context, l ClusterLock, vm string, _ []byte, _ api.VMSpec) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if fl, ok := l.(*fakeLock); !ok || fl.vm != vm || c.locks[vm] == "" {
		return api.Conflict("claim of %s without its lock", vm)
	}
	c.log = append(c.log, "claim "+vm)
	return nil
}

func (c *fakeCluster) Released(context.Context) {}

func (l *fakeLock) Relabel(_ context.Context, what string) error {
	l.c.mu.Lock()
	defer l.c.mu.Unlock()
	if l.c.held[l.vm] != l {
		return errLockLost
	}
	l.c.locks[l.vm] = what
	return nil
}

func (l *fakeLock) Unlock(context.Context) error {
	l.c.mu.Lock()
	defer l.c.mu.Unlock()
	if l.c.held[l.vm] != l {
		return errLockLost
	}
	delete(l.c.held, l.vm)
	delete(l.c.locks, l.vm)
	l.c.log = append(l.c.log, "unlock "+l.vm)
	return nil
}

// In a cluster every action takes the VM's cluster lock too, names its
// operation in it, and lets go when it ends; one that another host holds
// refuses the action (409) and leaves this host's own lock free; a name
// another host has is refused for a new VM.
func TestClusterLocks(t *testing.T) {
	e := newEnv(t)
	c := &fakeCluster{locks: map[string]string{}, other: map[string]string{"taken": "hostb"}}
	e.svc.SetCluster(c)
	e.create(e.spec("web1"), true)
	if len(c.locks) != 0 {
		t.Fatalf("locks left after create: %v", c.locks)
	}
	if !slices.Contains(c.log, "lock web1 vm.create") || !slices.Contains(c.log, "unlock web1") {
		t.Fatalf("create did not take and release the cluster lock: %v", c.log)
	}

	// Another host acts on web1: this host may not.
	c.locks["web1"] = "operation x (vm.reboot)"
	_, err := e.svc.Stop(e.ctx, "web1", StopOptions{Force: true})
	if api.Status(err) != 409 || !strings.Contains(err.Error(), "on host other") {
		t.Fatalf("stop while another host holds the lock: %v, want 409", err)
	}
	delete(c.locks, "web1")
	// This host's own lock was let go: the stop goes through now.
	op, err := e.svc.Stop(e.ctx, "web1", StopOptions{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	what := c.locks["web1"]
	c.mu.Unlock()
	if what != "" && !strings.Contains(what, op.ID) {
		t.Fatalf("the cluster lock says %q while operation %s runs", what, op.ID)
	}
	e.wait(op)
	if len(c.locks) != 0 {
		t.Fatalf("locks left after stop: %v", c.locks)
	}

	if _, err := e.svc.Create(e.ctx, e.spec("taken"), CreateOptions{}); api.Status(err) != 409 || !strings.Contains(err.Error(), "on host hostb") {
		t.Fatalf("create of a name hostb has: %v, want 409", err)
	}
	if len(c.locks) != 0 {
		t.Fatalf("a refused create left locks: %v", c.locks)
	}
}

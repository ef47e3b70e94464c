package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"libvirt.org/go/libvirtxml"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
	"github.com/godwit-project/godwit/internal/daemon"
)

// Daemon is a godwit daemon the benchmark started: its own state dir,
// socket and storage pool, on the system libvirtd.
type Daemon struct {
	Client   *client.Client
	Host     api.Host
	StateDir string
	Socket   string
	Log      string // the daemon's stderr
	PID      int

	env *Env
}

// BuildGodwit builds bin/godwit from the tree at env.Repo into the temp
// dir (CGO_ENABLED=0, like `make build`) and returns its path.
func (e *Env) BuildGodwit(ctx context.Context) (string, error) {
	tmp, err := e.TempDir()
	if err != nil {
		return "", err
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	out := filepath.Join(tmp, "godwit")
	cmd := Command(ctx, goBin, "build", "-o", out, "./cmd/godwit")
	cmd.Dir = e.Repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build godwit: %w\n%s", err, b)
	}
	return out, nil
}

// StartDaemon builds godwit and starts `godwit daemon` with a state dir
// and socket of its own, plus extra flags (e.g. "--accel", "tcg"). It
// returns once the daemon's host is ready (pool made, accelerator chosen).
// The cleanup stops the daemon by PID, then removes the storage pool it
// made (only that pool, found by name and checked by path).
func (e *Env) StartDaemon(ctx context.Context, extra ...string) (*Daemon, error) {
	bin, err := e.BuildGodwit(ctx)
	if err != nil {
		return nil, err
	}
	tmp, err := e.TempDir()
	if err != nil {
		return nil, err
	}
	d := &Daemon{
		env:      e,
		StateDir: filepath.Join(tmp, "state"),
		Socket:   filepath.Join(tmp, "godwit.sock"),
		Log:      filepath.Join(tmp, "daemon.log"),
	}
	// The pool the daemon will make: the same derivation it runs. The
	// host's answer below replaces it; this covers a daemon that made its
	// pool but died before answering.
	cfg := daemon.Config{StateDir: d.StateDir}
	if err := cfg.Complete(); err != nil {
		return nil, err
	}
	pool, poolPath := cfg.Pool.Name, cfg.Pool.Path
	e.Defer("remove storage pool "+pool+" of the benchmark's daemon", func(ctx context.Context) error {
		return removePool(ctx, pool, poolPath)
	})

	logf, err := os.Create(d.Log)
	if err != nil {
		return nil, err
	}
	// No default network: the benchmarks' VMs have no NICs, and a daemon
	// killed mid-run would leave it behind.
	args := append([]string{"daemon", "--state-dir", d.StateDir, "--socket", d.Socket, "--libvirt", LibvirtURI, "--no-default-network"}, extra...)
	// Not CommandContext: the daemon must outlive a cancelled ctx until
	// the VMs it manages are deleted through it.
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start daemon: %w", err)
	}
	logf.Close()
	d.PID = cmd.Process.Pid
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	e.Defer(fmt.Sprintf("stop godwit daemon (pid %d)", d.PID), func(context.Context) error {
		select {
		case <-exited:
			return nil
		default:
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
			return nil
		case <-time.After(20 * time.Second):
		}
		_ = cmd.Process.Kill()
		<-exited
		return errors.New("did not stop on SIGTERM within 20s; killed")
	})
	e.Logf("godwit daemon pid %d, state dir %s, log %s", d.PID, d.StateDir, d.Log)

	if d.Client, err = client.New(client.Options{Socket: d.Socket}); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		select {
		case <-exited:
			return nil, fmt.Errorf("godwit daemon exited: %v\n%s", waitErr, tail(d.Log, 20))
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		h, err := d.Client.Host(hctx)
		cancel()
		if err == nil && h.Pool != "" && (h.Pool != pool || h.PoolPath != poolPath) {
			e.Logf("daemon's pool is %s at %s (not %s at %s)", h.Pool, h.PoolPath, pool, poolPath)
			pool, poolPath = h.Pool, h.PoolPath
		}
		if err == nil && h.Accel.Chosen != "" {
			d.Host = h
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("godwit daemon not ready after 3m (last: %v)\n%s", err, tail(d.Log, 20))
		}
	}
	e.Logf("godwit daemon ready: pool %s, accel %s (%s)", d.Host.Pool, d.Host.Accel.Chosen, d.Host.Accel.Reason)
	return d, nil
}

// CreateCleanup registers the deletion of VM name (created through this
// daemon): through the daemon while it runs (after any operation still
// busy with the VM, e.g. a create cut short by Ctrl-C), else with virsh
// destroy and undefine of that exact domain.
func (d *Daemon) CreateCleanup(name string) *Cleanup {
	return d.env.Defer("delete vm "+name, func(ctx context.Context) error {
		err := d.deleteVM(ctx, name)
		if api.Status(err) == 404 {
			err = nil
		}
		// Whatever the daemon said, no domain of this name may remain.
		if verr := RemoveDomain(ctx, name); verr != nil {
			return errors.Join(err, verr)
		}
		return nil
	})
}

func (d *Daemon) deleteVM(ctx context.Context, name string) error {
	for {
		op, err := d.Client.DeleteVM(ctx, name, client.DeleteOptions{Force: true})
		if err == nil {
			_, err = d.Client.WaitOperation(ctx, op.ID, nil)
			return err
		}
		if api.Status(err) != 409 {
			return err
		}
		// Busy: wait for the operations on it, then try again.
		ops, lerr := d.Client.ListOperations(ctx, client.OperationFilter{Target: "vm/" + name, Active: true})
		if lerr != nil {
			return errors.Join(err, lerr)
		}
		for _, op := range ops {
			_, _ = d.Client.WaitOperation(ctx, op.ID, nil)
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// RemoveDomain destroys and undefines one libvirt domain (by name or
// UUID) if it exists. Only ever pass domains the benchmark made.
func RemoveDomain(ctx context.Context, id string) error {
	state, err := Virsh(ctx, "domstate", id)
	if err != nil {
		if strings.Contains(err.Error(), "failed to get domain") || strings.Contains(err.Error(), "Domain not found") {
			return nil
		}
		return err
	}
	if strings.TrimSpace(state) != "shut off" {
		if _, err := Virsh(ctx, "destroy", id); err != nil && !strings.Contains(err.Error(), "not running") {
			return err
		}
	}
	_, err = Virsh(ctx, "undefine", id)
	return err
}

// removePool destroys and undefines the pool name, if it exists and its
// target is path: a pool of that name elsewhere is not ours.
func removePool(ctx context.Context, name, path string) error {
	x, err := Virsh(ctx, "pool-dumpxml", name)
	if err != nil {
		if strings.Contains(err.Error(), "Storage pool not found") || strings.Contains(err.Error(), "failed to get pool") {
			return nil
		}
		return err
	}
	var p libvirtxml.StoragePool
	if err := p.Unmarshal(x); err != nil {
		return err
	}
	if p.Target == nil || filepath.Clean(p.Target.Path) != filepath.Clean(path) {
		return fmt.Errorf("pool %s points at %v, not at %s: left alone", name, p.Target, path)
	}
	if _, err := Virsh(ctx, "pool-destroy", name); err != nil && !strings.Contains(err.Error(), "is not active") {
		return err
	}
	_, err = Virsh(ctx, "pool-undefine", name)
	return err
}

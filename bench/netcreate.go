package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"libvirt.org/go/libvirtxml"

	"github.com/godwit-project/godwit/api"
)

func init() {
	Register(Benchmark{
		Name: "network-create",
		Summary: "NAT network create latency: godwit (CreateNetwork: checks, free /24 choice, define, start, autostart) " +
			"vs virsh net-define + net-start + net-autostart of the same network XML",
		Run: runNetworkCreate,
	})
}

type netCreate struct {
	env *Env
	d   *Daemon
	id  string // random part of every name this run makes
	dir string
	// template is a godwit-made network's XML, for virsh.
	template *libvirtxml.Network
}

func runNetworkCreate(ctx context.Context, env *Env) ([]Result, error) {
	if err := env.RequireRoot(); err != nil {
		return nil, err
	}
	if err := env.RequireLibvirt(ctx); err != nil {
		return nil, err
	}
	nc := &netCreate{env: env, id: RandomID(3)}
	var err error
	if nc.dir, err = env.SubDir("network-xml"); err != nil {
		return nil, err
	}
	if nc.d, err = env.StartDaemon(ctx, "--accel", "tcg"); err != nil {
		return nil, err
	}
	variants := []struct {
		name string
		run  func(context.Context, string) (time.Duration, error)
	}{{"godwit", nc.godwit}, {"virsh", nc.virsh}}
	env.Logf("warm-up round (not counted)")
	for _, v := range variants {
		if _, err := v.run(ctx, "warm"); err != nil {
			return nil, fmt.Errorf("warm-up %s: %w", v.name, err)
		}
	}
	times := map[string][]float64{}
	for i := 1; i <= env.Runs; i++ {
		for _, v := range variants {
			d, err := v.run(ctx, fmt.Sprint(i))
			if err != nil {
				return nil, fmt.Errorf("run %d %s: %w", i, v.name, err)
			}
			times[v.name] = append(times[v.name], Millis(d))
			env.Logf("run %d/%d %-6s %6.1f ms", i, env.Runs, v.name, Millis(d))
		}
	}
	g, b := Median(times["godwit"]), Median(times["virsh"])
	env.Logf("medians: godwit %.1f ms, virsh %.1f ms", g, b)
	return []Result{{Metric: "latency_ms", Godwit: float64(int(g*10)) / 10, Baseline: float64(int(b*10)) / 10, BaselineName: "virsh"}}, nil
}

// godwit creates a NAT network through the API (godwit picks the subnet),
// keeps its XML as the baseline's template, and deletes it.
func (nc *netCreate) godwit(ctx context.Context, tag string) (time.Duration, error) {
	name := "bnc-" + nc.id + "-" + tag
	c := nc.d.Client
	libvirtName := nc.d.Host.NetworkPrefix + "-" + name
	cleanup := nc.env.Defer("delete network "+name, func(ctx context.Context) error {
		err := c.DeleteNetwork(ctx, name)
		if api.Status(err) == 404 {
			err = nil
		}
		return errors.Join(err, removeNetwork(ctx, libvirtName))
	})
	start := time.Now()
	n, err := c.CreateNetwork(ctx, api.NetworkSpec{Name: name, Type: api.NetworkNAT})
	took := time.Since(start)
	if err != nil {
		return 0, err
	}
	if nc.template == nil {
		doc, err := Virsh(ctx, "net-dumpxml", "--inactive", n.Libvirt)
		if err != nil {
			return 0, err
		}
		var x libvirtxml.Network
		if err := x.Unmarshal(doc); err != nil {
			return 0, err
		}
		nc.template = &x
	}
	return took, cleanup.Run(ctx)
}

// virsh defines, starts and autostarts the template under another name
// and bridge (the subnet is free again once godwit's network is gone).
func (nc *netCreate) virsh(ctx context.Context, tag string) (time.Duration, error) {
	x := *nc.template
	x.Name, x.UUID, x.MAC = "bench-nc-"+nc.id+"-"+tag, "", nil
	br := *x.Bridge
	br.Name = "gwb" + nc.id + strings.ReplaceAll(tag, "warm", "w")
	x.Bridge = &br
	doc, err := x.Marshal()
	if err != nil {
		return 0, err
	}
	path := filepath.Join(nc.dir, x.Name+".xml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		return 0, err
	}
	cleanup := nc.env.Defer("remove libvirt network "+x.Name, func(ctx context.Context) error { return removeNetwork(ctx, x.Name) })
	start := time.Now()
	for _, args := range [][]string{{"net-define", path}, {"net-start", x.Name}, {"net-autostart", x.Name}} {
		if _, err := Virsh(ctx, args...); err != nil {
			return 0, err
		}
	}
	took := time.Since(start)
	return took, cleanup.Run(ctx)
}

// removeNetwork destroys and undefines one libvirt network, if it exists.
// Only ever pass networks the benchmark made.
func removeNetwork(ctx context.Context, name string) error {
	if _, err := Virsh(ctx, "net-info", name); err != nil {
		return nil // gone
	}
	_, _ = Virsh(ctx, "net-destroy", name)
	_, err := Virsh(ctx, "net-undefine", name)
	return err
}

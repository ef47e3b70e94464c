package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/cluster/member"
	"github.com/godwit-project/godwit/internal/store"
)

// Remove takes a dead host out of the cluster: its store member (if it
// runs one; refused while that member answers) and its registry record.
// What its namespace holds (its VMs' records) stays: while it holds any,
// the record stays too, marked removed, so those VMs stay listed and the
// HA VMs among them restart elsewhere. A host whose daemon stopped
// cleanly left its HA VMs running (frozen): removing it says the host is
// down, which only force confirms, since they would then run twice.
func (n *Node) Remove(ctx context.Context, name string, force bool) error {
	if name == n.cfg.Name {
		return api.Conflict("host %s is this host: remove it from another host of the cluster", name)
	}
	regItem, regErr := n.shared.GetItem(ctx, hostsBucket, name)
	if regErr != nil && !errors.Is(regErr, store.ErrNotFound) {
		return regErr
	}
	inRegistry := regErr == nil
	vms, _, err := n.hostStore(name).ListItems(ctx, vmsBucket)
	if err != nil {
		return fmt.Errorf("read the VM records of host %s: %w", name, err)
	}
	if err := n.refuseFrozen(ctx, name, vms, force); err != nil {
		return err
	}
	if n.m != nil {
		err = n.m.Remove(ctx, name)
	} else {
		var tlsCfg, terr = n.tls.ClientConfig()
		if terr != nil {
			return terr
		}
		err = member.RemoveVia(ctx, n.cli, tlsCfg, name)
	}
	isMember := !errors.Is(err, member.ErrNotMember)
	switch {
	case err == nil:
	case errors.Is(err, member.ErrAlive):
		return api.StatusErrorf(http.StatusConflict, "%w", err)
	case !isMember && inRegistry:
		// A client host: it runs no member. Dead once its lease ran out.
		if _, herr := n.shared.GetItem(ctx, heartbeatsBucket, name); herr == nil {
			return api.Conflict("host %s is alive (its heartbeat lease is): stop its daemon first, and remove it once its lease has run out (%s at most)", name, n.cfg.LeaseTTL)
		} else if !errors.Is(herr, store.ErrNotFound) {
			return herr
		}
	case !isMember:
		return api.NotFound("no host %s in the cluster", name)
	default:
		return api.StatusErrorf(http.StatusServiceUnavailable, "%w", err)
	}
	then := []store.Op{
		{Bucket: heartbeatsBucket, Key: name, Delete: true}, {Bucket: frozenBucket, Key: name, Delete: true},
		{Bucket: hostsBucket, Key: name, Delete: true},
	}
	var h Host
	if inRegistry && len(vms) > 0 && json.Unmarshal(regItem.Value, &h) == nil {
		h.Removed, h.Schedulable = time.Now().UTC(), false
		b, _ := json.Marshal(h)
		then[2] = store.Op{Bucket: hostsBucket, Key: name, Value: b}
	}
	if _, err := n.shared.Txn(ctx, store.Txn{Then: then}); err != nil {
		return fmt.Errorf("remove host %s from the registry: %w", name, err)
	}
	n.cfg.Log.Info("cluster: host removed", "host", name, "member", isMember, "vmRecordsLeft", len(vms), "force", force)
	return nil
}

// refuseFrozen refuses, unless force, to remove a host whose daemon
// stopped cleanly with HA VMs running there (its frozen mark), naming
// them: nothing fenced them, so only the user can say the host is down.
func (n *Node) refuseFrozen(ctx context.Context, name string, vms []store.Item, force bool) error {
	it, err := n.shared.GetItem(ctx, frozenBucket, name)
	switch {
	case errors.Is(err, store.ErrNotFound) || force:
		return nil
	case err != nil:
		return err
	}
	var mark struct {
		At time.Time `json:"at"`
	}
	_ = json.Unmarshal(it.Value, &mark)
	var ha []string
	for _, vm := range vms {
		if info, err := n.cfg.ReadVM(vm.Value); err == nil && info.HA && info.Run {
			ha = append(ha, vm.Key)
		}
	}
	if len(ha) == 0 {
		return nil
	}
	return api.Conflict("host %s's daemon stopped cleanly at %s and left its HA VMs running there (%s): if %s is down (powered off), 'godwit cluster remove %s --force' restarts them on other hosts; if it is not, they would run twice",
		name, mark.At.Format(time.RFC3339), strings.Join(ha, ", "), name, name)
}

// dropRemoved deletes the registry record of a removed host once its
// namespace holds no VM record (its HA VMs claimed, the others deleted),
// guarded by the record's revision (a host of that name joining again
// rewrites it). Any host may do it; the others' attempts then fail their
// guard.
func (n *Node) dropRemoved(ctx context.Context, host string) {
	it, err := n.shared.GetItem(ctx, hostsBucket, host)
	if err != nil {
		return
	}
	var rec Host
	if json.Unmarshal(it.Value, &rec) != nil || rec.Removed.IsZero() {
		return
	}
	if vms, _, err := n.hostStore(host).ListItems(ctx, vmsBucket); err != nil || len(vms) > 0 {
		return
	}
	if _, err := n.shared.Txn(ctx, store.Txn{If: []store.Guard{{Bucket: hostsBucket, Key: host, Rev: it.Rev}},
		Then: []store.Op{{Bucket: hostsBucket, Key: host, Delete: true}}}); err == nil {
		n.cfg.Log.Info("cluster: a removed host holds no VM record any more: its registry record is gone", "host", host)
	}
}

// ForgetVM deletes the record of vm, whose host was removed from the
// cluster (its disks went with it): under the VM's cluster lock, guarded
// by the record's revision. The host's registry record goes with its last
// VM record.
func (n *Node) ForgetVM(ctx context.Context, host, vm string) error {
	if h, ok := n.Host(host); !ok || h.Removed.IsZero() {
		return api.Conflict("host %s was not removed from the cluster: its VMs are deleted there", host)
	}
	held, err := n.Lock(ctx, vm, "vm.delete")
	if err != nil {
		return err
	}
	defer held.Unlock(context.WithoutCancel(ctx))
	it, err := n.hostStore(host).GetItem(ctx, vmsBucket, vm)
	if errors.Is(err, store.ErrNotFound) {
		return api.NotFound("vm %s is not on host %s", vm, host)
	} else if err != nil {
		return err
	}
	b, k := hostKey(host, vmsBucket, vm)
	if _, err := n.root.Txn(ctx, store.Txn{If: []store.Guard{rootGuard(held.Guard()), {Bucket: b, Key: k, Rev: it.Rev}},
		Then: []store.Op{{Bucket: b, Key: k, Delete: true}}}); err != nil {
		return fmt.Errorf("forget vm %s of the removed host %s: %w", vm, host, err)
	}
	n.cfg.Log.Info("cluster: forgot the record of a removed host's VM", "vm", vm, "host", host)
	n.dropRemoved(ctx, host)
	return nil
}

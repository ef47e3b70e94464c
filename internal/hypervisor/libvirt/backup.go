package libvirt

import (
	"context"
	"sort"
	"strconv"

	golibvirt "github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"

	"github.com/godwit-project/godwit/internal/hypervisor"
)

var (
	_ hypervisor.Backups   = (*Conn)(nil)
	_ hypervisor.Snapshots = (*Conn)(nil)
)

// BeginBackup starts a backup job with a new checkpoint.
func (c *Conn) BeginBackup(ctx context.Context, name, backupXML, checkpointXML string) error {
	return c.onDomain(ctx, "begin backup of", name, func(l *golibvirt.Libvirt, d golibvirt.Domain) error {
		var cp golibvirt.OptString
		if checkpointXML != "" {
			cp = golibvirt.OptString{checkpointXML}
		}
		return l.DomainBackupBegin(d, backupXML, cp, 0)
	})
}

// ActiveJob polls the domain's job (go-libvirt drops job events).
func (c *Conn) ActiveJob(ctx context.Context, name string) (active, backup bool, err error) {
	err = c.onDomain(ctx, "get job of", name, func(l *golibvirt.Libvirt, d golibvirt.Domain) error {
		typ, params, err := l.DomainGetJobStats(d, 0)
		if err != nil {
			return err
		}
		if golibvirt.DomainJobType(typ) == golibvirt.DomainJobNone {
			return nil
		}
		active = true
		for _, p := range params {
			if p.Field == "operation" {
				if v, ok := p.Value.I.(int32); ok && golibvirt.DomainJobOperation(v) == golibvirt.DomainJobOperationStrBackup {
					backup = true
				}
			}
		}
		return nil
	})
	return active, backup, err
}

// Checkpoints lists checkpoints, oldest first.
func (c *Conn) Checkpoints(ctx context.Context, name string) ([]hypervisor.Checkpoint, error) {
	return do(ctx, c, "list checkpoints of domain "+name, func(l *golibvirt.Libvirt) ([]hypervisor.Checkpoint, error) {
		d, err := c.lookup(l, name)
		if err != nil {
			return nil, err
		}
		cps, _, err := l.DomainListAllCheckpoints(d, 1, 0)
		if err != nil {
			return nil, err
		}
		out := make([]hypervisor.Checkpoint, 0, len(cps))
		for _, cp := range cps {
			doc, err := l.DomainCheckpointGetXMLDesc(cp, uint32(golibvirt.DomainCheckpointXMLNoDomain))
			if err != nil {
				return nil, err
			}
			var x libvirtxml.DomainCheckpoint
			if err := x.Unmarshal(doc); err != nil {
				return nil, err
			}
			h := hypervisor.Checkpoint{Name: x.Name}
			if x.Parent != nil {
				h.Parent = x.Parent.Name
			}
			h.Created, _ = strconv.ParseInt(x.CreationTime, 10, 64)
			out = append(out, h)
		}
		sort.SliceStable(out, func(i, j int) bool { return out[i].Created < out[j].Created })
		return out, nil
	})
}

// DeleteCheckpoint deletes one checkpoint, merging its bitmaps. It never
// passes the metadata-only flag: on a broken checkpoint that crashed
// libvirtd 9.0.
func (c *Conn) DeleteCheckpoint(ctx context.Context, name, checkpoint string) error {
	return c.onDomain(ctx, "delete checkpoint "+checkpoint+" of", name, func(l *golibvirt.Libvirt, d golibvirt.Domain) error {
		cp, err := l.DomainCheckpointLookupByName(d, checkpoint, 0)
		if err != nil {
			return err
		}
		return l.DomainCheckpointDelete(cp, 0)
	})
}

// StartPaused boots the domain with paused vCPUs.
func (c *Conn) StartPaused(ctx context.Context, name string) error {
	return c.onDomain(ctx, "start (paused) domain", name, func(l *golibvirt.Libvirt, d golibvirt.Domain) error {
		_, err := l.DomainCreateWithFlags(d, uint32(golibvirt.DomainStartPaused))
		return err
	})
}

// CreateSnapshot takes a snapshot from libvirt snapshot XML.
func (c *Conn) CreateSnapshot(ctx context.Context, name, snapshotXML string, diskOnly, quiesce bool) error {
	flags := golibvirt.DomainSnapshotCreateAtomic
	if diskOnly {
		flags |= golibvirt.DomainSnapshotCreateDiskOnly
	}
	if quiesce {
		flags |= golibvirt.DomainSnapshotCreateQuiesce
	}
	return c.onDomain(ctx, "snapshot domain", name, func(l *golibvirt.Libvirt, d golibvirt.Domain) error {
		_, err := l.DomainSnapshotCreateXML(d, snapshotXML, uint32(flags))
		return err
	})
}

// Snapshots lists a domain's snapshots, oldest first.
func (c *Conn) Snapshots(ctx context.Context, name string) ([]hypervisor.Snapshot, error) {
	return do(ctx, c, "list snapshots of domain "+name, func(l *golibvirt.Libvirt) ([]hypervisor.Snapshot, error) {
		d, err := c.lookup(l, name)
		if err != nil {
			return nil, err
		}
		snaps, _, err := l.DomainListAllSnapshots(d, 1, 0)
		if err != nil {
			return nil, err
		}
		out := make([]hypervisor.Snapshot, 0, len(snaps))
		for _, s := range snaps {
			doc, err := l.DomainSnapshotGetXMLDesc(s, 0)
			if err != nil {
				return nil, err
			}
			h, err := parseSnapshot(doc)
			if err != nil {
				return nil, err
			}
			cur, err := l.DomainSnapshotIsCurrent(s, 0)
			if err != nil {
				return nil, err
			}
			h.Current = cur == 1
			out = append(out, h)
		}
		// Oldest first; within a second, parents before children.
		parent := map[string]string{}
		for _, h := range out {
			parent[h.Name] = h.Parent
		}
		depth := func(name string) int {
			n := 0
			for p := parent[name]; p != "" && n < len(out); p = parent[p] {
				n++
			}
			return n
		}
		sort.SliceStable(out, func(i, j int) bool {
			if out[i].Created != out[j].Created {
				return out[i].Created < out[j].Created
			}
			return depth(out[i].Name) < depth(out[j].Name)
		})
		return out, nil
	})
}

func parseSnapshot(doc string) (hypervisor.Snapshot, error) {
	var x libvirtxml.DomainSnapshot
	if err := x.Unmarshal(doc); err != nil {
		return hypervisor.Snapshot{}, err
	}
	h := hypervisor.Snapshot{Name: x.Name, Description: x.Description, State: x.State, XML: doc}
	if x.Parent != nil {
		h.Parent = x.Parent.Name
	}
	h.Created, _ = strconv.ParseInt(x.CreationTime, 10, 64)
	if x.Memory != nil && x.Memory.Snapshot != "" && x.Memory.Snapshot != "no" {
		h.Memory = true
	}
	if x.Disks != nil {
		for _, dk := range x.Disks.Disks {
			if dk.Snapshot == "external" {
				h.External = true
				if dk.Source != nil && dk.Source.File != nil {
					h.Files = append(h.Files, dk.Source.File.File)
				}
			}
		}
	}
	return h, nil
}

// RevertSnapshot reverts the domain to a snapshot.
func (c *Conn) RevertSnapshot(ctx context.Context, name, snapshot string) error {
	return c.onDomain(ctx, "revert to snapshot "+snapshot+" of", name, func(l *golibvirt.Libvirt, d golibvirt.Domain) error {
		s, err := l.DomainSnapshotLookupByName(d, snapshot, 0)
		if err != nil {
			return err
		}
		return l.DomainRevertToSnapshot(s, 0)
	})
}

// DeleteSnapshot deletes one snapshot (libvirt merges an external one's
// overlay into its parent).
func (c *Conn) DeleteSnapshot(ctx context.Context, name, snapshot string) error {
	return c.onDomain(ctx, "delete snapshot "+snapshot+" of", name, func(l *golibvirt.Libvirt, d golibvirt.Domain) error {
		s, err := l.DomainSnapshotLookupByName(d, snapshot, 0)
		if err != nil {
			return err
		}
		return l.DomainSnapshotDelete(s, 0)
	})
}

// MakeCurrent redefines a snapshot as the current one.
func (c *Conn) MakeCurrent(ctx context.Context, name, snapshotXML string) error {
	return c.onDomain(ctx, "redefine snapshot of", name, func(l *golibvirt.Libvirt, d golibvirt.Domain) error {
		_, err := l.DomainSnapshotCreateXML(d, snapshotXML, uint32(golibvirt.DomainSnapshotCreateRedefine|golibvirt.DomainSnapshotCreateCurrent))
		return err
	})
}

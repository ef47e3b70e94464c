package fake

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"libvirt.org/go/libvirtxml"

	"github.com/godwit-project/godwit/internal/hypervisor"
)

// snapshot is a domain snapshot and the definition it reverts to.
type snapshot struct {
	hypervisor.Snapshot
	domXML string
}

// snapState is a domain state as snapshot XML spells it.
func snapState(s hypervisor.State) string {
	switch s {
	case hypervisor.StateRunning, hypervisor.StateBlocked:
		return "running"
	case hypervisor.StatePaused:
		return "paused"
	}
	return "shutoff"
}

func (d *domain) snapshot(name string) (int, *snapshot) {
	for i, s := range d.snapshots {
		if s.Name == name {
			return i, s
		}
	}
	return -1, nil
}

func (d *domain) makeCurrent(s *snapshot) {
	for _, o := range d.snapshots {
		o.Current = o == s
	}
}

func (d *domain) current() string {
	for _, s := range d.snapshots {
		if s.Current {
			return s.Name
		}
	}
	return ""
}

func errNoSnapshot(op, name, snap string) error {
	return &Error{Op: op + " " + name, Msg: fmt.Sprintf("Domain snapshot not found: no domain snapshot with matching name '%s'", snap), Kind: hypervisor.ErrNotFound}
}

// CreateSnapshot takes a snapshot from snapshot XML: with the memory of
// an active domain unless diskOnly; disk-only snapshots are external, and
// the domain's disks move onto their overlays, as libvirt does.
func (f *Fake) CreateSnapshot(ctx context.Context, name, doc string, diskOnly, quiesce bool) error {
	var x libvirtxml.DomainSnapshot
	perr := x.Unmarshal(doc)
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.domainFor(ctx, "CreateSnapshot", name, "snapshot domain", name)
	switch {
	case err != nil:
		return err
	case perr != nil:
		return &Error{Op: "snapshot domain " + name, Msg: "XML error: " + perr.Error()}
	case quiesce && (!d.State.Active() || f.guest(name).Agent == nil):
		return &Error{Op: "snapshot domain " + name, Msg: "Guest agent is not responding: QEMU guest agent is not connected", Kind: hypervisor.ErrAgentUnavailable}
	case d.out != nil || d.backup != nil:
		return invalid("snapshot domain", name, "another job is active on the domain")
	}
	if x.Name == "" {
		x.Name = strconv.FormatInt(time.Now().Unix(), 10)
	}
	if _, s := d.snapshot(x.Name); s != nil {
		return &Error{Op: "snapshot domain " + name, Msg: fmt.Sprintf("operation failed: domain snapshot '%s' already exists", x.Name), Kind: hypervisor.ErrExists}
	}
	s := &snapshot{Snapshot: hypervisor.Snapshot{Name: x.Name, Parent: d.current(), Description: x.Description,
		Created: time.Now().Unix(), State: snapState(d.State), Memory: !diskOnly && d.State.Active(), External: diskOnly}, domXML: d.xml}
	if diskOnly {
		overlays := map[string]string{}
		if x.Disks != nil {
			for _, dk := range x.Disks.Disks {
				if dk.Snapshot == "external" && dk.Source != nil && dk.Source.File != nil {
					overlays[dk.Name] = dk.Source.File.File
				}
			}
		}
		for target, path := range diskPaths(d.xml) {
			if overlays[target] == "" {
				overlays[target] = strings.TrimSuffix(path, ".qcow2") + "." + x.Name + ".qcow2"
			}
			s.Files = append(s.Files, overlays[target])
		}
		d.xml = onOverlays(d.xml, overlays)
		if d.liveXML != "" {
			d.liveXML = onOverlays(d.liveXML, overlays)
		}
	}
	x.Parent = nil
	if s.Parent != "" {
		x.Parent = &libvirtxml.DomainSnapshotParent{Name: s.Parent}
	}
	x.State, x.CreationTime = s.State, strconv.FormatInt(s.Created, 10)
	if s.Memory && x.Memory == nil {
		x.Memory = &libvirtxml.DomainSnapshotMemory{Snapshot: "internal"}
	}
	s.XML, _ = x.Marshal()
	d.snapshots = append(d.snapshots, s)
	d.makeCurrent(s)
	return nil
}

// onOverlays points a domain's disks at their overlay files, by target.
func onOverlays(doc string, overlays map[string]string) string {
	var dom libvirtxml.Domain
	if dom.Unmarshal(doc) != nil || dom.Devices == nil {
		return doc
	}
	for i := range dom.Devices.Disks {
		dk := &dom.Devices.Disks[i]
		if dk.Target == nil || overlays[dk.Target.Dev] == "" {
			continue
		}
		dk.Source = &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: overlays[dk.Target.Dev]}}
	}
	out, err := dom.Marshal()
	if err != nil {
		return doc
	}
	return out
}

// Snapshots lists a domain's snapshots, oldest first.
func (f *Fake) Snapshots(ctx context.Context, name string) ([]hypervisor.Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.domainFor(ctx, "Snapshots", name, "list snapshots of domain", name)
	if err != nil {
		return nil, err
	}
	out := make([]hypervisor.Snapshot, len(d.snapshots))
	for i, s := range d.snapshots {
		out[i] = s.Snapshot
		out[i].Files = append([]string(nil), s.Files...)
	}
	return out, nil
}

// RevertSnapshot puts the domain back as the snapshot has it: its
// definition, and running (or paused) with a memory snapshot, else shut
// off. External snapshots cannot be reverted to (libvirt before 9.9).
func (f *Fake) RevertSnapshot(ctx context.Context, name, snap string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	op := "revert to snapshot " + snap + " of"
	d, err := f.domainFor(ctx, "RevertSnapshot", name+"/"+snap, op, name)
	if err != nil {
		return err
	}
	_, s := d.snapshot(snap)
	switch {
	case s == nil:
		return errNoSnapshot(op, name, snap)
	case s.External:
		return &Error{Op: op + " " + name, Msg: "unsupported configuration: revert to external snapshot not supported yet", Kind: hypervisor.ErrUnsupported}
	case d.out != nil || d.backup != nil:
		return invalid(op, name, "another job is active on the domain")
	}
	d.xml = s.domXML
	want := hypervisor.StateShutoff
	if s.Memory {
		want = hypervisor.StateRunning
		if s.State == "paused" {
			want = hypervisor.StatePaused
		}
	}
	if d.State.Active() {
		f.setState(d, hypervisor.StateShutoff, "from snapshot")
	}
	if want.Active() {
		d.boot++
		d.liveXML = d.xml
		f.setState(d, want, "from snapshot")
	}
	d.makeCurrent(s)
	return nil
}

// DeleteSnapshot deletes one snapshot; its children take its parent, and
// its parent becomes current if it was.
func (f *Fake) DeleteSnapshot(ctx context.Context, name, snap string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	op := "delete snapshot " + snap + " of"
	d, err := f.domainFor(ctx, "DeleteSnapshot", name+"/"+snap, op, name)
	if err != nil {
		return err
	}
	i, s := d.snapshot(snap)
	if s == nil {
		return errNoSnapshot(op, name, snap)
	}
	for _, o := range d.snapshots {
		if o.Parent == s.Name {
			o.Parent = s.Parent
		}
	}
	d.snapshots = append(d.snapshots[:i], d.snapshots[i+1:]...)
	if s.Current {
		if _, p := d.snapshot(s.Parent); p != nil {
			d.makeCurrent(p)
		}
	}
	return nil
}

// MakeCurrent redefines a snapshot from its XML as the current one.
func (f *Fake) MakeCurrent(ctx context.Context, name, doc string) error {
	return f.redefine(ctx, "MakeCurrent", name, doc, true)
}

// SnapshotXMLs returns the domain's snapshot XMLs, parents first.
func (f *Fake) SnapshotXMLs(ctx context.Context, dom string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.domainFor(ctx, "SnapshotXMLs", dom, "list snapshots of", dom)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range d.snapshots {
		out = append(out, s.XML)
	}
	return out, nil
}

// RedefineSnapshot records a snapshot's metadata from its XML.
func (f *Fake) RedefineSnapshot(ctx context.Context, dom, doc string, current bool) error {
	return f.redefine(ctx, "RedefineSnapshot", dom, doc, current)
}

func (f *Fake) redefine(ctx context.Context, method, name, doc string, current bool) error {
	var x libvirtxml.DomainSnapshot
	perr := x.Unmarshal(doc)
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.domainFor(ctx, method, name+"/"+x.Name, "redefine snapshot of", name)
	switch {
	case err != nil:
		return err
	case perr != nil || x.Name == "":
		return &Error{Op: "redefine snapshot of " + name, Msg: fmt.Sprintf("XML error: %v", perr)}
	}
	_, s := d.snapshot(x.Name)
	if s == nil {
		s = &snapshot{domXML: d.xml}
		d.snapshots = append(d.snapshots, s)
	}
	s.Name, s.Description, s.State, s.XML = x.Name, x.Description, x.State, doc
	s.Created, _ = strconv.ParseInt(x.CreationTime, 10, 64)
	s.Parent = ""
	if x.Parent != nil {
		s.Parent = x.Parent.Name
	}
	s.Memory = x.Memory != nil && x.Memory.Snapshot != "" && x.Memory.Snapshot != "no"
	s.External, s.Files = false, nil
	if x.Disks != nil {
		for _, dk := range x.Disks.Disks {
			if dk.Snapshot == "external" {
				s.External = true
				if dk.Source != nil && dk.Source.File != nil {
					s.Files = append(s.Files, dk.Source.File.File)
				}
			}
		}
	}
	if current {
		d.makeCurrent(s)
	}
	return nil
}

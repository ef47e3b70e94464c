package libvirt

import (
	"context"
	"fmt"
	"os"
	"sort"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"

	"github.com/godwit-project/godwit/internal/hypervisor"
)

// session is a dedicated connection for one migration's phases.
type session struct {
	c *Conn // for timeouts and error mapping
	l *golibvirt.Libvirt
}

// OpenSession dials a connection of its own for one migration.
func (c *Conn) OpenSession(ctx context.Context) (hypervisor.Session, error) {
	l, answered, err := c.dial(ctx)
	switch {
	case !answered:
		return nil, err
	case err != nil:
		return nil, fmt.Errorf("open a migration connection to libvirt at %s: %v: %w", c.socket, err, hypervisor.ErrUnavailable)
	}
	return &session{c: c, l: l}, nil
}

// call runs f on the session's connection, bounded by ctx.
func (s *session) call(ctx context.Context, what string, f func(l *golibvirt.Libvirt) error) error {
	_, answered, err := await(ctx, func() (struct{}, error) { return struct{}{}, f(s.l) })
	switch {
	case !answered:
		return fmt.Errorf("%s: %w", what, err)
	case err != nil:
		return s.c.mapErrorKeep(what, err)
	}
	return nil
}

func (s *session) Begin(ctx context.Context, dom string, p hypervisor.MigrateParams, flags uint32) ([]byte, string, error) {
	var cookie []byte
	var xml string
	err := s.call(ctx, "migration begin", func(l *golibvirt.Libvirt) error {
		d, err := l.DomainLookupByName(dom)
		if err != nil {
			return err
		}
		cookie, xml, err = l.DomainMigrateBegin3Params(d, typedParams(p), flags)
		return err
	})
	return cookie, xml, err
}

func (s *session) Prepare(ctx context.Context, p hypervisor.MigrateParams, cookie []byte, flags uint32) ([]byte, string, error) {
	var out []byte
	var uri string
	err := s.call(ctx, "migration prepare", func(l *golibvirt.Libvirt) error {
		c, u, err := l.DomainMigratePrepare3Params(typedParams(p), cookie, flags)
		if err != nil {
			return err
		}
		out = c
		if len(u) > 0 {
			uri = u[0]
		}
		return nil
	})
	return out, uri, err
}

func (s *session) Perform(ctx context.Context, dom string, p hypervisor.MigrateParams, cookie []byte, flags uint32) ([]byte, error) {
	var out []byte
	err := s.call(ctx, "migration perform", func(l *golibvirt.Libvirt) error {
		d, err := l.DomainLookupByName(dom)
		if err != nil {
			return err
		}
		out, err = l.DomainMigratePerform3Params(d, nil, typedParams(p), cookie, golibvirt.DomainMigrateFlags(flags))
		return err
	})
	return out, err
}

func (s *session) Finish(ctx context.Context, p hypervisor.MigrateParams, cookie []byte, flags uint32, cancelled bool) ([]byte, error) {
	var out []byte
	err := s.call(ctx, "migration finish", func(l *golibvirt.Libvirt) error {
		_, c, err := l.DomainMigrateFinish3Params(typedParams(p), cookie, flags, boolInt(cancelled))
		out = c
		return err
	})
	return out, err
}

func (s *session) Confirm(ctx context.Context, dom string, p hypervisor.MigrateParams, cookie []byte, flags uint32, cancelled bool) error {
	return s.call(ctx, "migration confirm", func(l *golibvirt.Libvirt) error {
		d, err := l.DomainLookupByName(dom)
		if err != nil {
			return err
		}
		return l.DomainMigrateConfirm3Params(d, typedParams(p), cookie, flags, boolInt(cancelled))
	})
}

func (s *session) Alive() bool { return s.l.IsConnected() }

func (s *session) Close() error {
	done := make(chan error, 1)
	go func() { done <- s.l.Disconnect() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		return fmt.Errorf("closing the migration connection timed out")
	}
}

func boolInt(b bool) int32 {
	if b {
		return 1
	}
	return 0
}

func typedParams(p hypervisor.MigrateParams) []golibvirt.TypedParam {
	var out []golibvirt.TypedParam
	str := func(field, v string) {
		if v != "" {
			out = append(out, golibvirt.TypedParam{Field: field, Value: *golibvirt.NewTypedParamValueString(v)})
		}
	}
	str(golibvirt.MigrateParamURI, p.URI)
	str(golibvirt.MigrateParamListenAddress, p.ListenAddress)
	str(golibvirt.MigrateParamDestXML, p.DestXML)
	str(golibvirt.MigrateParamPersistXML, p.PersistXML)
	str(golibvirt.MigrateParamDestName, p.DestName)
	for _, d := range p.MigrateDisks {
		str(golibvirt.MigrateParamMigrateDisks, d)
	}
	if p.BandwidthMiB > 0 {
		out = append(out, golibvirt.TypedParam{Field: golibvirt.MigrateParamBandwidth, Value: *golibvirt.NewTypedParamValueUllong(p.BandwidthMiB)})
	}
	if p.Parallel > 0 {
		out = append(out, golibvirt.TypedParam{Field: golibvirt.MigrateParamParallelConnections, Value: *golibvirt.NewTypedParamValueInt(int32(p.Parallel))})
	}
	return out
}

// JobStats reads a domain job's statistics (the running job, or the last
// completed one).
func (c *Conn) JobStats(ctx context.Context, dom string, completed bool) (hypervisor.JobStats, error) {
	var flags golibvirt.DomainGetJobStatsFlags
	if completed {
		flags = golibvirt.DomainJobStatsCompleted
	}
	return do(ctx, c, "job stats of "+dom, func(l *golibvirt.Libvirt) (hypervisor.JobStats, error) {
		d, err := l.DomainLookupByName(dom)
		if err != nil {
			return hypervisor.JobStats{}, err
		}
		typ, params, err := l.DomainGetJobStats(d, flags)
		if err != nil {
			return hypervisor.JobStats{}, err
		}
		s := hypervisor.JobStats{Active: typ == 1 || typ == 2, Completed: typ == 3}
		for _, p := range params {
			v := paramUint(p.Value)
			switch p.Field {
			case "operation":
				s.Operation = int(v)
			case "time_elapsed":
				s.ElapsedMs = v
			case "downtime":
				s.DowntimeMs = v
			case "setup_time":
				s.SetupMs = v
			case "data_total":
				s.DataTotal = v
			case "data_processed":
				s.DataProcessed = v
			case "data_remaining":
				s.DataRemaining = v
			case "memory_total":
				s.MemTotal = v
			case "memory_processed":
				s.MemProcessed = v
			case "memory_remaining":
				s.MemRemaining = v
			case "memory_bps":
				s.MemBps = v
			case "memory_dirty_rate":
				s.DirtyRate = v
			case "memory_page_size":
				s.PageSize = v
			case "memory_iteration":
				s.Iteration = v
			case "memory_postcopy_requests":
				s.Postcopy = s.Postcopy || v > 0
			case "disk_total":
				s.DiskTotal = v
			case "disk_processed":
				s.DiskProcessed = v
			case "disk_remaining":
				s.DiskRemaining = v
			case "auto_converge_throttle":
				s.AutoConverge = v
			}
		}
		return s, nil
	})
}

func paramUint(v golibvirt.TypedParamValue) uint64 {
	switch x := v.I.(type) {
	case uint64:
		return x
	case int64:
		return uint64(x)
	case uint32:
		return uint64(x)
	case int32:
		return uint64(x)
	case float64:
		return uint64(x)
	}
	return 0
}

// AbortJob aborts the domain's running job (a migration): the domain goes
// on where it ran.
func (c *Conn) AbortJob(ctx context.Context, dom string) error {
	return c.onDomain(ctx, "abort job of", dom, func(l *golibvirt.Libvirt, d golibvirt.Domain) error {
		return l.DomainAbortJob(d)
	})
}

// StartPostcopy switches a running migration to postcopy.
func (c *Conn) StartPostcopy(ctx context.Context, dom string) error {
	return c.onDomain(ctx, "start postcopy of", dom, func(l *golibvirt.Libvirt, d golibvirt.Domain) error {
		return l.DomainMigrateStartPostCopy(d, 0)
	})
}

// SetMaxDowntime sets the downtime target of a running migration.
func (c *Conn) SetMaxDowntime(ctx context.Context, dom string, ms uint64) error {
	return c.onDomain(ctx, "set max downtime of", dom, func(l *golibvirt.Libvirt, d golibvirt.Domain) error {
		return l.DomainMigrateSetMaxDowntime(d, ms, 0)
	})
}

// CompareCPU compares a CPU definition with this host's hypervisor CPU.
func (c *Conn) CompareCPU(ctx context.Context, virtType, cpuXML string) (int, error) {
	return do(ctx, c, "compare CPU", func(l *golibvirt.Libvirt) (int, error) {
		r, err := l.ConnectCompareHypervisorCPU(nil, golibvirt.OptString{"x86_64"}, nil, golibvirt.OptString{virtType}, cpuXML, 0)
		return int(r), err
	})
}

// Save writes the domain's memory state to path and stops it.
func (c *Conn) Save(ctx context.Context, dom, path string) error {
	_ = os.Remove(path)
	return c.onDomain(ctx, "save", dom, func(l *golibvirt.Libvirt, d golibvirt.Domain) error {
		return l.DomainSaveFlags(d, path, nil, 0)
	})
}

// Restore starts a domain from a saved state with xml as its definition.
func (c *Conn) Restore(ctx context.Context, path, xml string, paused bool) error {
	flags := uint32(golibvirt.DomainSaveRunning)
	if paused {
		flags = uint32(golibvirt.DomainSavePaused)
	}
	var dxml golibvirt.OptString
	if xml != "" {
		dxml = golibvirt.OptString{xml}
	}
	return do0(ctx, c, "restore from "+path, func(l *golibvirt.Libvirt) error {
		return l.DomainRestoreFlags(path, dxml, flags)
	})
}

// SnapshotXMLs returns the domain's snapshots, parents before children.
func (c *Conn) SnapshotXMLs(ctx context.Context, dom string) ([]string, error) {
	return do(ctx, c, "list snapshots of "+dom, func(l *golibvirt.Libvirt) ([]string, error) {
		d, err := l.DomainLookupByName(dom)
		if err != nil {
			return nil, err
		}
		snaps, _, err := l.DomainListAllSnapshots(d, 1, 0)
		if err != nil {
			return nil, err
		}
		type item struct {
			xml   string
			ctime int64
		}
		items := make([]item, 0, len(snaps))
		for _, s := range snaps {
			x, err := l.DomainSnapshotGetXMLDesc(s, uint32(golibvirt.DomainSnapshotXMLSecure))
			if err != nil {
				return nil, err
			}
			var ds libvirtxml.DomainSnapshot
			if err := ds.Unmarshal(x); err != nil {
				return nil, err
			}
			var ct int64
			fmt.Sscan(ds.CreationTime, &ct)
			items = append(items, item{x, ct})
		}
		// Creation time orders parents before children.
		sort.SliceStable(items, func(i, j int) bool { return items[i].ctime < items[j].ctime })
		out := make([]string, len(items))
		for i, it := range items {
			out[i] = it.xml
		}
		return out, nil
	})
}

// RedefineSnapshot records snapshot metadata on this host.
func (c *Conn) RedefineSnapshot(ctx context.Context, dom, xml string, current bool) error {
	flags := uint32(golibvirt.DomainSnapshotCreateRedefine)
	if current {
		flags |= uint32(golibvirt.DomainSnapshotCreateCurrent)
	}
	return c.onDomain(ctx, "redefine snapshot of", dom, func(l *golibvirt.Libvirt, d golibvirt.Domain) error {
		_, err := l.DomainSnapshotCreateXML(d, xml, flags)
		return err
	})
}

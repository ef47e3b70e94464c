package libvirt

import (
	"reflect"
	"testing"

	golibvirt "github.com/digitalocean/go-libvirt"

	"github.com/godwit-project/godwit/internal/hypervisor"
)

func TestParseStatsDevicesInIndexOrder(t *testing.T) {
	p := func(field string, v any) golibvirt.TypedParam {
		return golibvirt.TypedParam{Field: field, Value: golibvirt.TypedParamValue{I: v}}
	}
	s := parseStats(golibvirt.DomainStatsRecord{Params: []golibvirt.TypedParam{
		p("block.1.name", "vdb"), p("block.1.wr.bytes", uint64(5)),
		p("block.0.name", "vda"), p("block.0.rd.bytes", uint64(7)), p("block.0.rd.reqs", uint64(2)),
		p("net.0.name", "vnet3"), p("net.0.tx.pkts", uint64(9)),
	}})
	wantDisks := []hypervisor.DiskStats{{Name: "vda", ReadBytes: 7, ReadOps: 2}, {Name: "vdb", WriteBytes: 5}}
	wantNICs := []hypervisor.NICStats{{Name: "vnet3", TxPackets: 9}}
	if !reflect.DeepEqual(s.Disks, wantDisks) || !reflect.DeepEqual(s.NICs, wantNICs) {
		t.Errorf("disks %+v nics %+v; want %+v and %+v", s.Disks, s.NICs, wantDisks, wantNICs)
	}
	if s := parseStats(golibvirt.DomainStatsRecord{}); s.Disks != nil || s.NICs != nil {
		t.Errorf("no devices: disks %v nics %v; want nil", s.Disks, s.NICs)
	}
}

package bench

import (
	"context"
	"testing"
	"time"
)

// The scale simulation at a tiny size (3 store members, 3 simulated
// hosts, 30 VMs), so that it cannot rot: every host joins as a client
// and heartbeats, every VM is claimed, seen by a voter's watch, listed,
// and counted in its host's reservation record with the vCPUs its
// record asks for, and placement picks simulated hosts.
func TestScaleSimulationSmall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const samples = 3
	r, err := simulateScale(ctx, scaleOptions{Voters: 3, Hosts: 3, VMsPerHost: 10, Samples: samples,
		Dir: t.TempDir(), Logf: t.Logf, Idle: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	want := 3*10 + samples
	if r.VMs != want || r.Reserved != want || r.ReservedCPUs != want*scaleVMCPUs {
		t.Fatalf("%d VMs, %d reserved with %d vCPUs; want %d, %d, %d", r.VMs, r.Reserved, r.ReservedCPUs, want, want, want*scaleVMCPUs)
	}
	if len(r.Place)+len(r.PlaceCold) != samples || len(r.PlaceCold) != samples/2 || len(r.Claim) != samples || len(r.ListView) != samples || len(r.ListStore) != samples {
		t.Fatalf("samples: %d+%d placements, %d claims, %d and %d listings", len(r.Place), len(r.PlaceCold), len(r.Claim), len(r.ListView), len(r.ListStore))
	}
	if r.DBSize <= 0 || r.DBInUse <= 0 || r.TotalCPU <= 0 {
		t.Fatalf("db size %d (%d in use), CPU %s", r.DBSize, r.DBInUse, r.TotalCPU)
	}
}

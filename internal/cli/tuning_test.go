package cli

import (
	"strings"
	"testing"

	"github.com/godwit-project/godwit/api"
)

// The tuning fields read from YAML; a bad size among them is reported
// with its field and line.
func TestReadTunedSpec(t *testing.T) {
	spec, err := readSpec(specFile(t, `name: db1
cpus: 2
maxCpus: 4
memory: 1GiB
maxMemory: 2GiB
cpu: {mode: host-model, sockets: 1, cores: 2, threads: 2, pin: [{vcpu: 0, hostCpus: "1"}], emulatorPin: "0"}
iothreads: 1
disks:
  - {name: root, size: 10GiB, cache: none, io: native, iothread: 1, limits: {readBytes: 50MiB, writeIops: 100}}
nics: [{network: default, queues: 2}]
watchdog: {action: poweroff}
rng: {source: /dev/random}
shares: [{source: /srv/data, tag: data}]
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if spec.MaxCPUs != 4 || spec.MaxMemory != 2*api.GiB || spec.CPU.Cores != 2 || spec.CPU.Pin[0].HostCPUs != "1" ||
		spec.Disks[0].Limits.ReadBytes != 50*api.MiB || spec.Disks[0].Limits.WriteIOPS != 100 || spec.NICs[0].Queues != 2 ||
		spec.Watchdog.Action != "poweroff" || spec.Shares[0].Tag != "data" {
		t.Errorf("spec = %+v", spec)
	}
	_, err = readSpec(specFile(t, "name: a\ncpus: 1\nmemory: 1GiB\nmaxMemory: 2XB\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "line 4: maxMemory") {
		t.Errorf("bad maxMemory: %v", err)
	}
	_, err = readSpec(specFile(t, "name: a\ncpus: 1\nmemory: 1GiB\ncpu: {pinning: x}\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "pinning") {
		t.Errorf("unknown cpu field: %v", err)
	}
}

func TestShowTuning(t *testing.T) {
	v := api.VM{CPU: "QEMU's default CPU (qemu64), under TCG", Spec: &api.VMSpec{CPUs: 1, MaxCPUs: 2, Memory: 256 * api.MiB, MaxMemory: 512 * api.MiB,
		CPU:   &api.CPUTuning{Pin: []api.CPUPin{{VCPU: 0, HostCPUs: "1"}}},
		Disks: []api.Disk{{Name: "root", Limits: &api.DiskLimits{WriteBytes: 4 * api.MiB}}}}}
	var b strings.Builder
	for _, kv := range tuningFields(v) {
		b.WriteString(kv[0] + ": " + kv[1] + "\n")
	}
	for _, want := range []string{"Max CPUs: 2", "Pinning: vCPU 0 -> host CPU 1", "Max memory: 512MiB", "Disk root: limits write 4MiB/s", "CPU model: QEMU's default"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("vm show lacks %q:\n%s", want, b.String())
		}
	}
}

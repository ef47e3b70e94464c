package api

// Host describes the host a daemon runs on.
type Host struct {
	Name       string  `json:"name"`
	Hostname   string  `json:"hostname"`
	Accel      Accel   `json:"accel"`
	Libvirt    Libvirt `json:"libvirt"`
	CPUs       int     `json:"cpus"`
	CPUModel   string  `json:"cpuModel,omitempty"`
	URL        string  `json:"url,omitempty" doc:"The TCP API other hosts use, when it listens on TCP."`
	Memory     Size    `json:"memory"`
	MemoryFree Size    `json:"memoryFree"`
	StateDir   string  `json:"stateDir"`
	Pool       string  `json:"pool"`
	PoolPath   string  `json:"poolPath"`
	// NetworkPrefix starts the libvirt names of this daemon's networks.
	NetworkPrefix string `json:"networkPrefix"`
	VMs           int    `json:"vms"`
	// Load1 is how busy the host's CPUs are: runnable tasks, for CPUs.
	Load1 float64 `json:"load1" doc:"The host's 1-minute load average (/proc/loadavg): compare with cpus."`
	// Cluster says the host's part in a cluster, when it is in one.
	Cluster  string   `json:"cluster,omitempty" doc:"The host's role in its cluster and the cluster store's health."`
	Version  string   `json:"version"`
	Warnings []string `json:"warnings,omitempty"`
}

// Accel says which accelerator VMs get and why.
type Accel struct {
	Setting string `json:"setting" doc:"auto, kvm or tcg as configured."`
	Chosen  string `json:"chosen" doc:"kvm or tcg: what new VMs use." example:"tcg"`
	Reason  string `json:"reason" doc:"Why this accelerator was chosen."`
}

// Libvirt says how the daemon reaches libvirt.
type Libvirt struct {
	URI         string `json:"uri"`
	Connected   bool   `json:"connected"`
	Error       string `json:"error,omitempty"`
	Version     string `json:"version,omitempty"`
	QEMUVersion string `json:"qemuVersion,omitempty"`
}

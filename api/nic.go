package api

// NIC models.
const (
	NICVirtio  = "virtio"
	NICE1000   = "e1000"
	NICE1000E  = "e1000e"
	NICRTL8139 = "rtl8139"
)

// NIC is a network interface in a VM spec.
type NIC struct {
	Network string `json:"network" yaml:"network" doc:"Name of a godwit network." example:"default"`
	MAC     string `json:"mac,omitempty" yaml:"mac,omitempty" doc:"MAC address (default: a random one in 52:54:00, QEMU's range)." example:"52:54:00:12:34:56"`
	Model   string `json:"model,omitempty" yaml:"model,omitempty" enum:"virtio,e1000,e1000e,rtl8139" doc:"Device model (default virtio)."`
	Queues  int    `json:"queues,omitempty" yaml:"queues,omitempty" doc:"virtio multiqueue: queue pairs, at most the vCPUs (default 1)."`
}

// VMNIC is a VM's network interface as it is: its MAC (generated when the
// spec gave none) and the guest's addresses on it.
type VMNIC struct {
	Network   string    `json:"network"`
	MAC       string    `json:"mac"`
	Model     string    `json:"model"`
	Device    string    `json:"device,omitempty" doc:"The host's tap device, while the VM runs."`
	Addresses []Address `json:"addresses,omitempty" doc:"The guest's addresses on this NIC, while it runs."`
}

// Address is a guest address and where godwit learned it.
type Address struct {
	IP     string `json:"ip" doc:"Address with prefix length." example:"10.20.30.57/24"`
	Source string `json:"source" enum:"lease,agent,arp" doc:"lease: the network's DHCP server; agent: qemu-guest-agent in the guest; arp: the host's ARP table."`
	// Interface is the guest's name for the NIC, when the agent says.
	Interface string `json:"interface,omitempty"`
}

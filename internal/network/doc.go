// Package network owns godwit's virtual networks: it validates network
// specs, maps godwit's names onto libvirt network and bridge names that do
// not collide between daemons sharing a libvirtd, picks free subnets, builds
// the libvirt network XML (netxml.go, golden-tested), keeps each network's
// record in the store and brings networks up (defined, active, autostart)
// whenever libvirt is reachable, including the `default` NAT network.
//
// It never touches a libvirt network it did not create (libvirt's own
// `default`, another daemon's), and it never touches domains: which VMs use
// a network is asked of its caller (internal/vm knows).
package network

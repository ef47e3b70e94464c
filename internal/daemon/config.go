package daemon

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/godwit-project/godwit/internal/accel"
	"github.com/godwit-project/godwit/internal/cluster/placement"
	"github.com/godwit-project/godwit/internal/health"
	"github.com/godwit-project/godwit/internal/migrate"
	"github.com/godwit-project/godwit/internal/vm"
)

// Defaults of a daemon that is given no flags.
const (
	DefaultStateDir = "/var/lib/godwit"
	DefaultSocket   = "/run/godwit/godwit.sock"
	DefaultLibvirt  = "qemu:///system"
	DefaultPool     = "godwit"
	// DefaultNetworkPrefix starts the libvirt names of godwit's networks.
	DefaultNetworkPrefix = "godwit"
)

var networkPrefixRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,39}$`)

// Config is the daemon's configuration: a YAML file (--config) whose keys
// the command-line flags override.
type Config struct {
	// Name is this host's name among peers (default: the hostname).
	Name     string `yaml:"name,omitempty"`
	StateDir string `yaml:"stateDir,omitempty"`
	Socket   string `yaml:"socket,omitempty"`
	// Listen, when set, also serves the API over TCP with TLS.
	Listen string `yaml:"listen,omitempty"`
	// Advertise is the URL peers reach this daemon at (default: from Listen).
	Advertise string `yaml:"advertise,omitempty"`
	Libvirt   string `yaml:"libvirt,omitempty"`
	Accel     string `yaml:"accel,omitempty"`
	// TuneRoot is where host tune reads and writes /proc, /sys and /etc
	// (default /; tests give a directory tree).
	TuneRoot string  `yaml:"tuneRoot,omitempty"`
	Pool     Pool    `yaml:"pool,omitempty"`
	Network  Network `yaml:"network,omitempty"`
	// LibvirtTimeout bounds one libvirt call (default 2m).
	LibvirtTimeout time.Duration `yaml:"libvirtTimeout,omitempty"`
	// QEMUTLSDir is where godwit puts the x509 files QEMU's native TLS uses
	// for migration streams (libvirt's migrate_tls_x509_cert_dir; default
	// /etc/pki/qemu). Written only with Listen set.
	QEMUTLSDir string `yaml:"qemuTLSDir,omitempty"`
	// BackupRepo is the backup repository directory (default STATE/backups).
	BackupRepo string `yaml:"backupRepo,omitempty"`
	// MigrationIdleTimeout: an incoming migration whose source stops
	// talking for this long is undone (default 90s).
	MigrationIdleTimeout time.Duration `yaml:"migrationIdleTimeout,omitempty"`
	// HistoryStep is how often the usage history the web page graphs
	// takes a point (default 30s; it keeps HistorySpan, 6h, of them).
	HistoryStep time.Duration `yaml:"historyStep,omitempty"`
	// MigrationTimeouts bound the waits of an outgoing move (Finish,
	// cancel, asking the destination, keepalives).
	MigrationTimeouts migrate.Timeouts `yaml:"migrationTimeouts,omitempty"`
	// Health tunes the health checks (pool thresholds).
	Health health.Thresholds `yaml:"health,omitempty"`
	// Cluster tunes this host's part in a cluster (godwit cluster init
	// and join): its store member's ports and timings.
	Cluster ClusterConfig `yaml:"cluster,omitempty"`
	// FenceGuard is the binary run as the fence guard in a cluster
	// (godwit daemon gives its own; "" runs none, as in unit tests).
	FenceGuard string `yaml:"-"`
}

// ClusterConfig tunes the cluster store member and the host's lease. The
// member listens on the --listen address (or --advertise's), on its own
// ports.
type ClusterConfig struct {
	// PeerPort and ClientPort are the store member's ports (default 2380
	// and 2379): members replicate on the first, hosts read and write on
	// the second.
	PeerPort   int `yaml:"peerPort,omitempty"`
	ClientPort int `yaml:"clientPort,omitempty"`
	// TickMs and ElectionMs are the store's raft heartbeat and election
	// timeout (default 100 and 1000); every host must use the same.
	TickMs     uint `yaml:"tickMs,omitempty"`
	ElectionMs uint `yaml:"electionMs,omitempty"`
	// LeaseTTL is the host's heartbeat lease (default 6s): the locks it
	// holds go when it is not renewed for this long. HeartbeatEvery is
	// how often the heartbeat, written at each lease, is written again
	// (default 30s; liveness is the lease's, not the rewrites').
	LeaseTTL       time.Duration `yaml:"leaseTTL,omitempty"`
	HeartbeatEvery time.Duration `yaml:"heartbeatEvery,omitempty"`
	// ReadyTimeout is how long the daemon waits at start for the store's
	// quorum before it serves without (default 10s).
	ReadyTimeout time.Duration `yaml:"readyTimeout,omitempty"`
	// Labels are this host's, for placement's host selectors (none: keep
	// what the registry has).
	Labels map[string]string `yaml:"labels,omitempty"`
	// CPUOvercommit and MemoryOvercommit are what this host offers
	// placement: vCPUs per CPU (default 4) and memory per byte of its
	// memory (default 1; below 1 keeps some for the host itself).
	CPUOvercommit    float64 `yaml:"cpuOvercommit,omitempty"`
	MemoryOvercommit float64 `yaml:"memoryOvercommit,omitempty"`
	// The HA timings (default: from LeaseTTL; docs/cluster.md has the
	// arithmetic): FenceAfter, how long this host goes without renewing
	// its lease before it stops its HA VMs (default 2/3 of the TTL);
	// FenceStop, what that stop may take (default 1/3 of the TTL, at
	// least 1s); FenceMargin, for clocks and late timers (the same);
	// RestartDelay, how long after a host's lease is gone the others
	// restart its HA VMs (default, and at least, the sum of the three).
	FenceAfter   time.Duration `yaml:"fenceAfter,omitempty"`
	FenceStop    time.Duration `yaml:"fenceStop,omitempty"`
	FenceMargin  time.Duration `yaml:"fenceMargin,omitempty"`
	RestartDelay time.Duration `yaml:"restartDelay,omitempty"`
	// Placement is how this host places the VMs created through it:
	// spread (default: the host with the most room left) or pack (the
	// least).
	Placement string `yaml:"placement,omitempty"`
}

// Pool is the libvirt storage pool that holds VM disks.
type Pool struct {
	Name string `yaml:"name,omitempty"`
	Path string `yaml:"path,omitempty"`
	// Shared: Path is the same shared filesystem on every host.
	Shared bool `yaml:"shared,omitempty"`
}

// Network configures godwit's networks.
type Network struct {
	// Prefix starts the libvirt names of this daemon's networks (default
	// godwit, or godwit-<hash> for a state dir other than the default).
	Prefix string `yaml:"prefix,omitempty"`
	// NoDefault: do not make the `default` NAT network at first start.
	NoDefault bool `yaml:"noDefault,omitempty"`
	// DefaultSubnet is the default network's subnet (default: a free /24).
	DefaultSubnet string `yaml:"defaultSubnet,omitempty"`
}

// LoadConfig reads a config file strictly: unknown keys are errors.
func LoadConfig(path string) (Config, error) {
	var c Config
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Complete fills in defaults and checks the values.
func (c *Config) Complete() error {
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	abs, err := filepath.Abs(c.StateDir)
	if err != nil {
		return err
	}
	c.StateDir = abs
	if c.Socket == "" {
		c.Socket = DefaultSocket
	}
	if c.Libvirt == "" {
		c.Libvirt = DefaultLibvirt
	}
	if c.Accel == "" {
		c.Accel = accel.Auto
	}
	if err := accel.ValidSetting(c.Accel); err != nil {
		return err
	}
	if c.Name == "" {
		c.Name, _ = os.Hostname()
	}
	// Daemons side by side share one libvirtd: their pools and networks
	// need names of their own.
	own := func(base string) string {
		if c.StateDir == DefaultStateDir {
			return base
		}
		sum := sha256.Sum256([]byte(c.StateDir))
		return base + "-" + hex.EncodeToString(sum[:4])
	}
	if c.Pool.Name == "" {
		c.Pool.Name = own(DefaultPool)
	}
	if c.Network.Prefix == "" {
		c.Network.Prefix = own(DefaultNetworkPrefix)
	}
	if !networkPrefixRE.MatchString(c.Network.Prefix) {
		return fmt.Errorf("network.prefix: %q must be 1-40 letters, digits, '_' or '-', starting with a letter", c.Network.Prefix)
	}
	if err := c.Health.Complete(); err != nil {
		return err
	}
	if c.QEMUTLSDir == "" {
		c.QEMUTLSDir = "/etc/pki/qemu"
	}
	if c.Advertise == "" && c.Listen != "" {
		host, port, err := net.SplitHostPort(c.Listen)
		if err != nil {
			return fmt.Errorf("listen: %q is not ADDR:PORT", c.Listen)
		}
		if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
			c.Advertise = "https://" + net.JoinHostPort(host, port)
		}
	}
	if c.Pool.Path == "" {
		c.Pool.Path = filepath.Join(c.StateDir, "pool")
	}
	if !filepath.IsAbs(c.Pool.Path) {
		return fmt.Errorf("pool.path: %q must be absolute", c.Pool.Path)
	}
	if c.BackupRepo == "" {
		c.BackupRepo = filepath.Join(c.StateDir, "backups")
	}
	if !filepath.IsAbs(c.BackupRepo) {
		return fmt.Errorf("backupRepo: %q must be absolute", c.BackupRepo)
	}
	return c.Cluster.complete()
}

func (c *ClusterConfig) complete() error {
	switch c.Placement {
	case "":
		c.Placement = placement.Spread
	case placement.Spread, placement.Pack:
	default:
		return fmt.Errorf("cluster.placement: %q is not spread or pack", c.Placement)
	}
	if c.CPUOvercommit < 0 || c.MemoryOvercommit < 0 {
		return fmt.Errorf("cluster: cpuOvercommit %g and memoryOvercommit %g must not be negative", c.CPUOvercommit, c.MemoryOvercommit)
	}
	if err := vm.ValidateLabels("cluster.labels", c.Labels); err != nil {
		return err
	}
	return nil
}

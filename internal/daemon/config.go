package daemon

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/godwit-project/godwit/internal/accel"
)

// Defaults of a daemon that is given no flags.
const (
	DefaultStateDir = "/var/lib/godwit"
	DefaultSocket   = "/run/godwit/godwit.sock"
	DefaultLibvirt  = "qemu:///system"
	DefaultPool     = "godwit"
)

// Config is the daemon's configuration: a YAML file (--config) whose keys
// the command-line flags override.
type Config struct {
	// Name is this host's name among peers (default: the hostname).
	Name     string `yaml:"name,omitempty"`
	StateDir string `yaml:"stateDir,omitempty"`
	Socket   string `yaml:"socket,omitempty"`
	// Listen, when set, also serves the API over TCP with TLS.
	Listen  string `yaml:"listen,omitempty"`
	Libvirt string `yaml:"libvirt,omitempty"`
	Accel   string `yaml:"accel,omitempty"`
	Pool    Pool   `yaml:"pool,omitempty"`
	// LibvirtTimeout bounds one libvirt call (default 2m).
	LibvirtTimeout time.Duration `yaml:"libvirtTimeout,omitempty"`
	// BackupRepo is the backup repository directory (default STATE/backups).
	BackupRepo string `yaml:"backupRepo,omitempty"`
}

// Pool is the libvirt storage pool that holds VM disks.
type Pool struct {
	Name string `yaml:"name,omitempty"`
	Path string `yaml:"path,omitempty"`
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
	if c.Pool.Name == "" {
		c.Pool.Name = DefaultPool
		// Daemons side by side share one libvirtd: their pools need names
		// of their own.
		if c.StateDir != DefaultStateDir {
			sum := sha256.Sum256([]byte(c.StateDir))
			c.Pool.Name = DefaultPool + "-" + hex.EncodeToString(sum[:4])
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
	return nil
}

package cli

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/godwit-project/godwit/internal/daemon"
)

func newDaemonCmd(g *globals) *cobra.Command {
	var configFile, logLevel string
	var flags daemon.Config
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Run the godwit daemon for this host (as root)",
		Long: `The daemon serves godwit's REST API on a root-only unix socket, runs VMs
through the local libvirtd, and keeps its state (specs, operations) in a
state directory. Several daemons can run side by side with different
--state-dir and --socket. Flags override the --config file's keys:

  name: host1              # this host's name among peers (default hostname)
  stateDir: /var/lib/godwit
  socket: /run/godwit/godwit.sock
  libvirt: qemu:///system  # or qemu+unix:///system?socket=PATH
  accel: auto              # auto (KVM if it really works, else TCG), kvm or tcg
  pool: {name: godwit, path: /var/lib/godwit/pool}
  network:
    prefix: godwit         # libvirt names of networks: PREFIX-NAME (default
                           # godwit, godwit-<hash> for another state dir)
    noDefault: false       # true: no 'default' NAT network at first start
    defaultSubnet: ""      # its subnet (default: a free private /24)
  libvirtTimeout: 2m
  cluster:                 # once in a cluster (godwit cluster init/join)
    peerPort: 2380         # the store member's ports, on the --listen address
    clientPort: 2379
    leaseTTL: 10s          # the host's heartbeat lease`,
		Example: `  godwit daemon
  godwit daemon --state-dir /tmp/gw2 --socket /tmp/gw2/godwit.sock --accel tcg`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := daemon.Config{}
			if configFile != "" {
				var err error
				if cfg, err = daemon.LoadConfig(configFile); err != nil {
					return err
				}
			}
			overlay(&cfg, flags, cmd)
			// In a cluster the daemon runs this binary again as its
			// fence guard (internal/fenceguard).
			if exe, err := os.Executable(); err == nil {
				cfg.FenceGuard = exe
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return usagef("--log-level: %q is not debug, info, warn or error", logLevel)
			}
			log := slog.New(slog.NewTextHandler(g.errOut, &slog.HandlerOptions{Level: level}))
			if os.Geteuid() != 0 {
				log.Warn("not running as root: libvirt's system socket and the default paths need root")
			}
			d, err := daemon.New(cfg, log)
			if err != nil {
				return fmt.Errorf("daemon: %w", err)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return d.Serve(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "YAML config file")
	f.StringVar(&flags.Name, "name", "", "this host's name (default: the hostname)")
	f.StringVar(&flags.StateDir, "state-dir", "", "state directory (default "+daemon.DefaultStateDir+")")
	f.StringVar(&flags.Socket, "socket", "", "unix socket to serve on (default "+daemon.DefaultSocket+")")
	f.StringVar(&flags.Listen, "listen", "", "also serve on TCP, ADDR:PORT, with TLS and client certificates (STATE-DIR/tls)")
	f.StringVar(&flags.Libvirt, "libvirt", "", "libvirt URI (default "+daemon.DefaultLibvirt+")")
	f.StringVar(&flags.Accel, "accel", "", "accelerator: auto, kvm or tcg (default auto)")
	f.StringVar(&flags.Pool.Name, "pool", "", "libvirt storage pool for VM disks")
	f.StringVar(&flags.Pool.Path, "pool-path", "", "directory of that pool (default STATE-DIR/pool)")
	f.BoolVar(&flags.Pool.Shared, "pool-shared", false, "that pool's path is the same shared filesystem on every host (migration copies no disk; ha: restart VMs can live there)")
	f.StringVar(&flags.BackupRepo, "backup-repo", "", "backup repository directory (default STATE-DIR/backups)")
	f.BoolVar(&flags.Network.NoDefault, "no-default-network", false, "do not make the 'default' NAT network at first start")
	f.StringVar(&flags.Network.Prefix, "network-prefix", "", "prefix of the libvirt names of this daemon's networks")
	f.DurationVar(&flags.LibvirtTimeout, "libvirt-timeout", 0, "bound on one libvirt call (default 2m)")
	f.StringVar(&flags.QEMUTLSDir, "qemu-tls-dir", "", "where to put QEMU's migration TLS files (libvirt's migrate_tls_x509_cert_dir, default /etc/pki/qemu)")
	f.DurationVar(&flags.MigrationIdleTimeout, "migration-idle-timeout", 0, "undo an incoming migration whose source is silent this long (default 90s)")
	f.DurationVar(&flags.HistoryStep, "history-step", 0, "time between points of the usage history the web page graphs (default 30s; 6h of points are kept)")
	f.IntVar(&flags.Cluster.PeerPort, "cluster-peer-port", 0, "port of this host's cluster store member for the other members (default 2380)")
	f.IntVar(&flags.Cluster.ClientPort, "cluster-client-port", 0, "port of this host's cluster store member for clients (default 2379)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	_ = cmd.RegisterFlagCompletionFunc("accel", cobra.FixedCompletions([]string{"auto", "kvm", "tcg"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// overlay copies the flags the user set over the config file's values. The
// daemon's --socket is its own flag, shadowing the global client one.
func overlay(cfg *daemon.Config, f daemon.Config, cmd *cobra.Command) {
	set := func(name string, dst *string, v string) {
		if cmd.Flags().Changed(name) {
			*dst = v
		}
	}
	set("name", &cfg.Name, f.Name)
	set("state-dir", &cfg.StateDir, f.StateDir)
	set("socket", &cfg.Socket, f.Socket)
	set("listen", &cfg.Listen, f.Listen)
	set("libvirt", &cfg.Libvirt, f.Libvirt)
	set("accel", &cfg.Accel, f.Accel)
	set("pool", &cfg.Pool.Name, f.Pool.Name)
	set("pool-path", &cfg.Pool.Path, f.Pool.Path)
	if cmd.Flags().Changed("pool-shared") {
		cfg.Pool.Shared = f.Pool.Shared
	}
	set("backup-repo", &cfg.BackupRepo, f.BackupRepo)
	set("network-prefix", &cfg.Network.Prefix, f.Network.Prefix)
	if cmd.Flags().Changed("no-default-network") {
		cfg.Network.NoDefault = f.Network.NoDefault
	}
	if cmd.Flags().Changed("libvirt-timeout") {
		cfg.LibvirtTimeout = f.LibvirtTimeout
	}
	set("qemu-tls-dir", &cfg.QEMUTLSDir, f.QEMUTLSDir)
	if cmd.Flags().Changed("migration-idle-timeout") {
		cfg.MigrationIdleTimeout = f.MigrationIdleTimeout
	}
	if cmd.Flags().Changed("history-step") {
		cfg.HistoryStep = f.HistoryStep
	}
	if cmd.Flags().Changed("cluster-peer-port") {
		cfg.Cluster.PeerPort = f.Cluster.PeerPort
	}
	if cmd.Flags().Changed("cluster-client-port") {
		cfg.Cluster.ClientPort = f.Cluster.ClientPort
	}
}

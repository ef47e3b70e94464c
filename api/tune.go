package api

// Host tuning (godwit host tune, issue 13): each host setting that
// matters for VMs, its value, the one a profile recommends, and why.

// TuneProfileVirtualHost is the default profile, after tuned's
// virtual-host: a host that runs VMs.
const TuneProfileVirtualHost = "virtual-host"

// TuneItem is one host setting as it is and as the profile wants it.
type TuneItem struct {
	Name        string `json:"name" doc:"The setting, e.g. vm.swappiness, ksm, kvm." example:"vm.swappiness"`
	Current     string `json:"current" doc:"Its value now (absent: the host does not have it)." example:"60"`
	Recommended string `json:"recommended" doc:"What the profile wants." example:"10"`
	Status      string `json:"status" enum:"ok,warning,critical" doc:"ok: as recommended (or it does not apply); warning: VMs run, less well; critical: VMs cannot run as they should."`
	Why         string `json:"why" doc:"Why the recommendation, and what the current value means here."`
	// Path is the file that holds it, for settings apply can change.
	Path string `json:"path,omitempty" doc:"The /proc or /sys file apply writes; absent for what only the admin can change (BIOS, kernel command line, packages)."`
}

// TuneReport is the answer to GET /v1/host/tune.
type TuneReport struct {
	Profile string     `json:"profile" example:"virtual-host"`
	Status  string     `json:"status" enum:"ok,warning,critical" doc:"The worst status of the items."`
	Items   []TuneItem `json:"items"`
}

// TuneRequest asks to apply a profile's runtime settings.
type TuneRequest struct {
	Profile string `json:"profile,omitempty" doc:"The profile (default virtual-host)."`
	DryRun  bool   `json:"dryRun,omitempty" doc:"Only say what would change."`
	Persist bool   `json:"persist,omitempty" doc:"Also write them under /etc/sysctl.d and /etc/modules-load.d, for the next boot."`
}

// TuneChange is one setting changed (or, in a dry run, to change).
type TuneChange struct {
	Name string `json:"name"`
	Path string `json:"path" doc:"The file written."`
	From string `json:"from"`
	To   string `json:"to"`
}

// TuneResult says what an apply or a revert changed.
type TuneResult struct {
	DryRun  bool         `json:"dryRun,omitempty"`
	Changes []TuneChange `json:"changes" doc:"Settings changed, in order."`
	Files   []string     `json:"files,omitempty" doc:"Files written (persist) or removed (revert)."`
}

package api

import "time"

// BackupRequest asks for a backup of a VM.
type BackupRequest struct {
	Full bool `json:"full,omitempty" doc:"Read the whole disk even when an incremental backup is possible."`
}

// Backup is one backup in the repository. Every backup is logically full:
// it restores on its own, whether it was read full or incrementally.
type Backup struct {
	ID        string    `json:"id" example:"web1@20261129-155536"`
	VM        string    `json:"vm"`
	CreatedAt time.Time `json:"createdAt"`
	Mode      string    `json:"mode" enum:"full,incremental" doc:"How the disks were read: full, or only the blocks changed since Parent."`
	Parent    string    `json:"parent,omitempty" doc:"The backup an incremental one read changes against."`
	Note      string    `json:"note,omitempty" doc:"Why the backup is full when an incremental one was expected."`
	Host      string    `json:"host,omitempty"`
	// Size is the disks' virtual size; DataBytes what is not zeroes.
	Size      Size         `json:"size"`
	DataBytes Size         `json:"dataBytes"`
	Stats     BackupStats  `json:"stats"`
	Disks     []BackupDisk `json:"disks"`
	Spec      *VMSpec      `json:"spec,omitempty" doc:"The VM's spec at backup time; restore recreates the VM from it."`
}

// BackupStats say what a backup cost.
type BackupStats struct {
	BytesRead    Size    `json:"bytesRead" doc:"Bytes read from the VM's disks."`
	BytesStored  Size    `json:"bytesStored" doc:"New bytes written to the repository (compressed)."`
	ChunksNew    int     `json:"chunksNew"`
	ChunksReused int     `json:"chunksReused"`
	Seconds      float64 `json:"seconds" doc:"From the job's begin to the committed manifest."`
	// CommitSeconds is the part spent syncing the repository and writing
	// the manifest.
	CommitSeconds float64 `json:"commitSeconds,omitempty"`
}

// BackupDisk is one disk of a backup.
type BackupDisk struct {
	Name      string `json:"name"`
	Target    string `json:"target"`
	Size      Size   `json:"size"`
	DataBytes Size   `json:"dataBytes"`
	Chunks    int    `json:"chunks"`
}

// BackupList is the answer to GET /v1/backups.
type BackupList struct {
	Backups []Backup `json:"backups"`
}

// RestoreRequest asks to recreate a VM from a backup.
type RestoreRequest struct {
	As    string `json:"as,omitempty" doc:"Name of the restored VM (default: the backed-up VM's name, which must then be free)."`
	To    string `json:"to,omitempty" doc:"Peer host to restore on (default: this one): the VM is restored here, then moved there cold."`
	Start bool   `json:"start,omitempty" doc:"Start the VM once restored."`
}

// RestoreResult is the result of a restore operation.
type RestoreResult struct {
	VM           string `json:"vm"`
	Host         string `json:"host,omitempty" doc:"The peer the VM was moved to, with to."`
	Backup       string `json:"backup"`
	BytesWritten Size   `json:"bytesWritten"`
}

// VerifyRequest asks to check backups (all when IDs is empty).
type VerifyRequest struct {
	IDs []string `json:"ids,omitempty"`
}

// VerifyReport is what verify found.
type VerifyReport struct {
	OK            bool           `json:"ok"`
	Backups       int            `json:"backups"`
	ChunksChecked int            `json:"chunksChecked"`
	BytesChecked  Size           `json:"bytesChecked"`
	BadChunks     []string       `json:"badChunks,omitempty"`
	Damaged       []BackupDamage `json:"damaged,omitempty"`
}

// BackupDamage is what is wrong with one backup.
type BackupDamage struct {
	ID        string   `json:"id"`
	VM        string   `json:"vm"`
	BadChunks int      `json:"badChunks"`
	Problems  []string `json:"problems"`
}

// RetentionPolicy says which backups of a VM to keep.
type RetentionPolicy struct {
	KeepLast   int `json:"keepLast,omitempty" doc:"Keep the newest N backups."`
	KeepDaily  int `json:"keepDaily,omitempty" doc:"Keep the newest backup of each of the last N days that have backups."`
	KeepWeekly int `json:"keepWeekly,omitempty" doc:"Keep the newest backup of each of the last N weeks that have backups."`
}

// PruneRequest asks to remove backups the policy does not keep.
type PruneRequest struct {
	RetentionPolicy
	VM     string `json:"vm,omitempty" doc:"Only this VM's backups (default: every VM's, each on its own)."`
	DryRun bool   `json:"dryRun,omitempty" doc:"Say what would go, remove nothing."`
}

// PruneDecision is what prune did with one backup.
type PruneDecision struct {
	ID      string   `json:"id"`
	VM      string   `json:"vm"`
	Keep    bool     `json:"keep"`
	Reasons []string `json:"reasons,omitempty"`
}

// PruneResult is the result of a prune operation.
type PruneResult struct {
	DryRun        bool            `json:"dryRun,omitempty"`
	Decisions     []PruneDecision `json:"decisions"`
	Removed       int             `json:"removed"`
	ChunksRemoved int             `json:"chunksRemoved"`
	BytesFreed    Size            `json:"bytesFreed"`
}

// BackupSchedule backs a VM up periodically (the daemon runs it).
type BackupSchedule struct {
	VM string `json:"vm"`
	// Every is a Go duration, e.g. 24h.
	Every string `json:"every" example:"24h"`
	RetentionPolicy
	LastRun    time.Time `json:"lastRun,omitzero"`
	NextRun    time.Time `json:"nextRun,omitzero"`
	LastBackup string    `json:"lastBackup,omitempty"`
	LastError  string    `json:"lastError,omitempty"`
}

// ScheduleRequest sets a VM's backup schedule.
type ScheduleRequest struct {
	Every string `json:"every" example:"24h" doc:"How often, as a Go duration (24h, 90m); at least 1m."`
	RetentionPolicy
}

// BackupScheduleList is the answer to GET /v1/backup-schedules.
type BackupScheduleList struct {
	Schedules []BackupSchedule `json:"schedules"`
}

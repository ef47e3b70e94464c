package api

import "time"

// SnapshotRequest asks for a snapshot of a VM.
type SnapshotRequest struct {
	Name        string `json:"name" doc:"Snapshot name, unique in the VM." example:"before-upgrade"`
	Description string `json:"description,omitempty"`
	Memory      bool   `json:"memory,omitempty" doc:"Keep the running guest's memory too: reverting resumes it where it was (internal snapshot)."`
	DiskOnly    bool   `json:"diskOnly,omitempty" doc:"Disks only, as external qcow2 overlays (the running guest is not paused for its memory)."`
	Quiesce     bool   `json:"quiesce,omitempty" doc:"Freeze the guest's filesystems first (needs the guest agent; disk-only)."`
}

// Snapshot is one snapshot of a VM.
type Snapshot struct {
	Name        string    `json:"name"`
	VM          string    `json:"vm"`
	Parent      string    `json:"parent,omitempty"`
	Children    []string  `json:"children,omitempty"`
	Description string    `json:"description,omitempty"`
	CreatedAt   time.Time `json:"createdAt"`
	// VMState is the VM's state when the snapshot was taken.
	VMState string `json:"vmState"`
	Kind    string `json:"kind" enum:"internal,external"`
	Memory  bool   `json:"memory"`
	Current bool   `json:"current,omitempty"`
	// Size is the memory state of an internal snapshot, or what the
	// overlays of an external one hold.
	Size  Size     `json:"size"`
	Files []string `json:"files,omitempty" doc:"External snapshot's overlay files."`
}

// SnapshotList is the answer to GET /v1/vms/{name}/snapshots.
type SnapshotList struct {
	Snapshots []Snapshot `json:"snapshots"`
}

package api

import (
	"encoding/json"
	"time"
)

// OpState is where an operation is in its life.
type OpState string

// Operation states. Succeeded, Failed and Cancelled are final.
const (
	OpPending   OpState = "pending"
	OpRunning   OpState = "running"
	OpSucceeded OpState = "succeeded"
	OpFailed    OpState = "failed"
	OpCancelled OpState = "cancelled"
)

// Final reports whether the state is an end state.
func (s OpState) Final() bool {
	return s == OpSucceeded || s == OpFailed || s == OpCancelled
}

// Operation is a long job: create, start, stop, delete, migrate, backup...
type Operation struct {
	ID         string          `json:"id"`
	Kind       string          `json:"kind" doc:"What it does, e.g. vm.create." example:"vm.create"`
	Target     string          `json:"target" doc:"What it acts on, e.g. vm/web1." example:"vm/web1"`
	State      OpState         `json:"state"`
	Progress   Progress        `json:"progress"`
	Error      string          `json:"error,omitempty"`
	ErrorCode  int             `json:"errorCode,omitempty" doc:"HTTP-style status of the error, e.g. 409."`
	Result     json.RawMessage `json:"result,omitempty" doc:"Kind-specific result, e.g. a migration report."`
	CreatedAt  time.Time       `json:"createdAt"`
	UpdatedAt  time.Time       `json:"updatedAt"`
	FinishedAt time.Time       `json:"finishedAt,omitzero"`
}

// Progress is how far an operation got. Total is 0 when unknown.
type Progress struct {
	Message string `json:"message,omitempty"`
	Current int64  `json:"current,omitempty"`
	Total   int64  `json:"total,omitempty"`
	Unit    string `json:"unit,omitempty" doc:"What Current and Total count, e.g. bytes."`
}

// OperationList is the answer to GET /v1/operations.
type OperationList struct {
	Operations []Operation `json:"operations"`
}

// Err returns the operation's error as a *StatusError when it failed or was
// cancelled, and nil otherwise.
func (o Operation) Err() error {
	switch o.State {
	case OpFailed:
		code := o.ErrorCode
		if code == 0 {
			code = 500
		}
		return &StatusError{Message: o.Error, Code: code}
	case OpCancelled:
		return &StatusError{Message: "operation " + o.ID + " was cancelled", Code: 409}
	}
	return nil
}

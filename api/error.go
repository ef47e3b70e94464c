package api

import (
	"errors"
	"fmt"
	"net/http"
)

// StatusError is an error with the HTTP status it maps to. On the wire it is
// {"error": "...", "code": N}. The daemon maps every error to one of these in
// one place; the client decodes error responses back into one.
type StatusError struct {
	Message string `json:"error" doc:"What went wrong, for people."`
	Code    int    `json:"code" doc:"The HTTP status code."`
	// Reason tells programs apart errors of one status (ReasonNoRoom).
	Reason string `json:"reason,omitempty" doc:"For programs: which error of its status this is, when it matters (no-room)." enum:"no-room"`
	err    error
}

// Reasons of errors.
const (
	// ReasonNoRoom: the host (409) cannot take the VM: no room, drained,
	// or its anti-affinity group is there. Placement tries another.
	ReasonNoRoom = "no-room"
)

// StatusErrorf makes a StatusError; %w in format wraps like fmt.Errorf.
func StatusErrorf(code int, format string, args ...any) *StatusError {
	err := fmt.Errorf(format, args...)
	return &StatusError{Message: err.Error(), Code: code, err: errors.Unwrap(err)}
}

func (e *StatusError) Error() string { return e.Message }

// Unwrap returns the wrapped cause, if any.
func (e *StatusError) Unwrap() error { return e.err }

// GetStatus returns the HTTP status code (the huma.StatusError interface).
func (e *StatusError) GetStatus() int { return e.Code }

// Status returns the HTTP status carried by err, or 0 when it carries none.
func Status(err error) int {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

// Shorthands for the statuses godwit uses.
func BadRequest(format string, args ...any) *StatusError {
	return StatusErrorf(http.StatusBadRequest, format, args...)
}
func NotFound(format string, args ...any) *StatusError {
	return StatusErrorf(http.StatusNotFound, format, args...)
}
func Conflict(format string, args ...any) *StatusError {
	return StatusErrorf(http.StatusConflict, format, args...)
}
func Unavailable(format string, args ...any) *StatusError {
	return StatusErrorf(http.StatusServiceUnavailable, format, args...)
}

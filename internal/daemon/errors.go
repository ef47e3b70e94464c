package daemon

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"

	"github.com/danielgtaylor/huma/v2"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/hypervisor"
)

// toStatus maps any error a handler meets to an *api.StatusError. This is
// the one place where errors become HTTP statuses.
func toStatus(err error) error {
	var se *api.StatusError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se):
		if se.Message != err.Error() {
			// Keep the outer context ("start vm x: ...") with the status.
			return &api.StatusError{Message: err.Error(), Code: se.Code}
		}
		return se
	case errors.Is(err, hypervisor.ErrUnavailable):
		return &api.StatusError{Message: err.Error(), Code: http.StatusServiceUnavailable}
	case errors.Is(err, hypervisor.ErrNotFound):
		return &api.StatusError{Message: err.Error(), Code: http.StatusNotFound}
	case errors.Is(err, hypervisor.ErrInvalidState), errors.Is(err, hypervisor.ErrExists):
		return &api.StatusError{Message: err.Error(), Code: http.StatusConflict}
	case errors.Is(err, context.DeadlineExceeded):
		return &api.StatusError{Message: err.Error(), Code: http.StatusGatewayTimeout}
	}
	return &api.StatusError{Message: err.Error(), Code: http.StatusInternalServerError}
}

var setErrorModel sync.Once

// useAPIErrors makes huma's own errors (bad JSON, schema violations) come
// out as api.StatusError, with 400 for what huma calls 422.
func useAPIErrors() {
	setErrorModel.Do(func() {
		huma.NewError = func(status int, msg string, errs ...error) huma.StatusError {
			if status == http.StatusUnprocessableEntity {
				status = http.StatusBadRequest
			}
			var details []string
			for _, e := range errs {
				if e == nil {
					continue
				}
				var d *huma.ErrorDetail
				if errors.As(e, &d) {
					loc := strings.TrimPrefix(d.Location, "body.")
					if loc == "body" || loc == "" {
						details = append(details, d.Message)
					} else {
						details = append(details, loc+": "+d.Message)
					}
				} else {
					details = append(details, e.Error())
				}
			}
			if len(details) > 0 {
				msg = strings.Join(details, "; ")
			}
			return &api.StatusError{Message: msg, Code: status}
		}
	})
}

package daemon

import (
	"errors"
	"net/http"
	"strings"
	"sync"

	"github.com/danielgtaylor/huma/v2"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/hypervisor"
)

// toStatus maps any error a handler meets to an *api.StatusError: the
// status it carries, else the one hypervisor.APIError's table (the one
// table) gives it, else 500. Every handler error goes through here.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	var se *api.StatusError
	if errors.As(hypervisor.APIError(err), &se) {
		if se.Message != err.Error() {
			// Keep the outer context ("start vm x: ...") with the status.
			return &api.StatusError{Message: err.Error(), Code: se.Code, Reason: se.Reason}
		}
		return se
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
					if d.Message == sizeMessage {
						d.Message = sizeError(d.Value)
					}
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

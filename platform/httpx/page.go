package httpx

import (
	"log/slog"
	"net/http"

	"gatehouse.dev/platform/errs"
)

// Page draws an error page in a service's own look: the status to answer
// with and the error's message that is safe to show (the kind's generic one
// for the server's own faults).
type Page func(w http.ResponseWriter, r *http.Request, status int, message string)

// WritePageError answers err with an error page drawn by draw: the status set
// with WithStatus or the kind's (the client's mistakes 4xx, the server's own
// faults 500, or 503 with Retry-After when they may pass), the server's
// faults logged with their causes.
func WritePageError(w http.ResponseWriter, r *http.Request, logger *slog.Logger, err error, draw Page) {
	LogFault(r.Context(), logger, r, err)
	status := statusOf(err)
	if status == 0 {
		status = errs.KindOf(err).HTTPStatus()
	}
	setRetryAfter(w.Header(), status, err)
	w.Header().Set("Cache-Control", "no-store")
	draw(w, r, status, errs.PublicMessage(err))
}

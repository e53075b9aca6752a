package httpx

import (
	"net/http"
	"strings"

	"gatehouse.dev/platform/errs"
)

// WriteMatrixError answers err as a Matrix client-server API error:
// {"errcode", "error"} with the error's Matrix errcode (errs.Error.Code when
// it begins with "M_", else the kind's) and public message, and the status
// of WithStatus or of the kind. M_LIMIT_EXCEEDED adds retry_after_ms and
// Retry-After; M_UNKNOWN_TOKEN and M_USER_LOCKED add soft_logout false; a
// 401 carries a Bearer challenge; a 503 a Retry-After. The server's own
// faults are always M_UNKNOWN with the kind's status.
func WriteMatrixError(w http.ResponseWriter, r *http.Request, err error) {
	kind := errs.KindOf(err)
	code := errs.CodeOf(err)
	if !strings.HasPrefix(code, "M_") || kind.ServerFault() {
		code = kind.MatrixErrcode()
	}
	status := statusOf(err)
	if status == 0 {
		status = kind.HTTPStatus()
	}
	body := map[string]any{"errcode": code, "error": errs.PublicMessage(err)}
	h := w.Header()
	switch code {
	case "M_LIMIT_EXCEEDED":
		body["retry_after_ms"] = max(retryAfter(err).Milliseconds(), 1)
	case "M_UNKNOWN_TOKEN", "M_USER_LOCKED":
		body["soft_logout"] = false
	}
	if status == http.StatusUnauthorized && h.Get("WWW-Authenticate") == "" {
		h.Set("WWW-Authenticate", `Bearer realm="matrix"`)
	}
	setRetryAfter(h, status, err)
	WriteJSON(w, status, body)
}

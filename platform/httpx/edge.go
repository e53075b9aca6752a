package httpx

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"gatehouse.dev/platform/errs"
)

// The HTTP edge: handlers return their answer or an error, and one wrapper
// per protocol writes it. Every error is written from its errs kind (and
// errs.Error.Code where the protocol has a more precise word): the client's
// mistakes as the protocol's 4xx answers, the server's own faults as 500 or
// 503 with their causes logged, never sent.

// Handler is an endpoint: it returns the body of a 200 OK answer (or a
// Reply), or an error for the wrapper to write in the endpoint's protocol.
// A nil body with a nil error means the handler has answered itself.
type Handler func(w http.ResponseWriter, r *http.Request) (any, error)

// Reply is a successful answer other than 200 OK.
type Reply struct {
	// Status is the HTTP status, e.g. 201 Created.
	Status int
	// Body is encoded as JSON.
	Body any
}

// DefaultRetryAfter is the Retry-After of a 503 or 429 whose error names no wait.
const DefaultRetryAfter = 2 * time.Second

// OAuth serves h as an OAuth 2.0 endpoint: bodies as uncacheable JSON,
// errors through WriteOAuthError, the server's faults logged.
func OAuth(logger *slog.Logger, h Handler) http.HandlerFunc {
	return serve(logger, h, WriteOAuthError)
}

// Matrix serves h as a Matrix client-server API endpoint: bodies as JSON,
// errors through WriteMatrixError, the server's faults logged.
func Matrix(logger *slog.Logger, h Handler) http.HandlerFunc {
	return serve(logger, h, WriteMatrixError)
}

// serve runs h and writes its answer, or its error with write.
func serve(logger *slog.Logger, h Handler, write func(http.ResponseWriter, *http.Request, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := h(w, r)
		switch {
		case err != nil:
			LogFault(r.Context(), logger, r, err)
			write(w, r, err)
		case body == nil:
		default:
			if reply, ok := body.(Reply); ok {
				WriteJSON(w, reply.Status, reply.Body)
				return
			}
			WriteJSON(w, http.StatusOK, body)
		}
	}
}

// LogFault logs err with its cause when it is the server's own fault
// (errs.Kind.ServerFault): at error level when internal, at warning level
// when it may pass. The client's mistakes are not logged.
func LogFault(ctx context.Context, logger *slog.Logger, r *http.Request, err error) {
	kind := errs.KindOf(err)
	if logger == nil || !kind.ServerFault() {
		return
	}
	level := slog.LevelWarn
	if kind == errs.KindInternal {
		level = slog.LevelError
	}
	logger.Log(ctx, level, "request failed", "method", r.Method, "path", r.URL.Path, "kind", kind.String(), "err", err)
}

// statusError is an error answered with a status of the HTTP layer's own
// choosing, where neither the kind nor the protocol fixes one.
type statusError struct {
	status int
	err    error
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

// WithStatus returns err answered with the HTTP status given, as for a
// request with a method the endpoint does not answer (405) or a body too
// large (413, where the protocol has a word for it).
func WithStatus(status int, err error) error { return &statusError{status: status, err: err} }

// statusOf returns the status WithStatus gave err, or 0.
func statusOf(err error) int {
	if se, ok := errors.AsType[*statusError](err); ok {
		return se.status
	}
	return 0
}

// retryAfter is how long err asks the client to wait, DefaultRetryAfter if it
// says nothing.
func retryAfter(err error) time.Duration {
	if d := errs.RetryAfterOf(err); d > 0 {
		return d
	}
	return DefaultRetryAfter
}

// setRetryAfter sets Retry-After (whole seconds, rounded up) on a 503 or 429.
func setRetryAfter(h http.Header, status int, err error) {
	if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
		h.Set("Retry-After", strconv.Itoa(int(math.Ceil(retryAfter(err).Seconds()))))
	}
}

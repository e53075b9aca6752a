// Package compat is the Matrix compatibility login API (MSC3824) of the token
// service, without I/O: parsing POST /login bodies as the Matrix
// client-server API has them, Matrix error answers, compat session scopes
// and device ids, the single-use login token aggregate (m.login.token), and
// the in-memory rate limits of password logins.
package compat

import (
	"fmt"
	"net/http"
	"time"
)

// Error is a Matrix error answer: {"errcode": Code, "error": Message} with an
// HTTP status.
type Error struct {
	Status  int
	Code    string
	Message string
	// RetryAfter, for M_LIMIT_EXCEEDED, is how long the client should wait.
	RetryAfter time.Duration
}

// Error returns the errcode and message.
func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Body is the JSON body of the answer.
func (e *Error) Body() map[string]any {
	b := map[string]any{"errcode": e.Code, "error": e.Message}
	switch e.Code {
	case "M_LIMIT_EXCEEDED":
		b["retry_after_ms"] = max(e.RetryAfter.Milliseconds(), 1)
	case "M_UNKNOWN_TOKEN", "M_USER_LOCKED":
		b["soft_logout"] = false
	}
	return b
}

func newError(status int, code, msg string) *Error {
	return &Error{Status: status, Code: code, Message: msg}
}

// The Matrix errors of the compatibility API.

// Forbidden is 403 M_FORBIDDEN.
func Forbidden(msg string) *Error { return newError(http.StatusForbidden, "M_FORBIDDEN", msg) }

// NotJSON is 400 M_NOT_JSON: the body is not JSON at all.
func NotJSON() *Error {
	return newError(http.StatusBadRequest, "M_NOT_JSON", "The request body is not valid JSON.")
}

// BadJSON is 400 M_BAD_JSON: JSON of the wrong shape.
func BadJSON(msg string) *Error { return newError(http.StatusBadRequest, "M_BAD_JSON", msg) }

// MissingParam is 400 M_MISSING_PARAM.
func MissingParam(name string) *Error {
	return newError(http.StatusBadRequest, "M_MISSING_PARAM", fmt.Sprintf("Missing parameter: %s.", name))
}

// InvalidParam is 400 M_INVALID_PARAM.
func InvalidParam(msg string) *Error { return newError(http.StatusBadRequest, "M_INVALID_PARAM", msg) }

// Unrecognized is M_UNRECOGNIZED with the given status (400 for an unknown
// login type, 404 for an unknown endpoint, 405 for a wrong method).
func Unrecognized(status int, msg string) *Error { return newError(status, "M_UNRECOGNIZED", msg) }

// MissingToken is 401 M_MISSING_TOKEN.
func MissingToken() *Error {
	return newError(http.StatusUnauthorized, "M_MISSING_TOKEN", "Missing access token.")
}

// UnknownToken is 401 M_UNKNOWN_TOKEN (with soft_logout false).
func UnknownToken(msg string) *Error {
	return newError(http.StatusUnauthorized, "M_UNKNOWN_TOKEN", msg)
}

// UserDeactivated is 403 M_USER_DEACTIVATED.
func UserDeactivated() *Error {
	return newError(http.StatusForbidden, "M_USER_DEACTIVATED", "This account has been deactivated.")
}

// UserLocked is 401 M_USER_LOCKED (with soft_logout false).
func UserLocked() *Error {
	return newError(http.StatusUnauthorized, "M_USER_LOCKED", "This account has been locked.")
}

// LimitExceeded is 429 M_LIMIT_EXCEEDED with retry_after_ms.
func LimitExceeded(wait time.Duration) *Error {
	e := newError(http.StatusTooManyRequests, "M_LIMIT_EXCEEDED", "Too many login attempts; try again later.")
	e.RetryAfter = wait
	return e
}

// TooLarge is 413 M_TOO_LARGE.
func TooLarge() *Error {
	return newError(http.StatusRequestEntityTooLarge, "M_TOO_LARGE", "The request body is too large.")
}

// AppserviceLoginUnsupported answers m.login.application_service, which the
// homeserver handles itself (MSC4190), never the authentication service.
func AppserviceLoginUnsupported() *Error {
	return newError(http.StatusBadRequest, "M_APPSERVICE_LOGIN_UNSUPPORTED",
		"Application service login is not supported; application services manage their devices through the homeserver.")
}

// WrongCredentials is the one answer for an unknown user and a wrong
// password, so the answer does not tell whether the user exists.
func WrongCredentials() *Error { return Forbidden("Invalid username or password.") }

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

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/httpx"
)

// The Matrix errors of the compatibility API: *errs.Error values whose Code
// is the Matrix errcode and whose kind gives the status the client-server
// API specifies (platform/httpx writes them).

// matrixError is an error of the kind with the Matrix errcode.
func matrixError(kind errs.Kind, code, msg string) *errs.Error { return errs.Coded(kind, code, msg) }

// Forbidden is 403 M_FORBIDDEN.
func Forbidden(msg string) *errs.Error {
	return matrixError(errs.KindPermissionDenied, "M_FORBIDDEN", msg)
}

// NotJSON is 400 M_NOT_JSON: the body is not JSON at all.
func NotJSON() *errs.Error {
	return matrixError(errs.KindInvalid, "M_NOT_JSON", "The request body is not valid JSON.")
}

// BadJSON is 400 M_BAD_JSON: JSON of the wrong shape.
func BadJSON(msg string) *errs.Error { return matrixError(errs.KindInvalid, "M_BAD_JSON", msg) }

// MissingParam is 400 M_MISSING_PARAM.
func MissingParam(name string) *errs.Error {
	return matrixError(errs.KindInvalid, "M_MISSING_PARAM", fmt.Sprintf("Missing parameter: %s.", name))
}

// InvalidParam is 400 M_INVALID_PARAM.
func InvalidParam(msg string) *errs.Error {
	return matrixError(errs.KindInvalid, "M_INVALID_PARAM", msg)
}

// Unrecognized is 400 M_UNRECOGNIZED: a login type this server does not know.
func Unrecognized(msg string) *errs.Error {
	return matrixError(errs.KindInvalid, "M_UNRECOGNIZED", msg)
}

// UnknownEndpoint is 404 M_UNRECOGNIZED: no such endpoint.
func UnknownEndpoint(msg string) *errs.Error {
	return matrixError(errs.KindNotFound, "M_UNRECOGNIZED", msg)
}

// WrongMethod is 405 M_UNRECOGNIZED: the endpoint does not answer this method.
func WrongMethod(msg string) error {
	return httpx.WithStatus(http.StatusMethodNotAllowed, matrixError(errs.KindInvalid, "M_UNRECOGNIZED", msg))
}

// MissingToken is 401 M_MISSING_TOKEN.
func MissingToken() *errs.Error {
	return matrixError(errs.KindUnauthenticated, "M_MISSING_TOKEN", "Missing access token.")
}

// UnknownToken is 401 M_UNKNOWN_TOKEN (with soft_logout false).
func UnknownToken(msg string) *errs.Error {
	return matrixError(errs.KindUnauthenticated, "M_UNKNOWN_TOKEN", msg)
}

// UserDeactivated is 403 M_USER_DEACTIVATED.
func UserDeactivated() *errs.Error {
	return matrixError(errs.KindPermissionDenied, "M_USER_DEACTIVATED", "This account has been deactivated.")
}

// UserLocked is 401 M_USER_LOCKED (with soft_logout false).
func UserLocked() *errs.Error {
	return matrixError(errs.KindUnauthenticated, "M_USER_LOCKED", "This account has been locked.")
}

// LimitExceeded is 429 M_LIMIT_EXCEEDED with retry_after_ms.
func LimitExceeded(wait time.Duration) *errs.Error {
	e := matrixError(errs.KindRateLimited, "M_LIMIT_EXCEEDED", "Too many login attempts; try again later.")
	e.RetryAfter = wait
	return e
}

// TooLarge is 413 M_TOO_LARGE.
func TooLarge() error {
	return httpx.WithStatus(http.StatusRequestEntityTooLarge, matrixError(errs.KindInvalid, "M_TOO_LARGE", "The request body is too large."))
}

// AppserviceLoginUnsupported answers m.login.application_service, which the
// homeserver handles itself (MSC4190), never the authentication service.
func AppserviceLoginUnsupported() *errs.Error {
	return matrixError(errs.KindInvalid, "M_APPSERVICE_LOGIN_UNSUPPORTED",
		"Application service login is not supported; application services manage their devices through the homeserver.")
}

// WrongCredentials is the one answer for an unknown user and a wrong
// password, so the answer does not tell whether the user exists.
func WrongCredentials() *errs.Error { return Forbidden("Invalid username or password.") }

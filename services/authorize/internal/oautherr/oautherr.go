// Package oautherr provides the OAuth 2.0 error returned by the authorize
// service's validation packages: an RFC 6749 §5.2 / RFC 7591 §3.2.2 error code
// and a description, which the HTTP layer renders as
// {"error": Code, "error_description": Description}.
//
// An *Error unwraps to an errs.KindInvalid error carrying the description, so
// errs.KindOf and errs.PublicMessage treat it as the client's fault.
package oautherr

import (
	"fmt"

	"gatehouse.dev/platform/errs"
)

// The OAuth error codes the validation packages return.
const (
	// InvalidRequest is RFC 6749's code for a malformed request.
	InvalidRequest = "invalid_request"
	// InvalidScope is RFC 6749's code for an unknown, malformed or inconsistent scope.
	InvalidScope = "invalid_scope"
	// InvalidRedirectURI is RFC 7591's code for an unacceptable redirect URI.
	InvalidRedirectURI = "invalid_redirect_uri"
	// InvalidClientMetadata is RFC 7591's code for any other unacceptable client metadata.
	InvalidClientMetadata = "invalid_client_metadata"
)

// Error is an OAuth 2.0 error: a machine-readable code and a human-readable
// description safe to show the client.
type Error struct {
	// Code is the OAuth error code, e.g. "invalid_scope".
	Code string
	// Description says what is wrong, for the client's developer.
	Description string
}

// Errorf returns an Error with the given code and a formatted description.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Description: fmt.Sprintf(format, args...)}
}

// Error returns "code: description".
func (e *Error) Error() string { return e.Code + ": " + e.Description }

// Unwrap returns an errs.KindInvalid error with the description as its public
// message.
func (e *Error) Unwrap() error { return errs.Invalid(e.Description) }

// Package oautherr is the vocabulary of OAuth 2.0 errors: the codes of RFC
// 6749 (§4.1.2.1, §5.2), RFC 6750 §3.1, RFC 7009 §2.2.1, RFC 7591 §3.2.2,
// RFC 8628 §3.5 and OpenID Connect Core §3.1.2.6, each with the errs kind it
// is and the HTTP status those RFCs give its answer, and constructors of
// *errs.Error values carrying them (errs.Error.Code).
//
// Handlers return these errors; platform/httpx writes them as
// {"error": code, "error_description": message} with the status of Status.
package oautherr

import (
	"fmt"
	"net/http"

	"gatehouse.dev/platform/errs"
)

// The OAuth 2.0 error codes Gatehouse answers with.
const (
	// InvalidRequest: the request is malformed (RFC 6749 §5.2).
	InvalidRequest = "invalid_request"
	// InvalidClient: client authentication failed (RFC 6749 §5.2); 401.
	InvalidClient = "invalid_client"
	// InvalidGrant: the code, refresh token or device code is invalid, expired, used or another client's.
	InvalidGrant = "invalid_grant"
	// UnauthorizedClient: the client may not use this grant (or this token).
	UnauthorizedClient = "unauthorized_client"
	// UnsupportedGrantType: the server knows no such grant type.
	UnsupportedGrantType = "unsupported_grant_type"
	// InvalidScope: the scope is unknown, malformed or more than the client may have.
	InvalidScope = "invalid_scope"
	// AccessDenied: the person (or the server) refused.
	AccessDenied = "access_denied"
	// UnsupportedResponseType: the authorization endpoint knows no such response type.
	UnsupportedResponseType = "unsupported_response_type"
	// ServerError: the server failed; 500.
	ServerError = "server_error"
	// TemporarilyUnavailable: the server cannot answer right now; 503 (429 when rate limited).
	TemporarilyUnavailable = "temporarily_unavailable"
	// InvalidToken: a protected resource got no live access token (RFC 6750 §3.1); 401.
	InvalidToken = "invalid_token"
	// InsufficientScope: the access token lacks a scope the resource needs (RFC 6750 §3.1); 403.
	InsufficientScope = "insufficient_scope"
	// UnsupportedTokenType: revocation of this token type is not supported (RFC 7009 §2.2.1).
	UnsupportedTokenType = "unsupported_token_type"
	// InvalidRedirectURI: a registered redirect URI is unacceptable (RFC 7591 §3.2.2).
	InvalidRedirectURI = "invalid_redirect_uri"
	// InvalidClientMetadata: other registration metadata is unacceptable (RFC 7591 §3.2.2).
	InvalidClientMetadata = "invalid_client_metadata"
	// AuthorizationPending: the person has not answered the device yet (RFC 8628 §3.5).
	AuthorizationPending = "authorization_pending"
	// SlowDown: the device polls too fast (RFC 8628 §3.5).
	SlowDown = "slow_down"
	// ExpiredToken: the device code expired (RFC 8628 §3.5).
	ExpiredToken = "expired_token"
	// LoginRequired: prompt=none, and nobody is signed in (OpenID Connect Core §3.1.2.6).
	LoginRequired = "login_required"
	// RequestNotSupported: request objects are not supported (OpenID Connect Core §3.1.2.6).
	RequestNotSupported = "request_not_supported"
	// RequestURINotSupported: request_uri is not supported (OpenID Connect Core §3.1.2.6).
	RequestURINotSupported = "request_uri_not_supported"
)

// code is what the RFCs say of one error code.
type code struct {
	kind errs.Kind
	// status is the HTTP status of its answer; 0 leaves it to the kind
	// (server_error 500, temporarily_unavailable 503 or 429).
	status int
}

// codes is the one table of OAuth error codes. RFC 6749 §5.2 answers every
// token endpoint error with 400 except invalid_client (401); RFC 8628 §3.5
// adds its polling errors, also 400; RFC 6750 §3.1 gives the resource
// server's errors 401 and 403.
var codes = map[string]code{
	InvalidRequest:          {errs.KindInvalid, http.StatusBadRequest},
	InvalidClient:           {errs.KindUnauthenticated, http.StatusUnauthorized},
	InvalidGrant:            {errs.KindFailedPrecondition, http.StatusBadRequest},
	UnauthorizedClient:      {errs.KindPermissionDenied, http.StatusBadRequest},
	UnsupportedGrantType:    {errs.KindInvalid, http.StatusBadRequest},
	InvalidScope:            {errs.KindInvalid, http.StatusBadRequest},
	AccessDenied:            {errs.KindPermissionDenied, http.StatusBadRequest},
	UnsupportedResponseType: {errs.KindInvalid, http.StatusBadRequest},
	ServerError:             {errs.KindInternal, 0},
	TemporarilyUnavailable:  {errs.KindUnavailable, 0},
	InvalidToken:            {errs.KindUnauthenticated, http.StatusUnauthorized},
	InsufficientScope:       {errs.KindPermissionDenied, http.StatusForbidden},
	UnsupportedTokenType:    {errs.KindInvalid, http.StatusBadRequest},
	InvalidRedirectURI:      {errs.KindInvalid, http.StatusBadRequest},
	InvalidClientMetadata:   {errs.KindInvalid, http.StatusBadRequest},
	AuthorizationPending:    {errs.KindFailedPrecondition, http.StatusBadRequest},
	SlowDown:                {errs.KindRateLimited, http.StatusBadRequest},
	ExpiredToken:            {errs.KindFailedPrecondition, http.StatusBadRequest},
	LoginRequired:           {errs.KindFailedPrecondition, http.StatusBadRequest},
	RequestNotSupported:     {errs.KindInvalid, http.StatusBadRequest},
	RequestURINotSupported:  {errs.KindInvalid, http.StatusBadRequest},
}

// New returns the error with the OAuth code, of the code's kind (invalid for
// a code this package does not know), with desc as its public message.
func New(code, desc string) *errs.Error {
	return errs.Coded(KindOf(code), code, desc)
}

// Errorf returns New(code, the formatted description).
func Errorf(code, format string, args ...any) *errs.Error {
	return New(code, fmt.Sprintf(format, args...))
}

// KindOf returns the errs kind of an OAuth error code; invalid when unknown.
func KindOf(code string) errs.Kind {
	if c, ok := codes[code]; ok {
		return c.kind
	}
	return errs.KindInvalid
}

// Status returns the HTTP status the RFCs give an answer with the code, or 0
// when they leave it to the kind (server_error, temporarily_unavailable, and
// codes this package does not know).
func Status(code string) int { return codes[code].status }

// Of returns the OAuth code of err: its own (errs.CodeOf) when it has one
// that is not a Matrix errcode, else fallback, else the kind's default. The
// server's own faults always get their kind's code (server_error,
// temporarily_unavailable), whatever they carry.
func Of(err error, fallback string) string {
	kind := errs.KindOf(err)
	if kind.ServerFault() {
		return kind.OAuthError()
	}
	if c := errs.CodeOf(err); c != "" && !isMatrix(c) {
		return c
	}
	if fallback != "" {
		return fallback
	}
	return kind.OAuthError()
}

// isMatrix reports whether code is a Matrix errcode (they begin with "M_").
func isMatrix(code string) bool { return len(code) > 2 && code[:2] == "M_" }

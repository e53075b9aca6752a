// Package errs is Gatehouse's one error type: a Kind that every transport maps
// to its own vocabulary, a message safe to show a client, and an internal cause
// that is logged but never shown.
//
// Handlers return *Error values; the gRPC and HTTP plumbing turn them into
// status codes, OAuth 2.0 error codes or Matrix errcodes through the methods of
// Kind, which hold the only copy of those mappings:
//
//	client, err := store.Client(ctx, id)
//	if err != nil {
//		return errs.Internalf("load client %s: %w", id, err)
//	}
//	if client == nil {
//		return errs.NotFound("unknown client")
//	}
//
// and callers, across gRPC too, decide with errs.KindOf(err) == errs.KindConflict.
package errs

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Kind classifies an error by what the caller can do about it.
//
// The zero Kind is KindInternal, so an Error built without a Kind fails closed
// as a server error rather than passing for the client's fault.
type Kind int

// The kinds of error. Each maps to one gRPC code, HTTP status, OAuth error and
// Matrix errcode.
const (
	// KindInternal is a bug or an unexpected failure; its cause is never shown.
	KindInternal Kind = iota
	// KindInvalid means the request itself is malformed or fails validation.
	KindInvalid
	// KindNotFound means the addressed thing does not exist (or is hidden).
	KindNotFound
	// KindConflict means an aggregate's optimistic concurrency was lost; retrying may succeed.
	KindConflict
	// KindAlreadyExists means a create collided with an existing thing.
	KindAlreadyExists
	// KindUnauthenticated means the caller's credentials are missing or wrong.
	KindUnauthenticated
	// KindPermissionDenied means the caller is known but may not do this.
	KindPermissionDenied
	// KindFailedPrecondition means the system is not in the state the operation needs.
	KindFailedPrecondition
	// KindRateLimited means the caller must slow down.
	KindRateLimited
	// KindUnavailable means a dependency is down or too slow; retrying later may succeed.
	KindUnavailable
)

// String returns the kind's snake_case name, e.g. "not_found".
func (k Kind) String() string { return k.info().name }

// Retryable reports whether repeating the same operation later may succeed.
func (k Kind) Retryable() bool {
	return k == KindConflict || k == KindUnavailable || k == KindRateLimited
}

// ServerFault reports whether the kind is the server's own fault (internal,
// unavailable, a lost concurrency race) rather than the caller's: such an
// error is never answered as the caller's mistake, and its cause is logged.
func (k Kind) ServerFault() bool {
	return k == KindInternal || k == KindUnavailable || k == KindConflict || k > KindUnavailable
}

// Error is Gatehouse's error value.
type Error struct {
	// Kind classifies the error; it decides every status code.
	Kind Kind
	// Public is a message safe to show a client; empty means the kind's default.
	Public string
	// Err is the internal cause, for logs only; it is never shown to a client.
	Err error
	// Field optionally names the input field at fault.
	Field string
	// Facts are machine-readable details a caller may word the error with
	// itself, in its own language (for example "attempts_left": "3"). They
	// travel in the gRPC status's ErrorInfo metadata; never put secrets here.
	Facts map[string]string
	// Code is a protocol's own name for the error where the kind's default
	// says too little: an OAuth 2.0 error code ("invalid_scope",
	// "slow_down") or a Matrix errcode ("M_LIMIT_EXCEEDED"; Matrix's begin
	// with "M_"). The HTTP edge (platform/httpx) answers with it instead of
	// the kind's default; it stays within the process.
	Code string
	// RetryAfter, when positive, is how long the caller should wait before
	// trying again (Retry-After, Matrix's retry_after_ms).
	RetryAfter time.Duration
}

// Error returns the public message, prefixed by the field and followed by the
// internal cause: it is meant for logs, not for clients.
func (e *Error) Error() string {
	msg := e.message()
	if e.Field != "" {
		msg = e.Field + ": " + msg
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the internal cause.
func (e *Error) Unwrap() error { return e.Err }

// message returns the public message, or the kind's default when empty.
func (e *Error) message() string {
	if e.Public != "" {
		return e.Public
	}
	return e.Kind.info().message
}

// Invalid reports a malformed request.
func Invalid(msg string) *Error { return &Error{Kind: KindInvalid, Public: msg} }

// InvalidField reports a malformed request input field.
func InvalidField(field, msg string) *Error {
	return &Error{Kind: KindInvalid, Public: msg, Field: field}
}

// NotFound reports that the addressed thing does not exist.
func NotFound(msg string) *Error { return &Error{Kind: KindNotFound, Public: msg} }

// Conflict reports a lost optimistic-concurrency race; the caller may retry.
func Conflict(msg string) *Error { return &Error{Kind: KindConflict, Public: msg} }

// AlreadyExists reports a create that collided with an existing thing.
func AlreadyExists(msg string) *Error { return &Error{Kind: KindAlreadyExists, Public: msg} }

// Unauthenticated reports missing or wrong credentials.
func Unauthenticated(msg string) *Error { return &Error{Kind: KindUnauthenticated, Public: msg} }

// PermissionDenied reports a known caller doing something it may not do.
func PermissionDenied(msg string) *Error { return &Error{Kind: KindPermissionDenied, Public: msg} }

// FailedPrecondition reports that the system is not in the state the operation needs.
func FailedPrecondition(msg string) *Error {
	return &Error{Kind: KindFailedPrecondition, Public: msg}
}

// RateLimited reports that the caller must slow down.
func RateLimited(msg string) *Error { return &Error{Kind: KindRateLimited, Public: msg} }

// Unavailable reports a dependency that is down; the caller may retry later.
func Unavailable(msg string) *Error { return &Error{Kind: KindUnavailable, Public: msg} }

// Internalf reports an unexpected failure; the formatted text (which may wrap
// a cause with %w) is kept for logs and the client sees a generic message.
func Internalf(format string, args ...any) *Error {
	return &Error{Kind: KindInternal, Err: fmt.Errorf(format, args...)}
}

// Coded returns an error of the given kind with a protocol's own code for it
// (see Error.Code) and a public message.
func Coded(kind Kind, code, msg string) *Error {
	return &Error{Kind: kind, Code: code, Public: msg}
}

// Wrap returns an error of the given kind with a public message and an
// internal cause.
func Wrap(kind Kind, public string, err error) *Error {
	return &Error{Kind: kind, Public: public, Err: err}
}

// Classify returns err unchanged when it already has a kind of its own (an
// *Error in its chain), and otherwise an error of the given kind with the
// public message, wrapping err: for the failures of a dependency (a
// database, the event log) that only the caller knows the meaning of. A nil
// err stays nil.
func Classify(err error, kind Kind, public string) error {
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*Error](err); ok {
		return err
	}
	return Wrap(kind, public, err)
}

// KindOf returns the kind of the first *Error in err's chain. Without one,
// context cancellation and deadlines are KindUnavailable and anything else
// (nil included) is KindInternal.
func KindOf(err error) Kind {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Kind
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return KindUnavailable
	}
	return KindInternal
}

// PublicMessage returns the text of err that is safe to show a client: the
// Public message of its *Error, or a generic one for its kind.
func PublicMessage(err error) string {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.message()
	}
	return KindOf(err).info().message
}

// Facts every service words the same way (see Error.Facts).
const (
	// FactAttemptsLeft is how many more tries an input gets (a decimal number).
	FactAttemptsLeft = "attempts_left"
	// FactRetryAfterSeconds is how long to wait before trying again (decimal seconds).
	FactRetryAfterSeconds = "retry_after_seconds"
	// FactRule names the rule a text broke: RuleTooLong or RuleNotText.
	FactRule = "rule"
	// FactMaxLength is the most characters a text may have (a decimal number).
	FactMaxLength = "max_length"
	// FactSecondFactor says a sign-in needs a second factor: "needed" (give
	// one), "enrol" (set one up first) or "required" (a caller that cannot
	// ask for one, such as the compat password login, must send the person
	// to the browser).
	FactSecondFactor = "second_factor"
	// FactStepUp is "required" when an action needs a recent authentication
	// (account.step_up_window) that the browser session does not have.
	FactStepUp = "step_up"
)

// Values of FactRule.
const (
	// RuleTooLong: the text has more than FactMaxLength characters.
	RuleTooLong = "too_long"
	// RuleNotText: the text is not valid UTF-8 or holds control characters.
	RuleNotText = "not_text"
)

// FactOf returns one of the facts of err's *Error, and whether it is there.
func FactOf(err error, name string) (string, bool) {
	if e, ok := errors.AsType[*Error](err); ok {
		v, found := e.Facts[name]
		return v, found
	}
	return "", false
}

// CodeOf returns the protocol code of err's *Error (see Error.Code), or "".
func CodeOf(err error) string {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	return ""
}

// RetryAfterOf returns how long err's *Error asks the caller to wait, or 0.
func RetryAfterOf(err error) time.Duration {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.RetryAfter
	}
	return 0
}

// FieldOf returns the input field named by err's *Error, or "".
func FieldOf(err error) string {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Field
	}
	return ""
}

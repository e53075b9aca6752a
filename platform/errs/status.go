package errs

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
)

// statusDomain marks the statuses built by ToStatus: only their messages are
// public. A status made elsewhere (a transport failure, say) may carry
// internal addresses in its message, so its text stays internal.
const statusDomain = "gatehouse.dev"

// grpcStatusError is an error carrying a gRPC status, as status.Error returns.
type grpcStatusError interface {
	error
	GRPCStatus() *status.Status
}

// ToStatus converts err into the gRPC status a server returns: the code of its
// kind and its public message, never the internal cause. The status carries an
// ErrorInfo detail naming the kind and, when the *Error has a Field, a
// BadRequest detail naming it. A nil err gives an OK status.
//
// A status error without an *Error (handlers should not make those) keeps its
// code but gets the generic message of that code's kind.
func ToStatus(err error) *status.Status {
	if err == nil {
		return status.New(codes.OK, "")
	}
	e, ok := errors.AsType[*Error](err)
	if !ok {
		kind := KindOf(err)
		code := kind.GRPCCode()
		if se, ok := errors.AsType[grpcStatusError](err); ok {
			code = se.GRPCStatus().Code()
			kind = kindOfCode(code)
		}
		e = &Error{Kind: kind}
		return withDetails(status.New(code, e.message()), e)
	}
	return withDetails(status.New(e.Kind.GRPCCode(), e.message()), e)
}

// withDetails adds the ErrorInfo and BadRequest details of e to st.
func withDetails(st *status.Status, e *Error) *status.Status {
	details := []protoadapt.MessageV1{&errdetails.ErrorInfo{
		Domain:   statusDomain,
		Reason:   strings.ToUpper(e.Kind.String()),
		Metadata: e.Facts,
	}}
	if e.Field != "" {
		details = append(details, &errdetails.BadRequest{
			FieldViolations: []*errdetails.BadRequest_FieldViolation{
				{Field: e.Field, Description: e.message()},
			},
		})
	}
	out, err := st.WithDetails(details...)
	if err != nil { // only for an OK status, which we never build here
		return st
	}
	return out
}

// FromStatus converts an error returned by a gRPC client call back into an
// *Error whose Kind, Public message, Field and Facts are those the Gatehouse
// server sent (RetryAfter from the FactRetryAfterSeconds fact), so callers can switch on KindOf across service boundaries. The status
// error stays in the chain (status.Code still works), DeadlineExceeded and
// Canceled add the matching context error to it, and a status that did not
// come from ToStatus keeps its text internal. An error that already holds an
// *Error is returned unchanged; nil gives nil.
func FromStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*Error](err); ok {
		return err
	}
	st, ok := status.FromError(err)
	if !ok {
		return &Error{Kind: KindOf(err), Err: err}
	}
	e := &Error{Kind: kindOfCode(st.Code()), Err: err}
	switch st.Code() {
	case codes.DeadlineExceeded:
		e.Err = errors.Join(err, context.DeadlineExceeded)
	case codes.Canceled:
		e.Err = errors.Join(err, context.Canceled)
	}
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			if d.GetDomain() != statusDomain {
				continue
			}
			e.Public = st.Message()
			if k, ok := kindNamed(strings.ToLower(d.GetReason())); ok {
				e.Kind = k
			}
			if len(d.GetMetadata()) > 0 {
				e.Facts = d.GetMetadata()
			}
			// The wait a refusal asks for crosses as its fact.
			if secs, err := strconv.Atoi(e.Facts[FactRetryAfterSeconds]); err == nil && secs > 0 {
				e.RetryAfter = time.Duration(secs) * time.Second
			}
		case *errdetails.BadRequest:
			if v := d.GetFieldViolations(); len(v) > 0 {
				e.Field = v[0].GetField()
			}
		}
	}
	return e
}

// kindNamed returns the Kind whose String is name.
func kindNamed(name string) (Kind, bool) {
	for k := KindInternal; k <= KindUnavailable; k++ {
		if k.String() == name {
			return k, true
		}
	}
	return KindInternal, false
}

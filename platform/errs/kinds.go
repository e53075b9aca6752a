package errs

import (
	"net/http"

	"google.golang.org/grpc/codes"
)

// kindInfo holds every external name of one Kind.
type kindInfo struct {
	name    string     // snake_case name for logs
	message string     // default public message
	grpc    codes.Code // gRPC status code
	http    int        // HTTP status
	oauth   string     // RFC 6749 §4.1.2.1 / §5.2 error code
	matrix  string     // Matrix client-server API errcode
}

// info returns the kind's mappings; it is the one place where kinds meet
// transports. An out-of-range Kind is treated as internal. OAuth codes are the
// defaults for an endpoint that has nothing more specific to say; endpoints
// that must answer invalid_scope, unsupported_grant_type or
// unauthorized_client choose those themselves.
func (k Kind) info() kindInfo {
	switch k {
	case KindInvalid:
		return kindInfo{
			"invalid", "invalid request",
			codes.InvalidArgument, http.StatusBadRequest,
			"invalid_request", "M_INVALID_PARAM",
		}
	// At the token endpoint a missing code or refresh token is an invalid grant.
	case KindNotFound:
		return kindInfo{
			"not_found", "not found",
			codes.NotFound, http.StatusNotFound,
			"invalid_grant", "M_NOT_FOUND",
		}
	// A lost concurrency race is transient: gRPC's Aborted is "retry the
	// read-modify-write". Over HTTP it is the server's to resolve, not the
	// client's mistake: 503, try again.
	case KindConflict:
		return kindInfo{
			"conflict", "conflicting concurrent update, retry",
			codes.Aborted, http.StatusServiceUnavailable,
			"temporarily_unavailable", "M_UNKNOWN",
		}
	// In the Matrix API the only thing a client creates is a user.
	case KindAlreadyExists:
		return kindInfo{
			"already_exists", "already exists",
			codes.AlreadyExists, http.StatusConflict,
			"invalid_request", "M_USER_IN_USE",
		}
	case KindUnauthenticated:
		return kindInfo{
			"unauthenticated", "unauthenticated",
			codes.Unauthenticated, http.StatusUnauthorized,
			"invalid_client", "M_UNKNOWN_TOKEN",
		}
	case KindPermissionDenied:
		return kindInfo{
			"permission_denied", "permission denied",
			codes.PermissionDenied, http.StatusForbidden,
			"access_denied", "M_FORBIDDEN",
		}
	// A used, expired or revoked code is a failed precondition of the grant.
	case KindFailedPrecondition:
		return kindInfo{
			"failed_precondition", "failed precondition",
			codes.FailedPrecondition, http.StatusBadRequest,
			"invalid_grant", "M_FORBIDDEN",
		}
	// slow_down (RFC 8628) only means something to device-flow clients; every
	// other client understands temporarily_unavailable with HTTP 429.
	case KindRateLimited:
		return kindInfo{
			"rate_limited", "too many requests",
			codes.ResourceExhausted, http.StatusTooManyRequests,
			"temporarily_unavailable", "M_LIMIT_EXCEEDED",
		}
	case KindUnavailable:
		return kindInfo{
			"unavailable", "service unavailable",
			codes.Unavailable, http.StatusServiceUnavailable,
			"temporarily_unavailable", "M_UNKNOWN",
		}
	default: // KindInternal and out-of-range kinds
		return kindInfo{
			"internal", "internal error",
			codes.Internal, http.StatusInternalServerError,
			"server_error", "M_UNKNOWN",
		}
	}
}

// GRPCCode returns the gRPC status code of the kind.
func (k Kind) GRPCCode() codes.Code { return k.info().grpc }

// HTTPStatus returns the HTTP status code of the kind.
func (k Kind) HTTPStatus() int { return k.info().http }

// OAuthError returns the default OAuth 2.0 error code of the kind (RFC 6749).
func (k Kind) OAuthError() string { return k.info().oauth }

// MatrixErrcode returns the Matrix client-server API errcode of the kind.
func (k Kind) MatrixErrcode() string { return k.info().matrix }

// kindOfCode maps a gRPC code received from another service back to a Kind.
func kindOfCode(c codes.Code) Kind {
	switch c {
	case codes.InvalidArgument, codes.OutOfRange:
		return KindInvalid
	case codes.NotFound:
		return KindNotFound
	case codes.Aborted:
		return KindConflict
	case codes.AlreadyExists:
		return KindAlreadyExists
	case codes.Unauthenticated:
		return KindUnauthenticated
	case codes.PermissionDenied:
		return KindPermissionDenied
	case codes.FailedPrecondition:
		return KindFailedPrecondition
	case codes.ResourceExhausted:
		return KindRateLimited
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		return KindUnavailable
	default: // Internal, Unknown, DataLoss, Unimplemented
		return KindInternal
	}
}

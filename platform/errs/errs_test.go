package errs_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"gatehouse.dev/platform/errs"
)

func TestKindMappings(t *testing.T) {
	tests := []struct {
		kind   errs.Kind
		name   string
		grpc   codes.Code
		http   int
		oauth  string
		matrix string
	}{
		{errs.KindInvalid, "invalid", codes.InvalidArgument, http.StatusBadRequest, "invalid_request", "M_INVALID_PARAM"},
		{errs.KindNotFound, "not_found", codes.NotFound, http.StatusNotFound, "invalid_grant", "M_NOT_FOUND"},
		{errs.KindConflict, "conflict", codes.Aborted, http.StatusServiceUnavailable, "temporarily_unavailable", "M_UNKNOWN"},
		{errs.KindAlreadyExists, "already_exists", codes.AlreadyExists, http.StatusConflict, "invalid_request", "M_USER_IN_USE"},
		{errs.KindUnauthenticated, "unauthenticated", codes.Unauthenticated, http.StatusUnauthorized, "invalid_client", "M_UNKNOWN_TOKEN"},
		{errs.KindPermissionDenied, "permission_denied", codes.PermissionDenied, http.StatusForbidden, "access_denied", "M_FORBIDDEN"},
		{errs.KindFailedPrecondition, "failed_precondition", codes.FailedPrecondition, http.StatusBadRequest, "invalid_grant", "M_FORBIDDEN"},
		{errs.KindRateLimited, "rate_limited", codes.ResourceExhausted, http.StatusTooManyRequests, "temporarily_unavailable", "M_LIMIT_EXCEEDED"},
		{errs.KindUnavailable, "unavailable", codes.Unavailable, http.StatusServiceUnavailable, "temporarily_unavailable", "M_UNKNOWN"},
		{errs.KindInternal, "internal", codes.Internal, http.StatusInternalServerError, "server_error", "M_UNKNOWN"},
		{errs.Kind(99), "internal", codes.Internal, http.StatusInternalServerError, "server_error", "M_UNKNOWN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.kind.String(); got != tt.name {
				t.Errorf("String() = %q, want %q", got, tt.name)
			}
			if got := tt.kind.GRPCCode(); got != tt.grpc {
				t.Errorf("GRPCCode() = %v, want %v", got, tt.grpc)
			}
			if got := tt.kind.HTTPStatus(); got != tt.http {
				t.Errorf("HTTPStatus() = %d, want %d", got, tt.http)
			}
			if got := tt.kind.OAuthError(); got != tt.oauth {
				t.Errorf("OAuthError() = %q, want %q", got, tt.oauth)
			}
			if got := tt.kind.MatrixErrcode(); got != tt.matrix {
				t.Errorf("MatrixErrcode() = %q, want %q", got, tt.matrix)
			}
		})
	}
}

func TestConstructorsAndKindOf(t *testing.T) {
	cause := errors.New("pq: connection refused")
	tests := []struct {
		name       string
		err        error
		kind       errs.Kind
		public     string
		field      string
		errorText  string
		wrapsCause bool
	}{
		{"invalid", errs.Invalid("bad scope"), errs.KindInvalid, "bad scope", "", "bad scope", false},
		{"invalid field", errs.InvalidField("email", "must contain @"), errs.KindInvalid, "must contain @", "email", "email: must contain @", false},
		{"not found", errs.NotFound("no such client"), errs.KindNotFound, "no such client", "", "no such client", false},
		{"conflict", errs.Conflict("retry"), errs.KindConflict, "retry", "", "retry", false},
		{"already exists", errs.AlreadyExists("username taken"), errs.KindAlreadyExists, "username taken", "", "username taken", false},
		{"unauthenticated", errs.Unauthenticated("bad secret"), errs.KindUnauthenticated, "bad secret", "", "bad secret", false},
		{"permission denied", errs.PermissionDenied("not yours"), errs.KindPermissionDenied, "not yours", "", "not yours", false},
		{"failed precondition", errs.FailedPrecondition("code used"), errs.KindFailedPrecondition, "code used", "", "code used", false},
		{"rate limited", errs.RateLimited("slow down"), errs.KindRateLimited, "slow down", "", "slow down", false},
		{"unavailable", errs.Unavailable("try later"), errs.KindUnavailable, "try later", "", "try later", false},
		{"internalf", errs.Internalf("load client %s: %w", "c1", cause), errs.KindInternal, "internal error", "", "internal error: load client c1: pq: connection refused", true},
		{"wrap", errs.Wrap(errs.KindUnavailable, "database down", cause), errs.KindUnavailable, "database down", "", "database down: pq: connection refused", true},
		{"wrapped by fmt", fmt.Errorf("token: %w", errs.NotFound("no code")), errs.KindNotFound, "no code", "", "token: no code", false},
		{"plain error", cause, errs.KindInternal, "internal error", "", cause.Error(), true},
		{"canceled", fmt.Errorf("query: %w", context.Canceled), errs.KindUnavailable, "service unavailable", "", "query: context canceled", false},
		{"deadline", context.DeadlineExceeded, errs.KindUnavailable, "service unavailable", "", "context deadline exceeded", false},
		{"zero error", &errs.Error{Public: "oops"}, errs.KindInternal, "oops", "", "oops", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errs.KindOf(tt.err); got != tt.kind {
				t.Errorf("KindOf = %v, want %v", got, tt.kind)
			}
			if got := errs.PublicMessage(tt.err); got != tt.public {
				t.Errorf("PublicMessage = %q, want %q", got, tt.public)
			}
			if got := errs.FieldOf(tt.err); got != tt.field {
				t.Errorf("FieldOf = %q, want %q", got, tt.field)
			}
			if got := tt.err.Error(); got != tt.errorText {
				t.Errorf("Error() = %q, want %q", got, tt.errorText)
			}
			if got := errors.Is(tt.err, cause); got != tt.wrapsCause {
				t.Errorf("errors.Is(err, cause) = %v, want %v", got, tt.wrapsCause)
			}
		})
	}
}

// A protocol code and a wait ride along an error, through wrapping, without
// changing its kind or message.
func TestCodeAndRetryAfter(t *testing.T) {
	e := errs.Coded(errs.KindInvalid, "invalid_scope", "no such scope")
	e.RetryAfter = 1500 * time.Millisecond
	wrapped := fmt.Errorf("token: %w", e)
	if errs.KindOf(wrapped) != errs.KindInvalid || errs.PublicMessage(wrapped) != "no such scope" ||
		errs.CodeOf(wrapped) != "invalid_scope" || errs.RetryAfterOf(wrapped) != 1500*time.Millisecond {
		t.Fatalf("coded error read back as %v %q %q %v", errs.KindOf(wrapped), errs.PublicMessage(wrapped), errs.CodeOf(wrapped), errs.RetryAfterOf(wrapped))
	}
	plain := errors.New("x")
	if errs.CodeOf(plain) != "" || errs.RetryAfterOf(plain) != 0 || errs.CodeOf(errs.Invalid("y")) != "" {
		t.Fatal("an error without a code has one")
	}
}

func TestClassify(t *testing.T) {
	cause := errors.New("nats: timeout")
	if errs.Classify(nil, errs.KindUnavailable, "x") != nil {
		t.Fatal("nil classified")
	}
	got := errs.Classify(fmt.Errorf("append: %w", cause), errs.KindUnavailable, "try again")
	if errs.KindOf(got) != errs.KindUnavailable || errs.PublicMessage(got) != "try again" || !errors.Is(got, cause) {
		t.Fatalf("classified: %v", got)
	}
	own := fmt.Errorf("decide: %w", errs.FailedPrecondition("used"))
	if got := errs.Classify(own, errs.KindUnavailable, "try again"); got != own {
		t.Fatalf("an error with a kind was changed: %v", got)
	}
}

func TestServerFault(t *testing.T) {
	for k := errs.KindInternal; k <= errs.KindUnavailable+1; k++ {
		want := k == errs.KindInternal || k == errs.KindUnavailable || k == errs.KindConflict || k > errs.KindUnavailable
		if got := k.ServerFault(); got != want {
			t.Errorf("%v.ServerFault() = %v, want %v", k, got, want)
		}
	}
}

func TestRetryable(t *testing.T) {
	for k := errs.KindInternal; k <= errs.KindUnavailable; k++ {
		want := k == errs.KindConflict || k == errs.KindUnavailable || k == errs.KindRateLimited
		if got := k.Retryable(); got != want {
			t.Errorf("%v.Retryable() = %v, want %v", k, got, want)
		}
	}
}

func TestToStatus(t *testing.T) {
	secret := errors.New("dial tcp 10.1.2.3:5432: refused")
	tests := []struct {
		name string
		err  error
		code codes.Code
		msg  string
	}{
		{"nil", nil, codes.OK, ""},
		{"not found", errs.NotFound("client not found"), codes.NotFound, "client not found"},
		{"wrapped", fmt.Errorf("authorize: %w", errs.PermissionDenied("scope not allowed")), codes.PermissionDenied, "scope not allowed"},
		{"internal hides cause", errs.Internalf("query: %w", secret), codes.Internal, "internal error"},
		{"wrap hides cause", errs.Wrap(errs.KindUnavailable, "database unavailable", secret), codes.Unavailable, "database unavailable"},
		{"plain error", secret, codes.Internal, "internal error"},
		{"deadline", context.DeadlineExceeded, codes.Unavailable, "service unavailable"},
		{"raw status keeps code, not text", status.Error(codes.NotFound, "row 10.1.2.3"), codes.NotFound, "not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := errs.ToStatus(tt.err)
			if st.Code() != tt.code || st.Message() != tt.msg {
				t.Fatalf("ToStatus = (%v, %q), want (%v, %q)", st.Code(), st.Message(), tt.code, tt.msg)
			}
			if strings.Contains(st.String(), "10.1.2.3") {
				t.Errorf("status leaks the internal cause: %v", st)
			}
		})
	}
}

func TestFromStatusRoundTrip(t *testing.T) {
	for k := errs.KindInternal; k <= errs.KindUnavailable; k++ {
		t.Run(k.String(), func(t *testing.T) {
			sent := &errs.Error{Kind: k, Public: "public " + k.String(), Field: "redirect_uri", Err: errors.New("secret cause"),
				Facts: map[string]string{"attempts_left": "3"}}
			got := errs.FromStatus(errs.ToStatus(sent).Err())
			e, ok := errors.AsType[*errs.Error](got)
			if !ok {
				t.Fatalf("FromStatus gave %T, want *errs.Error", got)
			}
			if e.Kind != k || e.Public != sent.Public || e.Field != "redirect_uri" {
				t.Errorf("got {%v %q %q}, want {%v %q redirect_uri}", e.Kind, e.Public, e.Field, k, sent.Public)
			}
			if left, ok := errs.FactOf(got, "attempts_left"); !ok || left != "3" {
				t.Errorf("fact attempts_left = %q, %v; want 3", left, ok)
			}
			if _, ok := errs.FactOf(got, "other"); ok {
				t.Error("a fact that was not sent arrived")
			}
			if status.Code(got) != k.GRPCCode() {
				t.Errorf("status.Code = %v, want %v", status.Code(got), k.GRPCCode())
			}
			if strings.Contains(got.Error(), "secret cause") {
				t.Errorf("cause crossed the wire: %v", got)
			}
		})
	}
}

// The wait a refusal asks for crosses gRPC as its fact, so the caller's
// error edge answers with the same Retry-After.
func TestFromStatusRetryAfter(t *testing.T) {
	sent := &errs.Error{Kind: errs.KindUnavailable, Public: "full", RetryAfter: time.Minute,
		Facts: map[string]string{errs.FactRetryAfterSeconds: "60"}}
	if got := errs.RetryAfterOf(errs.FromStatus(errs.ToStatus(sent).Err())); got != time.Minute {
		t.Errorf("RetryAfter = %v, want 1m", got)
	}
	bad := &errs.Error{Kind: errs.KindUnavailable, Facts: map[string]string{errs.FactRetryAfterSeconds: "soon"}}
	if got := errs.RetryAfterOf(errs.FromStatus(errs.ToStatus(bad).Err())); got != 0 {
		t.Errorf("RetryAfter of a wait that is no number = %v, want 0", got)
	}
}

func TestFromStatusForeign(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		kind     errs.Kind
		public   string
		isCtxErr error
	}{
		{"nil", nil, 0, "", nil},
		{"transport error keeps text internal", status.Error(codes.Unavailable, "dial tcp 10.0.0.5:9090: refused"), errs.KindUnavailable, "service unavailable", nil},
		{"deadline", status.Error(codes.DeadlineExceeded, "context deadline exceeded"), errs.KindUnavailable, "service unavailable", context.DeadlineExceeded},
		{"canceled", status.Error(codes.Canceled, "context canceled"), errs.KindUnavailable, "service unavailable", context.Canceled},
		{"unimplemented", status.Error(codes.Unimplemented, "unknown method"), errs.KindInternal, "internal error", nil},
		{"already an Error", errs.Conflict("retry"), errs.KindConflict, "retry", nil},
		{"not a status", errors.New("boom"), errs.KindInternal, "internal error", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := errs.FromStatus(tt.err)
			if tt.err == nil {
				if got != nil {
					t.Fatalf("FromStatus(nil) = %v", got)
				}
				return
			}
			if k := errs.KindOf(got); k != tt.kind {
				t.Errorf("kind = %v, want %v", k, tt.kind)
			}
			if m := errs.PublicMessage(got); m != tt.public {
				t.Errorf("public = %q, want %q", m, tt.public)
			}
			if tt.isCtxErr != nil && !errors.Is(got, tt.isCtxErr) {
				t.Errorf("errors.Is(%v, %v) = false", got, tt.isCtxErr)
			}
			if !errors.Is(got, tt.err) {
				t.Errorf("original error lost from chain: %v", got)
			}
		})
	}
}

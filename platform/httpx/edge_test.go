package httpx_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/httpx"
	"gatehouse.dev/platform/oautherr"
)

// answer runs h behind the wrapper and returns the recorded response and its
// JSON body.
func answer(t *testing.T, wrap func(*slog.Logger, httpx.Handler) http.HandlerFunc, logger *slog.Logger, req *http.Request, h httpx.Handler) (*httptest.ResponseRecorder, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	wrap(logger, h).ServeHTTP(rec, req)
	var body map[string]any
	if rec.Body.Len() > 0 {
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("body %q: %v", rec.Body, err)
		}
	}
	return rec, body
}

func failing(err error) httpx.Handler {
	return func(http.ResponseWriter, *http.Request) (any, error) { return nil, err }
}

// Every OAuth error is answered with the status its RFC gives it, or else
// its kind's: never a 400 for the server's own fault, never a 500 for the
// client's mistake.
func TestOAuthErrors(t *testing.T) {
	secret := errors.New("dial tcp 10.0.0.7:5432: connection refused")
	limited := errs.RateLimited("too many")
	limited.RetryAfter = 2500 * time.Millisecond
	tests := []struct {
		name       string
		err        error
		auth       string // the request's Authorization header
		status     int
		code       string
		desc       string
		challenge  string // WWW-Authenticate prefix, "" for none
		retryAfter string
	}{
		{"invalid request", oautherr.New(oautherr.InvalidRequest, "code is required"), "", 400, "invalid_request", "code is required", "", ""},
		{"invalid client, no header", oautherr.New(oautherr.InvalidClient, "unknown client"), "", 401, "invalid_client", "unknown client", `Basic realm="gatehouse", error="invalid_client"`, ""},
		{"invalid client, Basic", oautherr.New(oautherr.InvalidClient, "wrong secret"), "Basic eDp5", 401, "invalid_client", "wrong secret", "Basic ", ""},
		{"invalid client, Bearer", oautherr.New(oautherr.InvalidClient, "wrong secret"), "Bearer nope", 401, "invalid_client", "wrong secret", "Bearer ", ""},
		{"unauthenticated kind", errs.Unauthenticated("bad"), "", 401, "invalid_client", "bad", "Basic ", ""},
		{"invalid grant", oautherr.New(oautherr.InvalidGrant, "used"), "", 400, "invalid_grant", "used", "", ""},
		{"not found is invalid_grant", errs.NotFound("no such code"), "", 400, "invalid_grant", "no such code", "", ""},
		{"failed precondition is invalid_grant", errs.FailedPrecondition("expired"), "", 400, "invalid_grant", "expired", "", ""},
		{"permission denied is access_denied, 400", errs.PermissionDenied("refused"), "", 400, "access_denied", "refused", "", ""},
		{"unauthorized client", oautherr.New(oautherr.UnauthorizedClient, "not this grant"), "", 400, "unauthorized_client", "not this grant", "", ""},
		{"unsupported grant type", oautherr.New(oautherr.UnsupportedGrantType, "no"), "", 400, "unsupported_grant_type", "no", "", ""},
		{"invalid scope", oautherr.New(oautherr.InvalidScope, "not yours"), "", 400, "invalid_scope", "not yours", "", ""},
		{"slow down is 400", oautherr.New(oautherr.SlowDown, "wait"), "", 400, "slow_down", "wait", "", ""},
		{"authorization pending", oautherr.New(oautherr.AuthorizationPending, "wait"), "", 400, "authorization_pending", "wait", "", ""},
		{"invalid token", oautherr.New(oautherr.InvalidToken, "expired"), "Bearer x", 401, "invalid_token", "expired", "Bearer ", ""},
		{"client metadata", oautherr.New(oautherr.InvalidClientMetadata, "bad uri"), "", 400, "invalid_client_metadata", "bad uri", "", ""},
		{"already exists", errs.AlreadyExists("taken"), "", 400, "invalid_request", "taken", "", ""},
		{"rate limited", limited, "", 429, "temporarily_unavailable", "too many", "", "3"},
		{"internal, cause hidden", errs.Internalf("query: %w", secret), "", 500, "server_error", "internal error", "", ""},
		{"plain error is internal", fmt.Errorf("append: %w", secret), "", 500, "server_error", "internal error", "", ""},
		{"unavailable", errs.Wrap(errs.KindUnavailable, "the homeserver is down", secret), "", 503, "temporarily_unavailable", "the homeserver is down", "", "2"},
		{"conflict is the server's", errs.Conflict("lost a race"), "", 503, "temporarily_unavailable", "lost a race", "", "2"},
		{"a client code on a server fault", &errs.Error{Kind: errs.KindInternal, Code: oautherr.InvalidScope}, "", 500, "server_error", "internal error", "", ""},
		{"a Matrix code is not OAuth's", errs.Coded(errs.KindInvalid, "M_BAD_JSON", "bad"), "", 400, "invalid_request", "bad", "", ""},
		{"with a status", httpx.WithStatus(405, oautherr.New(oautherr.InvalidRequest, "use POST")), "", 405, "invalid_request", "use POST", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/oauth2/token", nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			rec, body := answer(t, httpx.OAuth, nil, req, failing(tt.err))
			if rec.Code != tt.status || body["error"] != tt.code || body["error_description"] != tt.desc || len(body) != 2 {
				t.Fatalf("answer %d %s, want %d %s %q", rec.Code, rec.Body, tt.status, tt.code, tt.desc)
			}
			if got := rec.Header().Get("WWW-Authenticate"); !strings.HasPrefix(got, tt.challenge) || (tt.challenge == "") != (got == "") {
				t.Errorf("WWW-Authenticate %q, want %q…", got, tt.challenge)
			}
			if got := rec.Header().Get("Retry-After"); got != tt.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tt.retryAfter)
			}
			if rec.Header().Get("Cache-Control") != "no-store" || rec.Header().Get("Content-Type") != "application/json" {
				t.Errorf("headers %v", rec.Header())
			}
			if strings.Contains(rec.Body.String(), "10.0.0.7") {
				t.Errorf("the cause leaked: %s", rec.Body)
			}
		})
	}
}

// A challenge the handler set (RFC 6750's Bearer) is kept.
func TestOAuthErrorKeepsTheHandlersChallenge(t *testing.T) {
	req := httptest.NewRequest(http.MethodGet, "/oauth2/userinfo", nil)
	rec, _ := answer(t, httpx.OAuth, nil, req, func(w http.ResponseWriter, _ *http.Request) (any, error) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse"`)
		return nil, oautherr.New(oautherr.InvalidToken, "an access token is required")
	})
	if rec.Code != 401 || rec.Header().Get("WWW-Authenticate") != `Bearer realm="gatehouse"` {
		t.Fatalf("%d %v", rec.Code, rec.Header())
	}
}

// Matrix errors: the errcode of the error or of its kind, the kind's status,
// and the extra fields the client-server API defines.
func TestMatrixErrors(t *testing.T) {
	limited := errs.Coded(errs.KindRateLimited, "M_LIMIT_EXCEEDED", "slow down")
	limited.RetryAfter = 1500 * time.Millisecond
	tests := []struct {
		name       string
		err        error
		status     int
		code       string
		extra      map[string]any
		retryAfter string
		challenge  bool
	}{
		{"bad json", errs.Coded(errs.KindInvalid, "M_BAD_JSON", "x"), 400, "M_BAD_JSON", nil, "", false},
		{"forbidden", errs.Coded(errs.KindPermissionDenied, "M_FORBIDDEN", "x"), 403, "M_FORBIDDEN", nil, "", false},
		{"unknown token", errs.Coded(errs.KindUnauthenticated, "M_UNKNOWN_TOKEN", "x"), 401, "M_UNKNOWN_TOKEN", map[string]any{"soft_logout": false}, "", true},
		{"locked", errs.Coded(errs.KindUnauthenticated, "M_USER_LOCKED", "x"), 401, "M_USER_LOCKED", map[string]any{"soft_logout": false}, "", true},
		{"limit exceeded", limited, 429, "M_LIMIT_EXCEEDED", map[string]any{"retry_after_ms": float64(1500)}, "2", false},
		{"not found", errs.NotFound("x"), 404, "M_NOT_FOUND", nil, "", false},
		{"invalid kind", errs.Invalid("x"), 400, "M_INVALID_PARAM", nil, "", false},
		{"an OAuth code is not Matrix's", oautherr.New(oautherr.InvalidScope, "x"), 400, "M_INVALID_PARAM", nil, "", false},
		{"too large", httpx.WithStatus(413, errs.Coded(errs.KindInvalid, "M_TOO_LARGE", "x")), 413, "M_TOO_LARGE", nil, "", false},
		{"unrecognized method", httpx.WithStatus(405, errs.Coded(errs.KindInvalid, "M_UNRECOGNIZED", "x")), 405, "M_UNRECOGNIZED", nil, "", false},
		{"internal", errors.New("boom"), 500, "M_UNKNOWN", nil, "", false},
		{"unavailable", errs.Unavailable("x"), 503, "M_UNKNOWN", nil, "2", false},
		{"a client code on a server fault", &errs.Error{Kind: errs.KindUnavailable, Code: "M_FORBIDDEN"}, 503, "M_UNKNOWN", nil, "2", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/_matrix/client/v3/login", nil)
			rec, body := answer(t, httpx.Matrix, nil, req, failing(tt.err))
			if rec.Code != tt.status || body["errcode"] != tt.code || body["error"] == "" || len(body) != 2+len(tt.extra) {
				t.Fatalf("answer %d %s, want %d %s", rec.Code, rec.Body, tt.status, tt.code)
			}
			for k, v := range tt.extra {
				if body[k] != v {
					t.Errorf("%s = %v, want %v", k, body[k], v)
				}
			}
			if got := rec.Header().Get("Retry-After"); got != tt.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tt.retryAfter)
			}
			if got := rec.Header().Get("WWW-Authenticate"); (got != "") != tt.challenge {
				t.Errorf("WWW-Authenticate %q", got)
			}
		})
	}
}

// Bodies are 200 JSON, a Reply has its own status, and a handler may answer
// itself.
func TestHandlerAnswers(t *testing.T) {
	req := httptest.NewRequest(http.MethodPost, "/x", nil)
	rec, body := answer(t, httpx.OAuth, nil, req, func(http.ResponseWriter, *http.Request) (any, error) {
		return map[string]any{"ok": true}, nil
	})
	if rec.Code != 200 || body["ok"] != true || rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	rec, body = answer(t, httpx.OAuth, nil, req, func(http.ResponseWriter, *http.Request) (any, error) {
		return httpx.Reply{Status: http.StatusCreated, Body: map[string]any{"client_id": "c"}}, nil
	})
	if rec.Code != 201 || body["client_id"] != "c" {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	rec, _ = answer(t, httpx.Matrix, nil, req, func(w http.ResponseWriter, _ *http.Request) (any, error) {
		w.WriteHeader(http.StatusNoContent)
		return nil, nil
	})
	if rec.Code != 204 || rec.Body.Len() != 0 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
}

// The server's faults are logged with their causes; the client's mistakes
// are not logged at all.
func TestFaultsAreLogged(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	req := httptest.NewRequest(http.MethodPost, "/oauth2/token", nil)
	answer(t, httpx.OAuth, logger, req, failing(oautherr.New(oautherr.InvalidGrant, "used")))
	if logs.Len() != 0 {
		t.Fatalf("a client's mistake was logged: %s", logs.String())
	}
	answer(t, httpx.OAuth, logger, req, failing(errs.Internalf("append: %w", errors.New("nats: timeout"))))
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "nats: timeout") || !strings.Contains(logs.String(), "/oauth2/token") {
		t.Fatalf("log: %s", logs.String())
	}
	logs.Reset()
	answer(t, httpx.Matrix, logger, req, failing(errs.Unavailable("later")))
	if !strings.Contains(logs.String(), "level=WARN") {
		t.Fatalf("log: %s", logs.String())
	}
}

// ReadForm takes one form-encoded POST body and refuses everything else
// with invalid_request.
func TestReadForm(t *testing.T) {
	tests := []struct {
		name, method, contentType, body string
		status                          int
		want                            url.Values
	}{
		{"form", http.MethodPost, "application/x-www-form-urlencoded", "a=1&b=2", 200, url.Values{"a": {"1"}, "b": {"2"}}},
		{"form with charset", http.MethodPost, "application/x-www-form-urlencoded; charset=UTF-8", "a=1", 200, url.Values{"a": {"1"}}},
		{"GET", http.MethodGet, "", "", 405, nil},
		{"JSON", http.MethodPost, "application/json", `{"a":1}`, 400, nil},
		{"no content type", http.MethodPost, "", "a=1", 400, nil},
		{"repeated parameter", http.MethodPost, "application/x-www-form-urlencoded", "a=1&a=2", 400, nil},
		{"bad encoding", http.MethodPost, "application/x-www-form-urlencoded", "a=%zz", 400, nil},
		{"too large", http.MethodPost, "application/x-www-form-urlencoded", "a=" + strings.Repeat("x", httpx.MaxFormBody), 400, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, "/oauth2/token?q=ignored", strings.NewReader(tt.body))
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			var got url.Values
			rec, body := answer(t, httpx.OAuth, nil, req, func(w http.ResponseWriter, r *http.Request) (any, error) {
				form, err := httpx.ReadForm(w, r)
				got = form
				if err != nil {
					return nil, err
				}
				return map[string]any{}, nil
			})
			if rec.Code != tt.status {
				t.Fatalf("status %d %s, want %d", rec.Code, rec.Body, tt.status)
			}
			if tt.status != 200 {
				if body["error"] != "invalid_request" {
					t.Fatalf("body %s", rec.Body)
				}
				if tt.status == 405 && rec.Header().Get("Allow") != "POST" {
					t.Fatalf("Allow %q", rec.Header().Get("Allow"))
				}
				return
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("form %v, want %v", got, tt.want)
			}
		})
	}
}

// Pages get the kind's status and the public message; the server's faults
// a generic one and a Retry-After when they may pass.
func TestPageErrors(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		status     int
		message    string
		retryAfter string
	}{
		{"client mistake", errs.Invalid("The application is not registered."), 400, "The application is not registered.", ""},
		{"wrong method", httpx.WithStatus(405, errs.Invalid("GET or POST only.")), 405, "GET or POST only.", ""},
		{"internal", errs.Internalf("boom: %w", errors.New("secret cause")), 500, "internal error", ""},
		{"unavailable", errs.Unavailable("Sign-in is unavailable right now."), 503, "Sign-in is unavailable right now.", "2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			var gotStatus int
			var gotMessage string
			httpx.WritePageError(rec, httptest.NewRequest(http.MethodGet, "/authorize", nil), nil, tt.err, func(w http.ResponseWriter, _ *http.Request, status int, message string) {
				gotStatus, gotMessage = status, message
				w.WriteHeader(status)
			})
			if gotStatus != tt.status || gotMessage != tt.message || rec.Code != tt.status || rec.Header().Get("Retry-After") != tt.retryAfter {
				t.Fatalf("page %d %q (Retry-After %q), want %d %q", gotStatus, gotMessage, rec.Header().Get("Retry-After"), tt.status, tt.message)
			}
		})
	}
}

// ReadParams answers every request as ReadForm does — the same values, the
// same errors — whether it reads the body itself (small, plain) or through
// ReadForm.
func TestReadParamsAnswersAsReadForm(t *testing.T) {
	const form = "application/x-www-form-urlencoded"
	tests := []struct {
		name, method, target, contentType, body string
	}{
		{"one parameter", http.MethodPost, "/", form, "token=mat_abc_123"},
		{"several", http.MethodPost, "/", form, "token=a&token_type_hint=access_token&client_id=c&client_secret=s"},
		{"six", http.MethodPost, "/", form, "a=1&b=2&c=3&d=4&e=5&f=6"},
		{"seven", http.MethodPost, "/", form, "a=1&b=2&c=3&d=4&e=5&f=6&g=7"},
		{"seven, one repeated", http.MethodPost, "/", form, "a=1&b=2&c=3&d=4&e=5&f=6&a=7"},
		{"empty", http.MethodPost, "/", form, ""},
		{"empty pairs", http.MethodPost, "/", form, "&&token=a&"},
		{"no value", http.MethodPost, "/", form, "token"},
		{"no name", http.MethodPost, "/", form, "=x&token=y"},
		{"empty value", http.MethodPost, "/", form, "token="},
		{"repeated", http.MethodPost, "/", form, "token=a&token=b"},
		{"repeated, empty", http.MethodPost, "/", form, "token&token="},
		{"repeated through an escape", http.MethodPost, "/", form, "token=a&%74oken=b"},
		{"escapes", http.MethodPost, "/", form, "token=a%2Bb+c&x=%E2%9C%93"},
		{"bad escape", http.MethodPost, "/", form, "token=%zz"},
		{"semicolon", http.MethodPost, "/", form, "token=a;b=c"},
		{"query string", http.MethodPost, "/?token=q", form, "token=a"},
		{"bad query string", http.MethodPost, "/?a=%zz", form, "token=a"},
		{"charset", http.MethodPost, "/", form + "; charset=UTF-8", "token=a"},
		{"JSON", http.MethodPost, "/", "application/json", `{"token":"a"}`},
		{"no content type", http.MethodPost, "/", "", "token=a"},
		{"GET", http.MethodGet, "/", "", ""},
		{"large", http.MethodPost, "/", form, "token=" + strings.Repeat("x", 5000)},
		{"too large", http.MethodPost, "/", form, "token=" + strings.Repeat("x", httpx.MaxFormBody)},
	}
	type answered struct {
		status      int
		allow, body string
		values      url.Values
	}
	read := func(tt struct{ name, method, target, contentType, body string }, params bool) answered {
		req := httptest.NewRequest(tt.method, tt.target, strings.NewReader(tt.body))
		if tt.contentType != "" {
			req.Header.Set("Content-Type", tt.contentType)
		}
		var got url.Values
		rec, _ := answer(t, httpx.OAuth, nil, req, func(w http.ResponseWriter, r *http.Request) (any, error) {
			if params {
				p, err := httpx.ReadParams(w, r)
				got = p.Values()
				return map[string]any{}, err
			}
			form, err := httpx.ReadForm(w, r)
			got = form
			return map[string]any{}, err
		})
		if rec.Code != http.StatusOK {
			got = nil
		} else if got == nil {
			got = url.Values{}
		}
		return answered{rec.Code, rec.Header().Get("Allow"), rec.Body.String(), got}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, got := read(tt, false), read(tt, true)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("ReadParams: %+v\nReadForm:   %+v", got, want)
			}
		})
	}
}

// AppendJSONString writes every string as encoding/json does.
func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{
		"", "plain", "@alice:example.org", "urn:matrix:client:api:* openid", `quote " and \ backslash`,
		"<script>&amp;</script>", "tab\tnew\nline\r\x00\x1f\x7f", "é ✓ 😀", "\u2028\u2029", "bad \xff utf-8 \xc3",
	} {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := httpx.AppendJSONString([]byte("x"), s); string(got) != "x"+string(want) {
			t.Errorf("AppendJSONString(%q) = %s, want x%s", s, got, want)
		}
	}
}

// WriteRawJSON answers with WriteJSON's headers.
func TestWriteRawJSON(t *testing.T) {
	raw, enc := httptest.NewRecorder(), httptest.NewRecorder()
	httpx.WriteRawJSON(raw, http.StatusOK, []byte("{\"a\":1}\n"))
	httpx.WriteJSON(enc, http.StatusOK, map[string]int{"a": 1})
	if fmt.Sprint(raw.Header()) != fmt.Sprint(enc.Header()) || raw.Body.String() != enc.Body.String() || raw.Code != enc.Code {
		t.Errorf("WriteRawJSON %d %v %q, WriteJSON %d %v %q", raw.Code, raw.Header(), raw.Body, enc.Code, enc.Header(), enc.Body)
	}
}

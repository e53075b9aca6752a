package compat

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"gatehouse.dev/platform/httpx"

	"gatehouse.dev/platform/eventlog"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

func TestParseLogin(t *testing.T) {
	tests := []struct {
		name string
		body string
		want Login
		code string
	}{
		{"identifier", `{"type":"m.login.password","identifier":{"type":"m.id.user","user":"alice"},"password":"pw"}`,
			Login{Type: PasswordLogin, User: "alice", Password: "pw"}, ""},
		{"legacy user", `{"type":"m.login.password","user":"@alice:example.org","password":"pw","device_id":"ABCDEFGHIJ","initial_device_display_name":"  Phone ","refresh_token":true}`,
			Login{Type: PasswordLogin, User: "@alice:example.org", Password: "pw", DeviceID: "ABCDEFGHIJ", DisplayName: "Phone", Refresh: true}, ""},
		{"identifier wins over user", `{"type":"m.login.password","identifier":{"type":"m.id.user","user":"bob"},"user":"alice","password":"pw"}`,
			Login{Type: PasswordLogin, User: "bob", Password: "pw"}, ""},
		{"nulls are absent", `{"type":"m.login.token","token":"t","device_id":null,"refresh_token":null,"initial_device_display_name":null}`,
			Login{Type: TokenLogin, Token: "t"}, ""},
		{"not json", `{"type":`, Login{}, "M_NOT_JSON"},
		{"empty body", ``, Login{}, "M_NOT_JSON"},
		{"array", `[1]`, Login{}, "M_BAD_JSON"},
		{"null", `null`, Login{}, "M_BAD_JSON"},
		{"type not a string", `{"type":1}`, Login{}, "M_BAD_JSON"},
		{"no type", `{"user":"alice"}`, Login{}, "M_MISSING_PARAM"},
		{"unknown type", `{"type":"m.login.magic"}`, Login{}, "M_UNRECOGNIZED"},
		{"appservice", `{"type":"m.login.application_service","identifier":{"type":"m.id.user","user":"x"}}`, Login{}, "M_APPSERVICE_LOGIN_UNSUPPORTED"},
		{"no password", `{"type":"m.login.password","user":"alice"}`, Login{}, "M_MISSING_PARAM"},
		{"no user", `{"type":"m.login.password","password":"pw"}`, Login{}, "M_MISSING_PARAM"},
		{"password not a string", `{"type":"m.login.password","user":"alice","password":7}`, Login{}, "M_BAD_JSON"},
		{"identifier not an object", `{"type":"m.login.password","identifier":"alice","password":"pw"}`, Login{}, "M_BAD_JSON"},
		{"third-party identifier", `{"type":"m.login.password","identifier":{"type":"m.id.thirdparty","medium":"email","address":"a@b.c"},"password":"pw"}`, Login{}, "M_UNRECOGNIZED"},
		{"no token", `{"type":"m.login.token"}`, Login{}, "M_MISSING_PARAM"},
		{"refresh_token not a bool", `{"type":"m.login.token","token":"t","refresh_token":"yes"}`, Login{}, "M_BAD_JSON"},
		{"device id with a space", `{"type":"m.login.token","token":"t","device_id":"A B"}`, Login{}, "M_INVALID_PARAM"},
		{"device id too long", `{"type":"m.login.token","token":"t","device_id":"` + strings.Repeat("A", 256) + `"}`, Login{}, "M_INVALID_PARAM"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, e := ParseLogin([]byte(tt.body))
			if tt.code != "" {
				if e == nil || e.Code != tt.code || status(t, e) != 400 {
					t.Fatalf("error = %v, want 400 %s", e, tt.code)
				}
				return
			}
			if e != nil {
				t.Fatalf("error = %v", e)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDisplayNameIsCut(t *testing.T) {
	got, e := ParseLogin([]byte(`{"type":"m.login.token","token":"t","initial_device_display_name":"` + strings.Repeat("é", 150) + `"}`))
	if e != nil || got.DisplayName != strings.Repeat("é", MaxDisplayName) {
		t.Fatalf("got %q, %v", got.DisplayName, e)
	}
}

func TestLocalpart(t *testing.T) {
	tests := []struct {
		user, want, code string
	}{
		{"alice", "alice", ""},
		{"Alice", "alice", ""},
		{"@alice:example.org", "alice", ""},
		{"@Alice:EXAMPLE.org", "alice", ""},
		{"@alice:other.org", "", "M_FORBIDDEN"},
		{"@alice", "", "M_INVALID_PARAM"},
		{"@:example.org", "", "M_INVALID_PARAM"},
	}
	for _, tt := range tests {
		got, e := Localpart(tt.user, "example.org")
		if tt.code != "" {
			if e == nil || e.Code != tt.code {
				t.Errorf("Localpart(%q) error = %v, want %s", tt.user, e, tt.code)
			}
			continue
		}
		if e != nil || got != tt.want {
			t.Errorf("Localpart(%q) = %q, %v; want %q", tt.user, got, e, tt.want)
		}
	}
}

func TestDeviceIDsAndScope(t *testing.T) {
	shape := regexp.MustCompile(`^[A-Z0-9]{10}$`)
	seen := map[string]bool{}
	for range 100 {
		id := NewDeviceID()
		if !shape.MatchString(id) || !ValidDeviceID(id) || seen[id] {
			t.Fatalf("device id %q", id)
		}
		seen[id] = true
	}
	if got := Scope("DEV", false); got != "urn:matrix:client:api:* urn:matrix:client:device:DEV" {
		t.Errorf("Scope = %q", got)
	}
	if got := Scope("DEV", true); got != "urn:matrix:client:api:* urn:matrix:client:device:DEV urn:synapse:admin:*" {
		t.Errorf("admin Scope = %q", got)
	}
}

func TestParseRefreshAndLogoutAll(t *testing.T) {
	if tok, e := ParseRefresh([]byte(`{"refresh_token":"mcr_x"}`)); e != nil || tok != "mcr_x" {
		t.Errorf("ParseRefresh = %q, %v", tok, e)
	}
	for body, code := range map[string]string{`{}`: "M_MISSING_PARAM", `{"refresh_token":1}`: "M_BAD_JSON", `x`: "M_NOT_JSON"} {
		if _, e := ParseRefresh([]byte(body)); e == nil || e.Code != code {
			t.Errorf("ParseRefresh(%s) = %v, want %s", body, e, code)
		}
	}
	for body, want := range map[string]bool{``: false, ` `: false, `{}`: false, `{"io.element.only_compat_is_fine":true}`: true} {
		if got, e := ParseLogoutAll([]byte(body)); e != nil || got != want {
			t.Errorf("ParseLogoutAll(%q) = %v, %v; want %v", body, got, e, want)
		}
	}
	if _, e := ParseLogoutAll([]byte(`{"io.element.only_compat_is_fine":"yes"}`)); e == nil || e.Code != "M_BAD_JSON" {
		t.Errorf("ParseLogoutAll with a string = %v", e)
	}
}

func TestLoginToken(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	issued := IssueLoginToken("01J0000000000000000000USER", "alice", true, now)
	fresh := FoldLoginToken([]eventlog.Record{{Seq: 1, Event: issued}})
	used := FoldLoginToken([]eventlog.Record{{Seq: 1, Event: issued}, {Seq: 2, Event: &eventsv1.LoginTokenUsed{SessionId: "S1"}}})
	tests := []struct {
		name  string
		state LoginToken
		at    time.Time
		ok    bool
	}{
		{"fresh", fresh, now.Add(29 * time.Second), true},
		{"expired", fresh, now.Add(LoginTokenTTL), false},
		{"used", used, now.Add(time.Second), false},
		{"unknown", LoginToken{}, now, false},
	}
	for _, tt := range tests {
		ev, e := UseLoginToken(tt.state, "S2", tt.at)
		if tt.ok != (e == nil) {
			t.Errorf("%s: error %v", tt.name, e)
			continue
		}
		if e != nil && (e.Code != "M_FORBIDDEN" || status(t, e) != 403) {
			t.Errorf("%s: error %v, want 403 M_FORBIDDEN", tt.name, e)
		}
		if e == nil && ev.GetSessionId() != "S2" {
			t.Errorf("%s: event %v", tt.name, ev)
		}
	}
	if used.UsedBy != "S1" || fresh.Issued.GetUsername() != "alice" || !fresh.Issued.GetAdmin() {
		t.Errorf("fold: %+v %+v", used, fresh)
	}
	if !WellFormedLoginToken(strings.Repeat("aZ9", 10)+"ab") || WellFormedLoginToken("short") || WellFormedLoginToken(strings.Repeat("-", 32)) {
		t.Error("WellFormedLoginToken")
	}
}

// answer writes err as the compatibility API does (platform/httpx) and
// returns the status and the body.
func answer(t *testing.T, err error) (int, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	httpx.WriteMatrixError(rec, httptest.NewRequest(http.MethodPost, "/_matrix/client/v3/login", nil), err)
	var body map[string]any
	if e := json.Unmarshal(rec.Body.Bytes(), &body); e != nil {
		t.Fatalf("body %q: %v", rec.Body, e)
	}
	return rec.Code, body
}

// status is the HTTP status err is answered with.
func status(t *testing.T, err error) int {
	t.Helper()
	code, _ := answer(t, err)
	return code
}

// Every error of the compatibility API, as a client sees it.
func TestErrorAnswers(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		status int
		code   string
		extra  map[string]any
	}{
		{"limit", LimitExceeded(1500 * time.Millisecond), 429, "M_LIMIT_EXCEEDED", map[string]any{"retry_after_ms": float64(1500)}},
		{"unknown token", UnknownToken("x"), 401, "M_UNKNOWN_TOKEN", map[string]any{"soft_logout": false}},
		{"missing token", MissingToken(), 401, "M_MISSING_TOKEN", nil},
		{"locked", UserLocked(), 401, "M_USER_LOCKED", map[string]any{"soft_logout": false}},
		{"deactivated", UserDeactivated(), 403, "M_USER_DEACTIVATED", nil},
		{"wrong credentials", WrongCredentials(), 403, "M_FORBIDDEN", nil},
		{"not JSON", NotJSON(), 400, "M_NOT_JSON", nil},
		{"bad JSON", BadJSON("x"), 400, "M_BAD_JSON", nil},
		{"missing parameter", MissingParam("x"), 400, "M_MISSING_PARAM", nil},
		{"invalid parameter", InvalidParam("x"), 400, "M_INVALID_PARAM", nil},
		{"unknown login type", Unrecognized("x"), 400, "M_UNRECOGNIZED", nil},
		{"unknown endpoint", UnknownEndpoint("x"), 404, "M_UNRECOGNIZED", nil},
		{"wrong method", WrongMethod("x"), 405, "M_UNRECOGNIZED", nil},
		{"too large", TooLarge(), 413, "M_TOO_LARGE", nil},
		{"appservice", AppserviceLoginUnsupported(), 400, "M_APPSERVICE_LOGIN_UNSUPPORTED", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := answer(t, tt.err)
			if code != tt.status || body["errcode"] != tt.code || body["error"] == "" || len(body) != 2+len(tt.extra) {
				t.Fatalf("%d %v, want %d %s", code, body, tt.status, tt.code)
			}
			for k, v := range tt.extra {
				if body[k] != v {
					t.Errorf("%s = %v, want %v", k, body[k], v)
				}
			}
		})
	}
}

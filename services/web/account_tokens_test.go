package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/errs"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
)

// fakeTokens keeps personal sessions as the token service would, for one
// person: alice's, and one of somebody else.
type fakeTokens struct {
	tokenv1.TokenServiceClient
	sessions []*tokenv1.Session
	created  []*tokenv1.CreatePersonalSessionRequest
	ended    []string
}

func (f *fakeTokens) ListSessions(_ context.Context, req *tokenv1.ListSessionsRequest, _ ...grpc.CallOption) (*tokenv1.ListSessionsResponse, error) {
	var out []*tokenv1.Session
	for _, s := range f.sessions {
		if s.GetUserId() == req.GetUserId() {
			out = append(out, s)
		}
	}
	return &tokenv1.ListSessionsResponse{Sessions: out}, nil
}

func (f *fakeTokens) CreatePersonalSession(_ context.Context, req *tokenv1.CreatePersonalSessionRequest, _ ...grpc.CallOption) (*tokenv1.CreatePersonalSessionResponse, error) {
	f.created = append(f.created, req)
	s := &tokenv1.Session{SessionId: "01HPPPPPPPPPPPPPPPPPPPPPP" + string(rune('0'+len(f.created))), Kind: "personal", UserId: alice.GetId(),
		DeviceDisplayName: req.GetName(), Scope: req.GetScope(), CreatedAt: timestamppb.Now()}
	f.sessions = append(f.sessions, s)
	return &tokenv1.CreatePersonalSessionResponse{Session: s, AccessToken: "mpt_THEONEANDONLYTOKENSHOWNONCE_abcdef"}, nil
}

func (f *fakeTokens) EndSession(_ context.Context, req *tokenv1.EndSessionRequest, _ ...grpc.CallOption) (*tokenv1.EndSessionResponse, error) {
	for _, s := range f.sessions {
		if s.GetSessionId() == req.GetSessionId() {
			f.ended = append(f.ended, req.GetSessionId())
			s.EndedAt = timestamppb.Now()
			return &tokenv1.EndSessionResponse{}, nil
		}
	}
	return nil, errs.NotFound("no such session")
}

// signedInClient signs alice in and returns her browser.
func (e *testEnv) signedInClient(t *testing.T) *http.Client {
	t.Helper()
	c := e.client()
	_, body := get(t, c, e.srv.URL+"/login")
	resp, _ := post(t, c, e.srv.URL+"/login", url.Values{"csrf": {csrfField.FindStringSubmatch(body)[1]}, "username": {"alice"}, "password": {"alice's password"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in: %d", resp.StatusCode)
	}
	return c
}

// The tokens page: a token is made with the form's choices and shown once;
// only the person's own live tokens are listed and revoked; forms need
// their CSRF token.
func TestTokensPage(t *testing.T) {
	e := newTestEnv(t)
	tokens := &fakeTokens{sessions: []*tokenv1.Session{
		{SessionId: "01HOTHERSOTHERSOTHERSOTHER", Kind: "personal", UserId: "01HBOBBOBBOBBOBBOBBOBBOBBO", DeviceDisplayName: "Bob's bot"},
		{SessionId: "01HOAUTHOAUTHOAUTHOAUTHOAU", Kind: "oauth", UserId: alice.GetId(), ClientId: "c1"},
		{SessionId: "01HOLDOLDOLDOLDOLDOLDOLDOL", Kind: "personal", UserId: alice.GetId(), DeviceDisplayName: "Old script",
			ExpiresAt: timestamppb.New(time.Now().Add(-time.Minute)), LastActiveAt: timestamppb.Now()},
	}}
	e.svc.token = tokens
	c := e.signedInClient(t)
	page := e.srv.URL + "/account/tokens"
	resp, body := get(t, c, page)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Old script") || !strings.Contains(body, "Expired") || strings.Contains(body, "Bob&#39;s bot") {
		t.Fatalf("tokens page: %d\n%s", resp.StatusCode, body)
	}
	if strings.Contains(body, `id="token_admin"`) {
		t.Fatal("the admin API is offered to someone who is not an administrator")
	}
	csrf := csrfField.FindAllStringSubmatch(body, -1)
	createCSRF := csrf[len(csrf)-1][1] // the create form is last

	// Without a CSRF token nothing is made.
	if resp, _ := post(t, c, page, url.Values{"name": {"x"}}); resp.StatusCode != http.StatusForbidden || len(tokens.created) != 0 {
		t.Fatalf("no CSRF: %d, %d made", resp.StatusCode, len(tokens.created))
	}
	for name, form := range map[string]url.Values{
		"no name":           {"name": {" "}},
		"not a number":      {"name": {"x"}, "expires_value": {"soon"}, "expires_unit": {"days"}},
		"more than a year":  {"name": {"x"}, "expires_value": {"400"}, "expires_unit": {"days"}},
		"an unknown unit":   {"name": {"x"}, "expires_value": {"3"}, "expires_unit": {"weeks"}},
		"a negative number": {"name": {"x"}, "expires_value": {"-3"}, "expires_unit": {"days"}},
	} {
		form.Set("csrf", createCSRF)
		if resp, _ := post(t, c, page, form); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %d", name, resp.StatusCode)
		}
	}
	if len(tokens.created) != 0 {
		t.Fatalf("made with bad input: %v", tokens.created)
	}
	resp, body = post(t, c, page, url.Values{"csrf": {createCSRF}, "name": {"Backup script"}, "expires_value": {"2"}, "expires_unit": {"hours"},
		"device": {"on"}, "admin": {"on"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "mpt_THEONEANDONLYTOKENSHOWNONCE_abcdef") || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("created: %d %v\n%s", resp.StatusCode, resp.Header, body)
	}
	req := tokens.created[0]
	if req.GetName() != "Backup script" || req.GetExpiresIn().AsDuration() != 2*time.Hour ||
		!strings.HasPrefix(req.GetScope(), "urn:matrix:client:api:* urn:matrix:client:device:") || strings.Contains(req.GetScope(), "admin") {
		t.Fatalf("asked the token service for %v", req)
	}
	if _, body = get(t, c, page); strings.Contains(body, "THEONEANDONLY") {
		t.Fatal("the token is shown again")
	}
	revokeCSRF := csrfField.FindAllStringSubmatch(body, -1)[1][1] // after the sign-out form's
	// Somebody else's token, and a session that is not a token, look gone.
	for _, id := range []string{"01HOTHERSOTHERSOTHERSOTHER", "01HOAUTHOAUTHOAUTHOAUTHOAU"} {
		if resp, _ := post(t, c, page+"/revoke", url.Values{"csrf": {revokeCSRF}, "id": {id}}); resp.StatusCode != http.StatusNotFound {
			t.Errorf("revoke %s: %d", id, resp.StatusCode)
		}
	}
	if resp, _ := post(t, c, page+"/revoke", url.Values{"csrf": {revokeCSRF}, "id": {"01HOLDOLDOLDOLDOLDOLDOLDOL"}}); resp.StatusCode != http.StatusSeeOther ||
		resp.Header.Get("Location") != "/account/tokens?done=token_revoked" {
		t.Fatalf("revoke: %d %v", resp.StatusCode, resp.Header)
	}
	if len(tokens.ended) != 1 || tokens.ended[0] != "01HOLDOLDOLDOLDOLDOLDOLDOL" {
		t.Fatalf("ended %v", tokens.ended)
	}
}

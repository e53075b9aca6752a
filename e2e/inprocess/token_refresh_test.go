package inprocess

import (
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"gatehouse.dev/services/token"
)

// refresh posts the refresh_token grant for the public client c.
func (st *stack) refresh(t *testing.T, c client, refreshToken string) reply {
	t.Helper()
	return st.tokenRequest(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}, "client_id": {c.id}}, nil)
}

// Every refresh rotates both tokens; the rotated-out refresh token presented
// within the grace period (a concurrent refresh) is refused without harm.
func TestRefreshRotation(t *testing.T) {
	st := newStack(t) // a 10-second grace
	alice := st.user(t, "alice")
	c := st.publicClient(t)
	first := st.session(t, c, alice)

	second := st.refresh(t, c, first.refresh).tokens(t, "refresh")
	if second.access == first.access || second.refresh == first.refresh || second.refresh == "" || second.scope != first.scope {
		t.Fatalf("refresh did not rotate: %+v after %+v", second, first)
	}
	st.wantActive(t, "rotated-out access token", first.access, false)
	st.wantActive(t, "rotated-out refresh token", first.refresh, false)
	got := st.wantActive(t, "new access token", second.access, true)
	if got["sub"] != alice.GetId() {
		t.Fatalf("new access token: %v", got)
	}

	// Within the grace: refused, and the session lives on.
	st.refresh(t, c, first.refresh).wantOAuthError(t, "rotated-out token within the grace", http.StatusBadRequest, "invalid_grant")
	st.wantActive(t, "session after a refresh within the grace", second.access, true)
	third := st.refresh(t, c, second.refresh).tokens(t, "second refresh")
	st.wantActive(t, "token of the second refresh", third.access, true)
}

// A consumed refresh token presented after the grace is a replay: it ends the
// whole session (MSC2964), newest tokens included.
func TestRefreshReuseEndsSession(t *testing.T) {
	st := newStack(t, func(c *token.Config) { c.RefreshReuseGrace = 0 })
	alice := st.user(t, "alice")
	c := st.publicClient(t)
	first := st.session(t, c, alice)
	second := st.refresh(t, c, first.refresh).tokens(t, "refresh")

	st.refresh(t, c, first.refresh).wantOAuthError(t, "replayed refresh token", http.StatusBadRequest, "invalid_grant")
	st.wantActive(t, "newest access token after a replay", second.access, false)
	st.wantActive(t, "newest refresh token after a replay", second.refresh, false)
	st.refresh(t, c, second.refresh).wantOAuthError(t, "refresh of an ended session", http.StatusBadRequest, "invalid_grant")
}

// Of several concurrent refreshes with one token exactly one wins, and the
// session survives the others.
func TestConcurrentRefreshesHaveOneWinner(t *testing.T) {
	st := newStack(t)
	alice := st.user(t, "alice")
	c := st.publicClient(t)
	tok := st.session(t, c, alice)
	const racers = 6
	replies := make([]reply, racers)
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() { replies[i] = st.refresh(t, c, tok.refresh) })
	}
	wg.Wait()
	var winner tokens
	wins := 0
	for _, r := range replies {
		switch {
		case r.status == http.StatusOK:
			wins++
			winner = r.tokens(t, "winning refresh")
		case r.str("error") != "invalid_grant":
			t.Fatalf("losing refresh: %d %s", r.status, r.raw)
		}
	}
	if wins != 1 {
		t.Fatalf("%d refreshes won", wins)
	}
	st.wantActive(t, "the winner's access token", winner.access, true)
	st.refresh(t, c, winner.refresh).tokens(t, "refresh after the race")
}

// Bad refresh requests are refused, and none of them harms the session.
func TestRefreshBadInput(t *testing.T) {
	st := newStack(t)
	alice := st.user(t, "alice")
	c := st.publicClient(t)
	other := st.publicClient(t)
	confidential := st.confidentialClient(t, "client_secret_basic", "client_credentials")
	tok := st.session(t, c, alice)
	cc := st.tokenRequest(t, url.Values{"grant_type": {"client_credentials"}}, basicAuth(confidential.id, confidential.secret)).tokens(t, "client_credentials")

	tests := []struct {
		name   string
		form   url.Values
		edit   func(*http.Request)
		status int
		code   string
	}{
		{"no refresh token", url.Values{"client_id": {c.id}}, nil, http.StatusBadRequest, "invalid_request"},
		{"another public client", url.Values{"refresh_token": {tok.refresh}, "client_id": {other.id}}, nil, http.StatusBadRequest, "invalid_grant"},
		{"a client not registered for refresh", url.Values{"refresh_token": {tok.refresh}}, basicAuth(confidential.id, confidential.secret), http.StatusBadRequest, "unauthorized_client"},
		{"the access token", url.Values{"refresh_token": {tok.access}, "client_id": {c.id}}, nil, http.StatusBadRequest, "invalid_grant"},
		{"a client_credentials token", url.Values{"refresh_token": {cc.access}, "client_id": {c.id}}, nil, http.StatusBadRequest, "invalid_grant"},
		{"a forged MAC", url.Values{"refresh_token": {flip(tok.refresh, len(tok.refresh)-1)}, "client_id": {c.id}}, nil, http.StatusBadRequest, "invalid_grant"},
		{"a changed body", url.Values{"refresh_token": {flip(tok.refresh, 6)}, "client_id": {c.id}}, nil, http.StatusBadRequest, "invalid_grant"},
		{"garbage", url.Values{"refresh_token": {"mar_not-a-token"}, "client_id": {c.id}}, nil, http.StatusBadRequest, "invalid_grant"},
		{"no client", url.Values{"refresh_token": {tok.refresh}}, nil, http.StatusUnauthorized, "invalid_client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.form.Set("grant_type", "refresh_token")
			st.tokenRequest(t, tt.form, tt.edit).wantOAuthError(t, tt.name, tt.status, tt.code)
		})
	}
	st.wantActive(t, "access token after the refused refreshes", tok.access, true)
	st.refresh(t, c, tok.refresh).tokens(t, "rightful refresh")
}

// flip changes the character at i of token to another of the same alphabet.
func flip(token string, i int) string {
	b := []byte(token)
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

// The access token's lifetime is the configured one.
func TestAccessTokenLifetime(t *testing.T) {
	st := newStack(t, func(c *token.Config) { c.AccessTTL = 90 * time.Second })
	alice := st.user(t, "alice")
	c := st.publicClient(t)
	tok := st.session(t, c, alice)
	if tok.expiresIn < 80 || tok.expiresIn > 90 {
		t.Fatalf("expires_in %v, want about 90", tok.expiresIn)
	}
	got := st.wantActive(t, "access token", tok.access, true)
	exp, _ := got["exp"].(float64)
	iat, _ := got["iat"].(float64)
	if d := exp - iat; d < 85 || d > 95 {
		t.Fatalf("exp - iat = %v, want about 90: %v", d, got)
	}
}

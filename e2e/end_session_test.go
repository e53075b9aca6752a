package e2e

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// TestRPInitiatedLogout logs out of Gatehouse from an application (OpenID
// Connect RP-Initiated Logout 1.0) in Chromium, with axe on the
// confirmation page: discovery names end_session_endpoint; registration
// takes post_logout_redirect_uris under the redirect URI rules; a valid
// id_token_hint of the browser's session signs out at once and returns to
// the registered URI with state; without a hint, or with a stale one (its
// session ended), the page asks first; an unregistered URI, a URI without a
// client, or a client_id that is not the hint's audience end on a page here,
// never at the URI; ui_locales picks the language.
func TestRPInitiatedLogout(t *testing.T) {
	e := newOAuthEnv(t)
	b := newBrowser(t)
	cb := newCallbackServer(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gatehouse serve log (end):\n%s", tail(e.s.log.String()))
		}
	})
	var meta struct {
		EndSession string `json:"end_session_endpoint"`
	}
	if err := e.provider.Claims(&meta); err != nil || meta.EndSession != e.issuer+"oauth2/logout" {
		t.Fatalf("discovery's end_session_endpoint %q (%v)", meta.EndSession, err)
	}
	signedOut := cb.URL + "/signed-out"
	base := map[string]any{
		"client_name": "Logout Client", "client_uri": "https://client.example.com/", "application_type": "native",
		"redirect_uris": []string{cb.redirectURL()}, "token_endpoint_auth_method": "none",
		"grant_types": []string{"authorization_code"}, "response_types": []string{"code"},
	}
	with := func(uris ...string) map[string]any {
		m := map[string]any{}
		for k, v := range base {
			m[k] = v
		}
		m["post_logout_redirect_uris"] = uris
		return m
	}
	for _, bad := range []string{"https://evil.example/bye", "javascript:alert(1)", "http://client.example.com/bye"} {
		if got := e.register(t, with(bad), http.StatusBadRequest); got["error"] != "invalid_client_metadata" {
			t.Errorf("post_logout_redirect_uri %q: %v", bad, got)
		}
	}
	reg := e.register(t, with(signedOut), http.StatusCreated)
	client := oauth2.Config{ClientID: reg["client_id"].(string), Endpoint: e.provider.Endpoint(), RedirectURL: cb.redirectURL(), Scopes: []string{"openid"}}

	signIn := func(state string) string {
		t.Helper()
		verifier := oauth2.GenerateVerifier()
		b.open("authorize", client.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)))
		if strings.Contains(b.location(), "/login?") {
			b.fill("username", "alice")
			b.fill("password", "alice's password")
			b.submit("sign in", "button[type=submit]")
		}
		b.submit("allow", `button[value="allow"]`)
		tok, err := client.Exchange(context.Background(), cb.last(t).Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		return tok.Extra("id_token").(string)
	}
	signedIn := func() bool {
		t.Helper()
		b.open("account", e.issuer+"account")
		return strings.Contains(b.location(), "/account") && !strings.Contains(b.location(), "/login")
	}
	logout := func(params url.Values) string { return e.issuer + "oauth2/logout?" + params.Encode() }
	landed := func(state string) {
		t.Helper()
		u, err := url.Parse(b.location())
		if err != nil || u.Path != "/signed-out" || u.Query().Get("state") != state || u.Host != strings.TrimPrefix(cb.URL, "http://") {
			t.Errorf("after logout the browser is at %s, want %s?state=%s", b.location(), signedOut, state)
		}
	}

	// A valid hint of this browser's session: signed out at once.
	hint := signIn("s1")
	b.open("logout with a hint", logout(url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {signedOut}, "state": {"bye-1"}}))
	landed("bye-1")
	if signedIn() {
		t.Error("still signed in after a logout with a valid hint")
	}

	// No hint: the page asks (in French with ui_locales), then signs out.
	signIn("s2")
	status := b.open("logout without a hint", logout(url.Values{"client_id": {client.ClientID}, "post_logout_redirect_uri": {signedOut},
		"state": {"bye-2"}, "ui_locales": {"fr-CA fr"}}))
	if text := b.text("main"); status != http.StatusOK || !strings.Contains(text, "Logout Client demande à vous déconnecter") {
		t.Fatalf("the confirmation page: %d\n%s", status, b.pageText())
	}
	b.page("end-session-confirm-fr")
	b.open("logout without a hint", logout(url.Values{"client_id": {client.ClientID}, "post_logout_redirect_uri": {signedOut}, "state": {"bye-2"}}))
	b.page("end-session-confirm")
	if !signedInCookie(b, e.issuer) {
		t.Fatal("the confirmation page signed out before the answer")
	}
	b.submit("sign out", `button[value="sign_out"]`)
	landed("bye-2")
	if signedIn() {
		t.Error("still signed in after confirming")
	}

	// A stale hint (its session ended): the page asks; staying keeps the session.
	signIn("s3")
	b.open("logout with a stale hint", logout(url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {signedOut}, "state": {"bye-3"}}))
	if !strings.Contains(b.text("main"), "asks to sign you out") {
		t.Fatalf("a stale hint did not ask:\n%s", b.pageText())
	}
	b.submit("stay", `button[value="stay"]`)
	if !strings.Contains(b.text("main"), "still signed in") || !signedIn() {
		t.Errorf("staying signed in did not keep the session:\n%s", b.pageText())
	}

	// Never an open redirect.
	fresh := signIn("s4")
	for name, params := range map[string]url.Values{
		"an unregistered URI":       {"client_id": {client.ClientID}, "post_logout_redirect_uri": {"https://evil.example/"}},
		"a URI of another client":   {"client_id": {e.client.ClientID}, "post_logout_redirect_uri": {signedOut}},
		"a URI without a client":    {"post_logout_redirect_uri": {signedOut}},
		"a hint of another client":  {"id_token_hint": {fresh}, "client_id": {e.client.ClientID}, "post_logout_redirect_uri": {signedOut}},
		"an unknown client":         {"client_id": {"nosuchclient"}, "post_logout_redirect_uri": {signedOut}},
		"a URI that is a near miss": {"client_id": {client.ClientID}, "post_logout_redirect_uri": {signedOut + "/"}},
	} {
		resp, err := plainHTTP.Get(logout(params))
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" || !strings.Contains(body, "<html") {
			t.Errorf("%s: %d Location %q", name, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	if !signedIn() {
		t.Error("a refused logout request signed the browser out")
	}
	// The application may POST the request from its own site (§2): it is
	// not refused as a cross-site form; with nobody signed in there, it
	// returns at once.
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"oauth2/logout", strings.NewReader(url.Values{
		"id_token_hint": {fresh}, "post_logout_redirect_uri": {signedOut}, "state": {"bye-5"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://client.example.com")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err := plainHTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != signedOut+"?state=bye-5" {
		t.Errorf("a cross-site POST: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// signedInCookie reports whether the browser holds a session cookie for base.
func signedInCookie(b *browser, base string) bool {
	for _, c := range b.cookies(base) {
		if c.Name == "gatehouse-session" && c.Value != "" {
			return true
		}
	}
	return false
}

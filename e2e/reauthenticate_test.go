package e2e

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authorizev1 "gatehouse.dev/proto/gatehouse/authorize/v1"
)

// idClaims are the ID token's claims about the authentication.
type idClaims struct {
	AuthTime int64    `json:"auth_time"`
	AMR      []string `json:"amr"`
	ACR      string   `json:"acr"`
}

// TestPromptLoginAndMaxAgeInBrowser: an application's prompt=login and
// max_age send a signed-in person to authenticate again before the consent
// (the reauthenticate page passes axe-core), the ID tokens say when and how
// (auth_time, amr, and acr when asked for with acr_values), and the
// authorize service itself refuses to approve such a request with an older
// authentication, whatever the web pages do.
func TestPromptLoginAndMaxAgeInBrowser(t *testing.T) {
	e := newOAuthEnv(t)
	b := newBrowser(t)
	cb := newCallbackServer(t)
	client := e.client
	client.RedirectURL = cb.redirectURL()
	ctx := context.Background()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gatehouse serve log (end):\n%s", tail(e.s.log.String()))
		}
	})
	verifier := e.provider.Verifier(&oidc.Config{ClientID: client.ClientID})
	verifiers := map[string]string{} // the authorizations' PKCE verifiers, by state
	// flow runs an authorization in the browser up to the consent, allows
	// it, and returns the ID token's claims.
	consentAndToken := func(state string) idClaims {
		t.Helper()
		if !strings.Contains(b.location(), "/consent?grant=") {
			t.Fatalf("%s: not at the consent page:\n%s", state, b.pageText())
		}
		b.submit("allow", `button[value="allow"]`)
		q := cb.last(t)
		if q.Get("state") != state {
			t.Fatalf("callback %v, want state %s", q, state)
		}
		tok, err := client.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifiers[state]))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := tok.Extra("id_token").(string)
		idt, err := verifier.Verify(ctx, raw)
		if err != nil {
			t.Fatalf("id token: %v", err)
		}
		var c idClaims
		if err := idt.Claims(&c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	start := func(state string, extra ...oauth2.AuthCodeOption) {
		t.Helper()
		verifiers[state] = oauth2.GenerateVerifier()
		b.open("authorize "+state, client.AuthCodeURL(state, append(extra, oauth2.S256ChallengeOption(verifiers[state]))...))
	}

	// A first sign-in with the password.
	start("first", oauth2.SetAuthURLParam("acr_values", "urn:gatehouse:acr:mfa"))
	b.fill("username", "alice")
	b.fill("password", "alice's password")
	b.submit("sign in", `form:not([data-passkey]) button[type=submit]`)
	first := consentAndToken("first")
	if !slices.Equal(first.AMR, []string{"pwd"}) || first.ACR != "urn:gatehouse:acr:sfa" || first.AuthTime == 0 {
		t.Fatalf("first ID token: %+v", first)
	}

	// prompt=login: signed in, yet asked again.
	time.Sleep(1100 * time.Millisecond) // auth_time has whole seconds
	start("again", oauth2.SetAuthURLParam("prompt", "login"))
	if !strings.Contains(b.location(), "/account/confirm?") {
		t.Fatalf("prompt=login did not ask for the password:\n%s", b.pageText())
	}
	b.page("reauthenticate")
	b.fill("password", "alice's password")
	b.submit("confirm", `form[action*="/account/confirm"]:not([data-passkey]) button[type=submit]`)
	again := consentAndToken("again")
	if again.AuthTime <= first.AuthTime || !slices.Equal(again.AMR, []string{"pwd"}) || again.ACR != "" {
		t.Fatalf("after prompt=login: %+v (first %+v)", again, first)
	}

	// max_age=1, two seconds later: asked again; a large max_age is not.
	time.Sleep(2100 * time.Millisecond)
	start("max-age-large", oauth2.SetAuthURLParam("max_age", "3600"))
	if c := consentAndToken("max-age-large"); c.AuthTime != again.AuthTime {
		t.Fatalf("max_age=3600 changed auth_time: %+v", c)
	}
	start("max-age", oauth2.SetAuthURLParam("max_age", "1"))
	if !strings.Contains(b.location(), "/account/confirm?") {
		t.Fatalf("max_age=1 did not ask for the password:\n%s", b.pageText())
	}
	b.fill("password", "alice's password")
	b.submit("confirm", `form[action*="/account/confirm"]:not([data-passkey]) button[type=submit]`)
	if c := consentAndToken("max-age"); c.AuthTime <= again.AuthTime {
		t.Fatalf("after max_age: %+v", c)
	}

	// Bypassing the pages: a session that authenticated before a
	// prompt=login request cannot approve it.
	session := e.signedIn(t)
	time.Sleep(1100 * time.Millisecond)
	resp, err := plainHTTP.Get(client.AuthCodeURL("bypass", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("prompt", "login")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || loc.Query().Get("grant") == "" {
		t.Fatalf("authorize: %d %s", resp.StatusCode, loc)
	}
	_, err = authorizev1.NewAuthorizeServiceClient(e.conn).ApproveGrant(session, &authorizev1.ApproveGrantRequest{GrantId: loc.Query().Get("grant")})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("approving prompt=login with an older authentication: %v", err)
	}
	// A malformed max_age is the client's mistake.
	resp, err = plainHTTP.Get(client.AuthCodeURL("bad", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("max_age", "-5")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc, _ := url.Parse(resp.Header.Get("Location")); loc == nil || loc.Query().Get("error") != "invalid_request" {
		t.Fatalf("max_age=-5: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
}

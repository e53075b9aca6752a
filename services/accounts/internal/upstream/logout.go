package upstream

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"gatehouse.dev/platform/errs"
)

// backchannelLogoutEvent is the member of a logout token's events claim
// (OpenID Connect Back-Channel Logout 1.0, §2.4).
const backchannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// logoutTokenMaxAge bounds how old (iat) a logout token may be, and the
// clock skew allowed the other way.
const (
	logoutTokenMaxAge = 10 * time.Minute
	clockSkew         = 2 * time.Minute
)

// LogoutToken is a verified back-channel logout token.
type LogoutToken struct {
	// JTI identifies the token: it is accepted once.
	JTI string
	// SID is the provider's session to end; Subject the person (identity
	// subject, after the subject template) whose sessions end when there is
	// no sid. At least one is set.
	SID, Subject string
	// Expires is when the token stops being valid (iat + the max age when it
	// has no exp).
	Expires time.Time
}

// VerifyLogoutToken validates a logout token (§2.6): signed by the
// provider's keys (its JWKS), iss the issuer, aud the client id, iat recent,
// exp not passed, a jti, the back-channel logout event, a sid or a sub, and
// no nonce. Every refusal is errs.KindInvalid, except a provider that cannot
// be reached (unavailable).
func (p *Provider) VerifyLogoutToken(ctx context.Context, raw string, now time.Time) (LogoutToken, error) {
	refuse := func(why string, args ...any) (LogoutToken, error) {
		return LogoutToken{}, errs.Wrap(errs.KindInvalid, "The logout token is not valid.", fmt.Errorf("logout token: "+why, args...))
	}
	if !p.openID() {
		return refuse("provider %s is not an OpenID Connect provider", p.cfg.ID)
	}
	if raw == "" || len(raw) > 16<<10 {
		return refuse("missing or too long")
	}
	e, err := p.endpoints(ctx)
	if err != nil {
		return LogoutToken{}, err
	}
	ctx, cancel := context.WithTimeout(p.withClient(ctx), Timeout)
	defer cancel()
	tok, err := e.oidc.VerifierContext(ctx, &oidc.Config{ClientID: p.cfg.ClientID, SkipExpiryCheck: true, Now: func() time.Time { return now }}).Verify(ctx, raw)
	if err != nil {
		if ctx.Err() != nil || isFetchError(err) {
			return LogoutToken{}, errs.Wrap(errs.KindUnavailable, "The identity provider's keys cannot be read right now.", err)
		}
		return refuse("%v", err)
	}
	var c struct {
		JTI    string                     `json:"jti"`
		SID    string                     `json:"sid"`
		Nonce  *json.RawMessage           `json:"nonce"`
		Events map[string]json.RawMessage `json:"events"`
		IAT    *float64                   `json:"iat"`
		EXP    *float64                   `json:"exp"`
	}
	if err := tok.Claims(&c); err != nil {
		return refuse("claims: %v", err)
	}
	switch {
	case c.JTI == "" || len(c.JTI) > 256:
		return refuse("no jti")
	case c.Nonce != nil:
		return refuse("a nonce is forbidden")
	case c.SID == "" && tok.Subject == "":
		return refuse("neither sid nor sub")
	case c.IAT == nil:
		return refuse("no iat")
	}
	ev, ok := c.Events[backchannelLogoutEvent]
	if !ok || !strings.HasPrefix(strings.TrimSpace(string(ev)), "{") {
		return refuse("events has no %s object", backchannelLogoutEvent)
	}
	iat := time.Unix(int64(*c.IAT), 0)
	if now.Sub(iat) > logoutTokenMaxAge || iat.Sub(now) > clockSkew {
		return refuse("iat %s is not recent", iat)
	}
	expires := iat.Add(logoutTokenMaxAge + clockSkew)
	if c.EXP != nil {
		exp := time.Unix(int64(*c.EXP), 0)
		if now.After(exp.Add(clockSkew)) {
			return refuse("expired at %s", exp)
		}
		expires = exp.Add(clockSkew)
	}
	lt := LogoutToken{JTI: c.JTI, SID: c.SID, Expires: expires}
	if tok.Subject != "" {
		claims, err := decodeClaims(tok.Claims)
		if err != nil {
			return refuse("claims: %v", err)
		}
		lt.Subject = p.templates["subject"].Execute(claims)
	}
	return lt, nil
}

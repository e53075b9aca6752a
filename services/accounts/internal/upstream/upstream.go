// Package upstream talks to upstream identity providers for the accounts
// service: OpenID Connect providers (discovery, ID tokens checked with
// github.com/coreos/go-oidc: signature through the provider's JWKS, cached and
// fetched again when a key id is unknown, so the provider may rotate its
// keys; iss, aud, exp; and here azp, nonce and at_hash) and plain OAuth 2.0
// providers whose claims come from a userinfo endpoint.
//
// The accounts service runs the protocol's server side itself: it builds the
// authorization request, redeems the code with the client's credentials
// (client_secret_basic, client_secret_post, private_key_jwt, or none with
// PKCE), verifies what the provider answers and maps its claims (package
// claimtemplate). Nothing a caller says about an identity is believed: only
// what this package got from the provider in exchange for a code.
//
// Errors carry a kind (platform/errs): unavailable when the provider cannot be
// reached or answers with a server error, permission denied when its answer
// does not verify (a wrong nonce, a bad signature, another audience), failed
// precondition when a required claim is missing, invalid when the code is
// refused (invalid_grant: expired or used).
package upstream

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"gatehouse.dev/platform/claimtemplate"
	"gatehouse.dev/platform/config"
	"gatehouse.dev/platform/errs"
)

// Timeout bounds every call to a provider.
const Timeout = 10 * time.Second

// maxBody bounds what is read of a provider's userinfo answer.
const maxBody = 1 << 20

// Set is the configured providers.
type Set struct {
	list []*Provider
	byID map[string]*Provider
}

// New prepares the providers of the configuration. callbackBase is the
// public URL the providers send the browser back to: the callback of a
// provider is callbackBase + "upstream/callback/<id>". client makes the calls
// to providers (nil: a client with Timeout).
func New(providers []config.UpstreamProvider, callbackBase string, client *http.Client) (*Set, error) {
	if client == nil {
		client = &http.Client{Timeout: Timeout}
	}
	s := &Set{byID: map[string]*Provider{}}
	for _, raw := range providers {
		c := raw.WithDefaults()
		p := &Provider{cfg: c, client: client, redirectURI: callbackBase + "upstream/callback/" + c.ID, templates: map[string]*claimtemplate.Template{}}
		var err error
		switch c.TokenEndpointAuthMethod {
		case "client_secret_basic", "client_secret_post":
			if p.secret, err = c.ReadClientSecret(); err != nil {
				return nil, err
			}
		case "private_key_jwt":
			if p.signer, err = newAssertionSigner(c.PrivateKeyFile, c); err != nil {
				return nil, err
			}
		}
		for name, claim := range map[string]config.UpstreamClaim{"subject": c.Claims.Subject, "localpart": c.Claims.Localpart,
			"displayname": c.Claims.DisplayName, "email": c.Claims.Email} {
			t, err := claimtemplate.Parse(claim.Template)
			if err != nil {
				return nil, fmt.Errorf("upstream provider %s: claims.%s.template: %w", c.ID, name, err)
			}
			p.templates[name] = t
		}
		s.list = append(s.list, p)
		s.byID[c.ID] = p
	}
	return s, nil
}

// Get returns the provider with an id.
func (s *Set) Get(id string) (*Provider, bool) {
	p, ok := s.byID[id]
	return p, ok
}

// BySynapseIdp returns the provider whose synapse_idp_id is idp.
func (s *Set) BySynapseIdp(idp string) (*Provider, bool) {
	for _, p := range s.list {
		if p.cfg.SynapseIdpID != "" && p.cfg.SynapseIdpID == idp {
			return p, true
		}
	}
	return nil, false
}

// List returns the providers in configuration order.
func (s *Set) List() []*Provider { return slices.Clone(s.list) }

// Provider is one upstream identity provider.
type Provider struct {
	cfg         config.UpstreamProvider
	client      *http.Client
	redirectURI string
	secret      string
	signer      *assertionSigner
	templates   map[string]*claimtemplate.Template

	mu       sync.Mutex
	resolved *endpoints // nil until discovery succeeded (or was not needed)
}

// endpoints are where the provider's protocol runs.
type endpoints struct {
	oidc     *oidc.Provider // nil for a plain OAuth 2.0 provider
	auth     string
	token    string
	userinfo string
	pkce     bool
}

// ID is the provider's id.
func (p *Provider) ID() string { return p.cfg.ID }

// Config is the provider's configuration, defaults applied.
func (p *Provider) Config() config.UpstreamProvider { return p.cfg }

// RedirectURI is where the provider sends the browser back.
func (p *Provider) RedirectURI() string { return p.redirectURI }

// openID reports whether the provider is asked for an ID token.
func (p *Provider) openID() bool { return slices.Contains(p.cfg.Scopes, "openid") }

// withClient is ctx carrying the HTTP client for go-oidc and x/oauth2.
func (p *Provider) withClient(ctx context.Context) context.Context {
	return context.WithValue(oidc.ClientContext(ctx, p.client), oauth2.HTTPClient, p.client)
}

// endpoints discovers the provider once (a failure is tried again at the next call).
func (p *Provider) endpoints(ctx context.Context) (*endpoints, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.resolved != nil {
		return p.resolved, nil
	}
	c := p.cfg
	e := &endpoints{auth: c.AuthorizationEndpoint, token: c.TokenEndpoint, userinfo: c.UserinfoEndpoint, pkce: c.PKCE == "always" || c.PKCE == "auto"}
	dctx, cancel := context.WithTimeout(p.withClient(ctx), Timeout)
	defer cancel()
	if c.DiscoveryEnabled() {
		op, err := oidc.NewProvider(dctx, c.Issuer)
		if err != nil {
			return nil, errs.Wrap(errs.KindUnavailable, "The identity provider cannot be reached right now.", fmt.Errorf("discovery of %s: %w", c.Issuer, err))
		}
		var meta struct {
			PKCE     []string `json:"code_challenge_methods_supported"`
			JWKS     string   `json:"jwks_uri"`
			Userinfo string   `json:"userinfo_endpoint"`
		}
		if err := op.Claims(&meta); err != nil {
			return nil, errs.Wrap(errs.KindUnavailable, "The identity provider's configuration cannot be read.", err)
		}
		ep := op.Endpoint()
		e.oidc = op
		if e.auth == "" {
			e.auth = ep.AuthURL
		}
		if e.token == "" {
			e.token = ep.TokenURL
		}
		if e.userinfo == "" {
			e.userinfo = meta.Userinfo
		}
		if c.PKCE == "auto" {
			e.pkce = slices.Contains(meta.PKCE, "S256")
		}
		if c.JWKSURI != "" && c.JWKSURI != meta.JWKS || c.AuthorizationEndpoint != "" || c.TokenEndpoint != "" {
			// Endpoints given by hand replace the discovered ones.
			e.oidc = (&oidc.ProviderConfig{IssuerURL: c.Issuer, AuthURL: e.auth, TokenURL: e.token, UserInfoURL: e.userinfo,
				JWKSURL: cmpOr(c.JWKSURI, meta.JWKS)}).NewProvider(p.withClient(context.WithoutCancel(ctx)))
		}
	} else if p.openID() {
		e.oidc = (&oidc.ProviderConfig{IssuerURL: c.Issuer, AuthURL: e.auth, TokenURL: e.token, UserInfoURL: e.userinfo,
			JWKSURL: c.JWKSURI}).NewProvider(p.withClient(context.WithoutCancel(ctx)))
	}
	p.resolved = e
	return e, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Start is the beginning of one sign-in: where to send the browser, and what
// to bind to it until it comes back.
type Start struct {
	URL      string
	State    string
	Nonce    string
	Verifier string // empty without PKCE
}

// Start prepares an authorization request with a fresh state, nonce and PKCE verifier.
func (p *Provider) Start(ctx context.Context) (Start, error) {
	e, err := p.endpoints(ctx)
	if err != nil {
		return Start{}, err
	}
	st := Start{State: random(), Nonce: random()}
	q := url.Values{
		"response_type": {"code"},
		"client_id":     {p.cfg.ClientID},
		"redirect_uri":  {p.redirectURI},
		"scope":         {strings.Join(p.cfg.Scopes, " ")},
		"state":         {st.State},
	}
	if p.openID() {
		q.Set("nonce", st.Nonce)
	}
	if e.pkce {
		st.Verifier = oauth2.GenerateVerifier()
		q.Set("code_challenge", oauth2.S256ChallengeFromVerifier(st.Verifier))
		q.Set("code_challenge_method", "S256")
	}
	if p.cfg.ResponseMode == "form_post" {
		q.Set("response_mode", "form_post")
	}
	u, err := url.Parse(e.auth)
	if err != nil {
		return Start{}, errs.Internalf("upstream provider %s: authorization endpoint %q: %v", p.cfg.ID, e.auth, err)
	}
	extra := u.Query()
	for k, v := range q {
		extra[k] = v
	}
	u.RawQuery = extra.Encode()
	st.URL = u.String()
	return st, nil
}

// random returns 128 random bits in base64url.
func random() string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Identity is what a provider vouched for in exchange for a code.
type Identity struct {
	// Subject is the claims.subject template's value: who the person is at
	// the provider.
	Subject string
	// SID is the provider's session (the ID token's sid), if it gave one.
	SID string
	// Claims are the ID token's claims, with userinfo's over them.
	Claims map[string]any
}

// Complete redeems a code and verifies the provider's answer: the ID token
// (signature, iss, aud, azp, exp, nonce, at_hash) when openid is asked, and
// userinfo when configured (or when there is no ID token).
func (p *Provider) Complete(ctx context.Context, code, verifier, nonce string) (Identity, error) {
	e, err := p.endpoints(ctx)
	if err != nil {
		return Identity{}, err
	}
	if code == "" || len(code) > 4096 {
		return Identity{}, errs.InvalidField("code", "the provider sent no usable code")
	}
	ctx, cancel := context.WithTimeout(p.withClient(ctx), Timeout)
	defer cancel()
	tok, err := p.exchange(ctx, e, code, verifier)
	if err != nil {
		return Identity{}, err
	}
	id := Identity{Claims: map[string]any{}}
	if p.openID() {
		raw, _ := tok.Extra("id_token").(string)
		if raw == "" {
			return Identity{}, errs.PermissionDenied("The identity provider sent no ID token.")
		}
		claims, sid, err := p.verifyIDToken(ctx, e, raw, nonce, tok.AccessToken)
		if err != nil {
			return Identity{}, err
		}
		id.Claims, id.SID = claims, sid
	}
	if p.cfg.FetchUserinfo || !p.openID() {
		info, err := p.userinfo(ctx, e, tok)
		if err != nil {
			return Identity{}, err
		}
		if sub, ok := id.Claims["sub"].(string); ok && info["sub"] != nil && info["sub"] != sub {
			return Identity{}, errs.PermissionDenied("The identity provider's userinfo is about someone else.")
		}
		for k, v := range info {
			if k != "iss" && k != "aud" && k != "sub" || id.Claims[k] == nil {
				id.Claims[k] = v
			}
		}
	}
	id.Subject = p.templates["subject"].Execute(id.Claims)
	if id.Subject == "" {
		return Identity{}, missingClaim("subject")
	}
	if len(id.Subject) > 255 {
		return Identity{}, errs.PermissionDenied("The identity provider's subject is too long.")
	}
	return id, nil
}

// exchange redeems the code at the token endpoint.
func (p *Provider) exchange(ctx context.Context, e *endpoints, code, verifier string) (*oauth2.Token, error) {
	cfg := oauth2.Config{ClientID: p.cfg.ClientID, RedirectURL: p.redirectURI,
		Endpoint: oauth2.Endpoint{AuthURL: e.auth, TokenURL: e.token}}
	var opts []oauth2.AuthCodeOption
	switch p.cfg.TokenEndpointAuthMethod {
	case "client_secret_basic":
		cfg.ClientSecret, cfg.Endpoint.AuthStyle = p.secret, oauth2.AuthStyleInHeader
	case "client_secret_post":
		cfg.ClientSecret, cfg.Endpoint.AuthStyle = p.secret, oauth2.AuthStyleInParams
	case "private_key_jwt":
		assertion, err := p.signer.sign(p.cfg.ClientID, e.token)
		if err != nil {
			return nil, errs.Wrap(errs.KindInternal, "", err)
		}
		cfg.Endpoint.AuthStyle = oauth2.AuthStyleInParams
		opts = append(opts, oauth2.SetAuthURLParam("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
			oauth2.SetAuthURLParam("client_assertion", assertion))
	default: // none
		cfg.Endpoint.AuthStyle = oauth2.AuthStyleInParams
	}
	if verifier != "" {
		opts = append(opts, oauth2.VerifierOption(verifier))
	}
	tok, err := cfg.Exchange(ctx, code, opts...)
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode < 500 {
			if re.ErrorCode == "invalid_grant" {
				return nil, errs.Wrap(errs.KindInvalid, "The identity provider refused the sign-in (the code expired or was used); try again.", err)
			}
			return nil, errs.Wrap(errs.KindPermissionDenied, "The identity provider refused to complete the sign-in.", err)
		}
		return nil, errs.Wrap(errs.KindUnavailable, "The identity provider cannot be reached right now.", fmt.Errorf("token endpoint %s: %w", e.token, err))
	}
	return tok, nil
}

// verifyIDToken checks an ID token and returns its claims and sid.
func (p *Provider) verifyIDToken(ctx context.Context, e *endpoints, raw, nonce, accessToken string) (map[string]any, string, error) {
	if e.oidc == nil {
		return nil, "", errs.Internalf("upstream provider %s: no keys to verify ID tokens", p.cfg.ID)
	}
	tok, err := e.oidc.VerifierContext(ctx, &oidc.Config{ClientID: p.cfg.ClientID}).Verify(ctx, raw)
	if err != nil {
		if ctx.Err() != nil || isFetchError(err) {
			return nil, "", errs.Wrap(errs.KindUnavailable, "The identity provider's keys cannot be read right now.", err)
		}
		return nil, "", errs.Wrap(errs.KindPermissionDenied, "The identity provider's answer could not be verified.", fmt.Errorf("ID token: %w", err))
	}
	if nonce == "" || subtle.ConstantTimeCompare([]byte(tok.Nonce), []byte(nonce)) != 1 {
		return nil, "", errs.PermissionDenied("The identity provider's answer is not for this sign-in (nonce).")
	}
	claims, err := decodeClaims(tok.Claims)
	if err != nil {
		return nil, "", errs.Wrap(errs.KindPermissionDenied, "The identity provider's answer could not be read.", err)
	}
	azp, _ := claims["azp"].(string)
	if (len(tok.Audience) > 1 || azp != "") && azp != p.cfg.ClientID {
		return nil, "", errs.PermissionDenied("The identity provider's answer is for another application (azp).")
	}
	if tok.AccessTokenHash != "" && accessToken != "" {
		if err := tok.VerifyAccessToken(accessToken); err != nil {
			return nil, "", errs.Wrap(errs.KindPermissionDenied, "The identity provider's answer could not be verified (at_hash).", err)
		}
	}
	sid, _ := claims["sid"].(string)
	return claims, sid, nil
}

// isFetchError reports whether go-oidc failed to fetch keys, not to verify.
func isFetchError(err error) bool {
	s := err.Error()
	return strings.Contains(s, "fetching keys") || strings.Contains(s, "get keys failed")
}

// decodeClaims decodes a JSON object's claims, numbers kept exact.
func decodeClaims(into func(any) error) (map[string]any, error) {
	var raw json.RawMessage
	if err := into(&raw); err != nil {
		return nil, err
	}
	return decodeObject(raw)
}

func decodeObject(raw []byte) (map[string]any, error) {
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errors.New("not a JSON object")
	}
	return m, nil
}

// userinfo reads the userinfo endpoint with the access token.
func (p *Provider) userinfo(ctx context.Context, e *endpoints, tok *oauth2.Token) (map[string]any, error) {
	if e.userinfo == "" {
		return nil, errs.Internalf("upstream provider %s: no userinfo endpoint", p.cfg.ID)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.userinfo, nil)
	if err != nil {
		return nil, errs.Internalf("upstream provider %s: userinfo: %v", p.cfg.ID, err)
	}
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Header.Set("Accept", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "The identity provider cannot be reached right now.", fmt.Errorf("userinfo: %w", err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "The identity provider cannot be reached right now.", fmt.Errorf("userinfo: %w", err))
	}
	switch {
	case resp.StatusCode >= 500:
		return nil, errs.Wrap(errs.KindUnavailable, "The identity provider cannot be reached right now.", fmt.Errorf("userinfo: %s", resp.Status))
	case resp.StatusCode != http.StatusOK:
		return nil, errs.Wrap(errs.KindPermissionDenied, "The identity provider refused to say who you are.", fmt.Errorf("userinfo: %s", resp.Status))
	}
	if ct := resp.Header.Get("Content-Type"); strings.HasPrefix(ct, "application/jwt") {
		return nil, errs.Wrap(errs.KindPermissionDenied, "The identity provider's userinfo is signed, which is not supported.", errors.New("application/jwt userinfo"))
	}
	m, err := decodeObject(body)
	if err != nil {
		return nil, errs.Wrap(errs.KindPermissionDenied, "The identity provider's userinfo could not be read.", err)
	}
	return m, nil
}

// missingClaim is the answer to a required claim the provider did not give.
func missingClaim(name string) error {
	e := errs.FailedPrecondition("The identity provider did not say " + name + ", which this server requires.")
	e.Field = name
	e.Facts = map[string]string{"claim": name}
	return e
}

// Mapped is what a first sign-in would create, from the claims and the
// configured actions.
type Mapped struct {
	Localpart, DisplayName, Email  string
	LocalpartForced, DisplayForced bool
	EmailForced                    bool
	// EmailUnverified is an address the provider gave without saying it is
	// verified: not imported.
	EmailUnverified string
}

// Map applies the claim mapping to a verified identity. A claim whose action
// is require and that renders empty is errs.KindFailedPrecondition with the
// fact "claim" naming it; the email must also be verified to count.
func (p *Provider) Map(id Identity) (Mapped, error) {
	var m Mapped
	one := func(name string, claim config.UpstreamClaim, value *string, forced *bool) error {
		if claim.Action == config.ClaimIgnore {
			return nil
		}
		v := p.templates[name].Execute(id.Claims)
		if v == "" && claim.Action == config.ClaimRequire {
			return missingClaim(name)
		}
		*value = v
		*forced = v != "" && (claim.Action == config.ClaimForce || claim.Action == config.ClaimRequire)
		return nil
	}
	if err := one("localpart", p.cfg.Claims.Localpart, &m.Localpart, &m.LocalpartForced); err != nil {
		return Mapped{}, err
	}
	if err := one("displayname", p.cfg.Claims.DisplayName, &m.DisplayName, &m.DisplayForced); err != nil {
		return Mapped{}, err
	}
	if err := one("email", p.cfg.Claims.Email, &m.Email, &m.EmailForced); err != nil {
		return Mapped{}, err
	}
	if m.Email != "" && !verified(id.Claims["email_verified"]) {
		if p.cfg.Claims.Email.Action == config.ClaimRequire {
			return Mapped{}, missingClaim("email")
		}
		m.EmailUnverified, m.Email, m.EmailForced = m.Email, "", false
	}
	return m, nil
}

// verified reads an email_verified claim: true, or "true" as some providers send it.
func verified(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case string:
		return x == "true"
	}
	return false
}

// ClaimKey is the id of the claim aggregate of an identity:
// accounts.upstream.h<hex HMAC-SHA-256 of "<namespace>\x00<subject>" under
// the claim key> — a keyed hash, since subjects are personal data and some
// providers' are guessable (numbers). The namespace is the provider's id, or
// "synapse:<auth_provider>" for links imported from Synapse.
func ClaimKey(key []byte, namespace, subject string) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(namespace + "\x00" + subject))
	return "h" + hex.EncodeToString(mac.Sum(nil))
}

// SynapseNamespace is the namespace of links imported from Synapse under an auth_provider.
func SynapseNamespace(authProvider string) string { return "synapse:" + authProvider }

// Namespaces are the namespaces a provider's links live in: its id, and
// SynapseNamespace of its synapse_idp_id.
func (p *Provider) Namespaces() []string {
	ns := []string{p.cfg.ID}
	if p.cfg.SynapseIdpID != "" {
		ns = append(ns, SynapseNamespace(p.cfg.SynapseIdpID))
	}
	return ns
}

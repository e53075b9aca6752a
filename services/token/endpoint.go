package token

import (
	"context"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/httpx"
	"gatehouse.dev/platform/ids"
	authorizev1 "gatehouse.dev/proto/gatehouse/authorize/v1"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/token/internal/idtoken"
	"gatehouse.dev/services/token/internal/session"
	"gatehouse.dev/services/token/internal/tokenfmt"

	"google.golang.org/protobuf/types/known/timestamppb"
)

// maxFormBody bounds token, revocation and introspection requests.
const maxFormBody = 64 << 10

// readForm reads an application/x-www-form-urlencoded POST body. Every
// problem is an invalid_request answer, never a 415 or a 5xx.
func readForm(w http.ResponseWriter, r *http.Request) (url.Values, *oauthError) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		return nil, &oauthError{status: http.StatusMethodNotAllowed, code: "invalid_request", description: "use POST"}
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, invalidRequest("the body must be application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, invalidRequest("the body is larger than 64 KiB")
		}
		return nil, invalidRequest("the body is not valid form encoding")
	}
	for k, v := range r.PostForm {
		if len(v) > 1 {
			return nil, invalidRequest("the parameter " + k + " appears more than once")
		}
	}
	return r.PostForm, nil
}

func writeError(w http.ResponseWriter, e *oauthError) {
	httpx.WriteOAuthError(w, e.status, e.code, e.description)
}

// clientRequest reads a form POST from a browser-facing client endpoint and
// authenticates its client; on failure it has answered and returns false.
func (s *Service) clientRequest(w http.ResponseWriter, r *http.Request) (url.Values, *client, bool) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	form, oe := readForm(w, r)
	if oe == nil {
		var c *client
		if c, oe = s.authenticateClient(r.Context(), r, form); oe == nil {
			return form, c, true
		}
	}
	writeError(w, oe)
	return nil, nil, false
}

// handleToken is the token endpoint (RFC 6749 §3.2).
func (s *Service) handleToken(w http.ResponseWriter, r *http.Request) {
	form, c, ok := s.clientRequest(w, r)
	if !ok {
		return
	}
	grantType := form.Get("grant_type")
	if grantType == "" {
		writeError(w, invalidRequest("grant_type is required"))
		return
	}
	var (
		resp map[string]any
		err  error
	)
	switch grantType {
	case "authorization_code", "refresh_token", "client_credentials", deviceCodeGrant:
		if !c.Meta.allows(grantType) {
			writeError(w, &oauthError{status: http.StatusBadRequest, code: "unauthorized_client", description: "this client is not registered for the " + grantType + " grant"})
			return
		}
	default:
		writeError(w, &oauthError{status: http.StatusBadRequest, code: "unsupported_grant_type", description: "unsupported grant_type"})
		return
	}
	from := originOf(r)
	switch grantType {
	case "authorization_code":
		resp, err = s.exchangeCode(r.Context(), c, form, from)
	case "refresh_token":
		resp, err = s.refresh(r.Context(), c, form, from)
	case "client_credentials":
		resp, err = s.clientCredentials(r.Context(), c, form, from)
	case deviceCodeGrant:
		resp, err = s.deviceCode(r.Context(), c, form, from)
	}
	if err != nil {
		writeError(w, toOAuth(s, r.Context(), err))
		return
	}
	httpx.WriteJSON(w, http.StatusOK, resp)
}

// toOAuth maps an error to its OAuth answer; internal causes are logged, not sent.
func toOAuth(s *Service, ctx context.Context, err error) *oauthError {
	var oe *oauthError
	if errors.As(err, &oe) {
		return oe
	}
	switch errs.KindOf(err) {
	case errs.KindFailedPrecondition, errs.KindNotFound:
		return &oauthError{status: http.StatusBadRequest, code: "invalid_grant", description: errs.PublicMessage(err)}
	case errs.KindInvalid:
		return invalidRequest(errs.PublicMessage(err))
	case errs.KindPermissionDenied:
		return &oauthError{status: http.StatusBadRequest, code: "invalid_scope", description: errs.PublicMessage(err)}
	}
	s.logger.ErrorContext(ctx, "token request failed", "err", err)
	return &oauthError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable", description: "the request could not be completed right now; try again"}
}

// pair is a freshly minted token pair and its event.
type pair struct {
	access, refresh string
	issued          *eventsv1.TokensIssued
	expires         time.Time
}

func (s *Service) mint(sessionID string, withRefresh bool) pair {
	p := pair{access: s.minter.New(tokenfmt.AccessToken), expires: session.Expiry(s.now(), s.cfg.AccessTTL)}
	p.issued = &eventsv1.TokensIssued{SessionId: sessionID, AccessHash: tokenfmt.HashString(p.access), AccessExpiresAt: timestamppb.New(p.expires)}
	if withRefresh {
		p.refresh = s.minter.New(tokenfmt.RefreshToken)
		p.issued.RefreshHash = tokenfmt.HashString(p.refresh)
	}
	return p
}

// exchangeCode is the authorization_code grant.
func (s *Service) exchangeCode(ctx context.Context, c *client, form url.Values, from origin) (map[string]any, error) {
	code := form.Get("code")
	if code == "" {
		return nil, invalidRequest("code is required")
	}
	sessionID := ids.New()
	x, err := s.authorize.ExchangeCode(ctx, &authorizev1.ExchangeCodeRequest{
		Code: code, ClientId: c.ID, RedirectUri: form.Get("redirect_uri"), CodeVerifier: form.Get("code_verifier"), SessionId: sessionID,
	})
	if err != nil {
		return nil, err
	}
	if replayed := x.GetReplayedSessionId(); replayed != "" {
		// A code used twice: end everything its first use produced (RFC 6749 §4.1.2).
		if err := s.endSession(ctx, replayed, "code_reused", "client:"+c.ID); err != nil {
			s.logger.ErrorContext(ctx, "ending the session of a replayed code", "session_id", replayed, "err", err)
		}
		return nil, errs.FailedPrecondition("The authorization code has already been used; the tokens issued with it are revoked.")
	}
	p := s.mint(sessionID, c.Meta.allows("refresh_token"))
	start := &eventsv1.SessionStarted{
		SessionId: sessionID, Kind: "oauth", ClientId: c.ID, UserId: x.GetUserId(), Username: x.GetUsername(),
		Scope: x.GetScope(), DeviceId: deviceOf(x.GetScope()), GrantId: x.GetGrantId(), Tokens: p.issued,
		IpAddress: from.ip, UserAgent: from.userAgent,
	}
	if err := s.start(ctx, start, "user:"+x.GetUserId()); err != nil {
		return nil, err
	}
	resp := s.tokenResponse(p, x.GetScope())
	if hasScope(x.GetScope(), "openid") {
		idt, err := s.idToken(c.ID, x, p.access)
		if err != nil {
			return nil, err
		}
		resp["id_token"] = idt
	}
	return resp, nil
}

// start appends a session's first event and waits until introspection on any
// replica can find its tokens. A locked or deactivated user gets no session.
func (s *Service) start(ctx context.Context, ev *eventsv1.SessionStarted, actor string) error {
	if err := s.refuseBlocked(ctx, ev.GetUserId()); err != nil {
		return err
	}
	appended, err := s.log.Append(ctx, eventlog.Write{Expect: eventlog.ExpectNew(), Event: eventlog.Event{
		Aggregate: sessionRef(ev.GetSessionId()), Actor: actor, Payload: ev,
	}})
	if err == nil {
		err = s.projections.WaitFor(ctx, sessionsProjection, appended.Last())
	}
	if err != nil {
		s.abandon(ctx, ev.GetSessionId(), err) // the append may have landed: no tokens go out (abandon.go)
		return err
	}
	return s.provisionStarted(ctx, ev) // the homeserver gets the device before the tokens go out (provision_events.go)
}

func (s *Service) tokenResponse(p pair, scope string) map[string]any {
	resp := map[string]any{
		"access_token": p.access,
		"token_type":   "Bearer",
		"expires_in":   int(time.Until(p.expires).Round(time.Second).Seconds()),
		"scope":        scope,
	}
	if p.refresh != "" {
		resp["refresh_token"] = p.refresh
	}
	return resp
}

func (s *Service) idToken(clientID string, x *authorizev1.ExchangeCodeResponse, access string) (string, error) {
	alg := s.keys.DefaultAlgorithm()
	atHash, err := idtoken.HalfHash(alg, access)
	if err != nil {
		return "", err
	}
	now := s.now()
	var authTime time.Time
	if x.GetAuthTime() != nil {
		authTime = x.GetAuthTime().AsTime()
	}
	return idtoken.Sign(s.keys, alg, idtoken.Claims{
		Issuer: s.cfg.Issuer, Subject: x.GetUserId(), Audience: clientID, AuthorizedParty: clientID,
		IssuedAt: now, Expiry: now.Add(time.Hour), AuthTime: authTime, Nonce: x.GetNonce(),
		AccessTokenHash: atHash, Extra: map[string]any{"username": x.GetUsername()},
	})
}

// refresh is the refresh_token grant: rotation on every use, decided on the
// session aggregate, so of two concurrent refreshes exactly one wins; a
// consumed token presented again ends the session (MSC2964).
func (s *Service) refresh(ctx context.Context, c *client, form url.Values, from origin) (map[string]any, error) {
	presented := form.Get("refresh_token")
	if presented == "" {
		return nil, invalidRequest("refresh_token is required")
	}
	invalid := errs.FailedPrecondition("The refresh token is invalid.")
	if kind, err := s.minter.Parse(presented); err != nil || kind != tokenfmt.RefreshToken {
		return nil, invalid
	}
	hash := tokenfmt.HashString(presented)
	var sessionID string
	if err := s.pool.QueryRow(ctx, `SELECT session_id FROM tokens WHERE token_hash = $1 AND kind = 'refresh_token'`, hash).Scan(&sessionID); err != nil {
		return nil, invalid
	}
	ref := sessionRef(sessionID)
	var (
		firstSeen uint64
		outcome   session.Outcome
		st        session.State
		p         = s.mint(sessionID, true)
	)
	appended, err := s.log.Execute(ctx, ref, func(history []eventlog.Record, version uint64) ([]eventlog.Write, error) {
		if firstSeen == 0 {
			firstSeen = version
		}
		st = session.Fold(history)
		if err := s.refuseBlocked(ctx, st.Started.GetUserId()); err != nil {
			return nil, err // a locked or deactivated user's session is not refreshed
		}
		decided, o, err := session.Refresh(st, session.Rotation{
			ClientID: c.ID, PresentedHash: hash, FirstSeen: firstSeen, Next: p.issued, Now: s.now(), Grace: s.cfg.RefreshReuseGrace,
		})
		outcome = o
		if o == session.Reused {
			err = nil // append the end of the session, then answer invalid_grant
		}
		if err != nil {
			return nil, err
		}
		out := make([]eventlog.Write, len(decided))
		for i, ev := range decided {
			out[i] = eventlog.Write{Expect: eventlog.ExpectVersion(version), Event: eventlog.Event{Aggregate: ref, Actor: "client:" + c.ID, Payload: ev}}
		}
		return out, nil
	})
	if err != nil {
		return nil, err
	}
	if outcome == session.Reused {
		s.index.markEnded(sessionID)
		return nil, errs.FailedPrecondition("The refresh token has already been used; the session has been ended.")
	}
	s.index.markRevoked(st.CurrentRefresh, st.CurrentAccess)
	s.activity.Touch(sessionID, from.ip, s.now())
	if err := s.projections.WaitFor(ctx, sessionsProjection, appended.Last()); err != nil {
		s.abandon(ctx, sessionID, err) // the client keeps a rotated-out refresh token: nobody can use the session (abandon.go)
		return nil, err
	}
	return s.tokenResponse(p, st.Started.GetScope()), nil
}

// clientCredentials is the client_credentials grant: confidential clients
// only, an access token for the client itself.
func (s *Service) clientCredentials(ctx context.Context, c *client, form url.Values, from origin) (map[string]any, error) {
	if c.Meta.AuthMethod == "none" {
		return nil, &oauthError{status: http.StatusBadRequest, code: "unauthorized_client", description: "public clients cannot use client_credentials"}
	}
	scope := strings.Join(strings.Fields(form.Get("scope")), " ")
	if strings.Contains(scope, "urn:matrix:") || hasScope(scope, "openid") {
		return nil, &oauthError{status: http.StatusBadRequest, code: "invalid_scope", description: "user scopes cannot be granted to a client acting for itself"}
	}
	sessionID := ids.New()
	p := s.mint(sessionID, false)
	start := &eventsv1.SessionStarted{
		SessionId: sessionID, Kind: "client_credentials", ClientId: c.ID, Scope: scope, Tokens: p.issued,
		IpAddress: from.ip, UserAgent: from.userAgent,
	}
	if err := s.start(ctx, start, "client:"+c.ID); err != nil {
		return nil, err
	}
	return s.tokenResponse(p, scope), nil
}

func hasScope(scope, tok string) bool {
	for _, s := range strings.Fields(scope) {
		if s == tok {
			return true
		}
	}
	return false
}

// deviceOf extracts the Matrix device id from a granted scope.
func deviceOf(scope string) string {
	for _, s := range strings.Fields(scope) {
		for _, prefix := range []string{"urn:matrix:client:device:", "urn:matrix:org.matrix.msc2967.client:device:"} {
			if id, ok := strings.CutPrefix(s, prefix); ok {
				return id
			}
		}
	}
	return ""
}

// endSession ends a session.
func (s *Service) endSession(ctx context.Context, sessionID, reason, actor string) error {
	if !ids.Valid(sessionID) {
		return errs.InvalidField("session_id", "session_id is not a session id")
	}
	ref := sessionRef(sessionID)
	appended, err := s.log.Execute(ctx, ref, func(history []eventlog.Record, version uint64) ([]eventlog.Write, error) {
		decided, err := session.End(session.Fold(history), reason)
		if err != nil || len(decided) == 0 {
			return nil, err
		}
		return []eventlog.Write{{Expect: eventlog.ExpectVersion(version), Event: eventlog.Event{Aggregate: ref, Actor: actor, Payload: decided[0]}}}, nil
	})
	if err != nil {
		return err
	}
	if appended.Last() > 0 {
		s.index.markEnded(sessionID) // this replica at once; the others through the stream
		return s.projections.WaitFor(ctx, sessionsProjection, appended.Last())
	}
	return nil
}

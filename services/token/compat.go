package token

// The Matrix compatibility login API (MSC3824) for clients that only know the
// client-server API's own login: GET and POST /_matrix/client/{version}/login,
// POST …/logout, …/logout/all and …/refresh, with any version segment v<n> or
// r0. A login starts a session of kind "compat" in the TOKEN stream, like an
// OAuth session but with mct_/mcr_ tokens and no client, so introspection,
// revocation and the session list treat both alike. Every answer on these
// paths is a Matrix error ({"errcode", "error"}) or a Matrix body, with the
// CORS headers the client-server API asks for.

import (
	"context"
	"errors"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"gatehouse.dev/platform/clientaddr"
	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/httpx"
	"gatehouse.dev/platform/ids"
	"gatehouse.dev/platform/ratelimit"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/token/internal/compat"
)

const (
	// compatKind is the kind of compat sessions.
	compatKind = "compat"
	// compatClientID is the client_id of compat sessions, as MAS reports them
	// in introspection: they belong to no OAuth client.
	compatClientID = "legacy"
)

// compatState is what the compatibility API needs beyond the service: the
// rate limiter of password logins (the sign-in rules of Config.Limits,
// shared with the web sign-in and every replica).
type compatState struct {
	limiter *ratelimit.Limiter
}

// matrixVersion is a version segment of the client-server API.
var matrixVersion = regexp.MustCompile(`^(r0|v[0-9]+)$`)

// registerCompat adds the compatibility routes.
func (s *Service) registerCompat(mux *http.ServeMux) {
	mux.Handle("/_matrix/client/{version}/login", s.matrixRoute(map[string]httpx.Handler{
		http.MethodGet:  func(http.ResponseWriter, *http.Request) (any, error) { return compat.Flows(), nil },
		http.MethodPost: s.compatLogin,
	}))
	mux.Handle("/_matrix/client/{version}/logout", s.matrixRoute(map[string]httpx.Handler{http.MethodPost: s.compatLogout}))
	mux.Handle("/_matrix/client/{version}/logout/all", s.matrixRoute(map[string]httpx.Handler{http.MethodPost: s.compatLogoutAll}))
	mux.Handle("/_matrix/client/{version}/refresh", s.matrixRoute(map[string]httpx.Handler{http.MethodPost: s.compatRefresh}))
}

// matrixRoute serves a compat route: CORS on every answer (pre-flights
// included), the version segment checked, and errors in Matrix form
// (httpx.Matrix).
func (s *Service) matrixRoute(methods map[string]httpx.Handler) http.Handler {
	allow := []string{http.MethodOptions}
	for m := range methods {
		allow = append(allow, m)
	}
	slices.Sort(allow)
	return httpx.Matrix(s.logger, func(w http.ResponseWriter, r *http.Request) (any, error) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "X-Requested-With, Content-Type, Authorization")
		if !matrixVersion.MatchString(r.PathValue("version")) {
			return nil, compat.UnknownEndpoint("Unrecognized request.")
		}
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusNoContent)
			return nil, nil
		}
		fn, ok := methods[r.Method]
		if !ok {
			h.Set("Allow", strings.Join(allow, ", "))
			return nil, compat.WrongMethod("Unrecognized request: use " + strings.Join(allow, " or ") + ".")
		}
		return fn(w, r)
	})
}

// readMatrixBody reads a request body of at most 64 KiB. Content types are
// not checked: older clients send JSON under any of them.
func readMatrixBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, httpx.MaxFormBody))
	if err != nil {
		if _, tooBig := errors.AsType[*http.MaxBytesError](err); tooBig {
			return nil, compat.TooLarge()
		}
		return nil, compat.NotJSON()
	}
	return b, nil
}

// compatUser is who a login is for.
type compatUser struct {
	id, username string
	admin        bool
	// browserSession is the browser session a login token was asked from.
	browserSession string
}

// compatLogin is POST /login: m.login.password or m.login.token, answered
// with a new compat session's tokens. A device_id the client names is reused,
// and the user's earlier compat session on that device ends. The session of
// an administrator carries Synapse's admin scope only where the
// configuration allows it (Config.CompatAdminScope; MAS never does).
func (s *Service) compatLogin(w http.ResponseWriter, r *http.Request) (any, error) {
	body, err := readMatrixBody(w, r)
	if err != nil {
		return nil, err
	}
	req, e := compat.ParseLogin(body)
	if e != nil {
		return nil, e
	}
	ctx := r.Context()
	sessionID := ids.New()
	var u compatUser
	switch req.Type {
	case compat.PasswordLogin:
		u, err = s.compatPasswordUser(ctx, clientaddr.Key(r), req.User, req.Password)
	case compat.TokenLogin:
		u, err = s.useLoginToken(ctx, req.Token, sessionID)
	}
	if err != nil {
		return nil, err
	}
	deviceID := req.DeviceID
	if deviceID == "" {
		deviceID = compat.NewDeviceID()
	}
	p := s.mintCompat(sessionID, req.Refresh)
	start := &eventsv1.SessionStarted{
		SessionId: sessionID, Kind: compatKind, ClientId: compatClientID, UserId: u.id, Username: u.username,
		Scope: compat.Scope(deviceID, u.admin && s.cfg.CompatAdminScope), DeviceId: deviceID, DeviceDisplayName: req.DisplayName, Tokens: p.issued,
		BrowserSessionId: u.browserSession,
	}
	from := originOf(r)
	start.IpAddress, start.UserAgent = from.ip, from.userAgent
	if err := s.start(ctx, start, "user:"+u.id); err != nil {
		if errs.KindOf(err) == errs.KindFailedPrecondition {
			return nil, accountRefusal(err) // locked or deactivated since the login token was issued
		}
		return nil, err
	}
	if req.DeviceID != "" {
		// The device is taken over: its earlier session ends. A failure here
		// leaves that session alive but must not lose the new one's tokens.
		if err := s.endCompatSessions(ctx, u.id, deviceID, sessionID, "device_replaced", "user:"+u.id); err != nil {
			s.logger.ErrorContext(ctx, "ending the earlier compat session of a reused device", "user_id", u.id, "device_id", deviceID, "err", err)
		}
	}
	resp := map[string]any{
		"user_id":      compat.UserID(u.username, s.cfg.ServerName),
		"access_token": p.access,
		"device_id":    deviceID,
		"home_server":  s.cfg.ServerName,
	}
	if p.refresh != "" {
		resp["refresh_token"] = p.refresh
		resp["expires_in_ms"] = p.expires.Sub(s.now()).Milliseconds()
	}
	return resp, nil
}

// maxLocalpart bounds the user names worth asking about: a user id is at most
// 255 bytes.
const maxLocalpart = 255

// compatPasswordUser checks a password login through the accounts service,
// within the per-address and per-account limits of failed sign-ins: the
// attempt takes a token from both before the password is checked, and gives
// them back unless the password is wrong.
func (s *Service) compatPasswordUser(ctx context.Context, ip, user, password string) (compatUser, error) {
	local, e := compat.Localpart(user, s.cfg.ServerName)
	if e != nil {
		return compatUser{}, e
	}
	if len(local) > maxLocalpart {
		return compatUser{}, compat.WrongCredentials()
	}
	limit, err := s.compat.limiter.Take(ctx, ratelimit.Key{Rule: s.cfg.Limits.LoginPerIP, Subject: ip}, ratelimit.Key{Rule: s.cfg.Limits.LoginPerAccount, Subject: local})
	if err != nil {
		return compatUser{}, err
	}
	if !limit.Allowed {
		return compatUser{}, compat.LimitExceeded(limit.RetryAfter)
	}
	resp, err := s.accounts.VerifyPassword(ctx, &accountsv1.VerifyPasswordRequest{Username: local, Password: password})
	if !wrongCredentials(err) {
		s.compat.limiter.Refund(ctx, limit)
	}
	if err != nil {
		return compatUser{}, accountRefusal(err)
	}
	u := resp.GetUser()
	return compatUser{id: u.GetId(), username: u.GetUsername(), admin: u.GetAdmin()}, nil
}

// wrongCredentials reports whether accounts refused a password as wrong
// (or the user as unknown, which gets the same answer).
func wrongCredentials(err error) bool {
	switch errs.KindOf(err) {
	case errs.KindUnauthenticated, errs.KindNotFound, errs.KindInvalid:
		return err != nil
	}
	return false
}

// accountRefusal maps an accounts service refusal to its Matrix error. An
// unknown user and a wrong password get the same answer; a locked or
// deactivated account is only revealed after a correct password.
func accountRefusal(err error) error {
	switch errs.KindOf(err) {
	case errs.KindUnauthenticated, errs.KindNotFound, errs.KindInvalid:
		return compat.WrongCredentials()
	case errs.KindFailedPrecondition, errs.KindPermissionDenied:
		if v, _ := errs.FactOf(err, errs.FactSecondFactor); v == "required" {
			// The password was right, but the account signs in with a
			// second factor, which only the browser asks for (MSC3824:
			// the client should use m.login.sso).
			return compat.Forbidden("This account uses a second factor (a passkey or an authenticator app): sign in with single sign-on (m.login.sso) in the browser.")
		}
		msg := errs.PublicMessage(err)
		switch {
		case strings.Contains(msg, "deactivated"):
			return compat.UserDeactivated()
		case strings.Contains(msg, "locked"):
			return compat.UserLocked()
		}
		return compat.Forbidden(msg)
	}
	return err
}

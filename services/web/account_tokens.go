package web

import (
	"crypto/rand"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"gatehouse.dev/platform/errs"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
	"gatehouse.dev/services/web/internal/i18n"
	"gatehouse.dev/services/web/internal/render"
)

// The personal access tokens page (/account/tokens): people make tokens for
// their own scripts and bots — named, with the Matrix API scope and
// optionally a device of their own, an expiry if they want one, and for an
// administrator the admin API — see each one's last use, and revoke them.
// The token service keeps them (sessions of kind "personal"); a new token
// is shown once, in the answer to the form that made it (the page is
// no-store), and never again.

// personalKind is the kind of the token service's personal sessions.
const personalKind = "personal"

// tokensView is the data of the tokens page.
type tokensView struct {
	Tokens       []tokenView
	CreateAction string
	RevokeAction string
	RevokeCSRF   string
	Name         render.Field
	ExpiresValue render.Field
	ExpiresUnit  string
	Units        []unitView
	Device       bool
	Admin        bool
	// CanAdmin shows the admin API choice (administrators only).
	CanAdmin bool
	// Created is the token just made, shown once.
	Created *createdToken
}

// unitView is one choice of the expiry's unit.
type unitView struct {
	Value, Label string
	Selected     bool
}

// createdToken is a token just made.
type createdToken struct {
	Name, Token string
}

// tokenView is one personal access token.
type tokenView struct {
	ID, Name, Scope, DeviceID, IP string
	Admin                         bool
	Created, LastActive, Expires  *timeView
	Expired                       bool
}

// The units an expiry is counted in, and how long each is.
var expiryUnits = []struct {
	value string
	unit  time.Duration
	label i18n.ID
}{
	{"minutes", time.Minute, i18n.AccountTokensMinutes},
	{"hours", time.Hour, i18n.AccountTokensHours},
	{"days", 24 * time.Hour, i18n.AccountTokensDays},
}

// maxTokenLife bounds a token's chosen life on this page.
const maxTokenLife = 366 * 24 * time.Hour

// tokenForm is what the form asked, with its errors.
type tokenForm struct {
	name, value, unit string
	device, admin     bool
	nameErr, valueErr string
}

func (s *Service) handleTokensGet(w http.ResponseWriter, r *http.Request, who *signedIn) {
	s.showTokens(w, r, http.StatusOK, who, tokenForm{unit: "days", device: true}, nil, s.doneNotice(r), "")
}

func (s *Service) showTokens(w http.ResponseWriter, r *http.Request, status int, who *signedIn, f tokenForm, created *createdToken, notice, formErr string) {
	l := s.localizer(r)
	if s.token == nil {
		s.failure(w, r, "list personal tokens", errs.Unavailable("the token service is not connected"))
		return
	}
	list, err := s.token.ListSessions(s.asUser(r.Context(), who), &tokenv1.ListSessionsRequest{UserId: who.user.GetId()})
	if err != nil {
		s.failure(w, r, "list personal tokens", err)
		return
	}
	v := &tokensView{
		CreateAction: s.path("account/tokens"), RevokeAction: s.path("account/tokens/revoke"),
		RevokeCSRF: s.csrf.Token(w, r, "account-token-revoke"),
		Name: render.Field{ID: "token_name", Name: "name", Type: "text", Label: l.T(i18n.AccountTokensName), Hint: l.T(i18n.AccountTokensNameHint),
			Value: f.name, Error: f.nameErr, Required: true, Autocomplete: "off"},
		ExpiresValue: render.Field{ID: "expires_value", Name: "expires_value", Type: "number", Label: l.T(i18n.AccountTokensExpires),
			Hint: l.T(i18n.AccountTokensExpiresHint), Value: f.value, Error: f.valueErr, Autocomplete: "off"},
		ExpiresUnit: f.unit, Device: f.device, Admin: f.admin, CanAdmin: who.user.GetAdmin(), Created: created,
	}
	render.FocusFirst(&v.Name, &v.ExpiresValue)
	if status == http.StatusOK {
		v.Name.Autofocus = false
	}
	for _, u := range expiryUnits {
		v.Units = append(v.Units, unitView{Value: u.value, Label: l.T(u.label), Selected: u.value == f.unit})
	}
	now := time.Now()
	for _, ts := range list.GetSessions() {
		if ts.GetKind() != personalKind || ts.GetEndedAt() != nil || !who.owns(ts.GetUserId()) {
			continue
		}
		tv := tokenView{
			ID: ts.GetSessionId(), Name: ts.GetDeviceDisplayName(), Scope: ts.GetScope(), DeviceID: ts.GetDeviceId(), IP: ts.GetIpAddress(),
			Admin: hasAdminScope(ts.GetScope()), Created: when(l, ts.GetCreatedAt()), LastActive: when(l, ts.GetLastActiveAt()),
			Expires: when(l, ts.GetExpiresAt()),
		}
		tv.Expired = ts.GetExpiresAt() != nil && !now.Before(ts.GetExpiresAt().AsTime())
		v.Tokens = append(v.Tokens, tv)
	}
	s.renderAccount(w, r, status, who, l.T(i18n.AccountTokensTitle), &accountView{Section: sectionTokens, Tokens: v}, notice, formErr)
}

// hasAdminScope reports whether a scope grants the admin API.
func hasAdminScope(scope string) bool {
	for _, tok := range strings.Fields(scope) {
		if tok == "urn:gatehouse:admin" || tok == "urn:mas:admin" {
			return true
		}
	}
	return false
}

// handleTokensPost makes a token and shows it once: the answer is the page
// itself (no redirect), since the token must not travel in a URL or a cookie.
func (s *Service) handleTokensPost(w http.ResponseWriter, r *http.Request, who *signedIn) {
	if !s.checkAccountCSRF(w, r, "account-"+sectionTokens) {
		return
	}
	l := s.localizer(r)
	f := tokenForm{
		name: truncate(strings.TrimSpace(r.PostFormValue("name")), 200), value: truncate(strings.TrimSpace(r.PostFormValue("expires_value")), 12),
		unit: r.PostFormValue("expires_unit"), device: r.PostFormValue("device") == "on", admin: r.PostFormValue("admin") == "on",
	}
	if f.name == "" {
		f.nameErr = l.T(i18n.AccountTokensNameNone)
	} else if len([]rune(f.name)) > 100 {
		f.nameErr = l.T(i18n.AccountTokensNameLong, 100)
	}
	var ttl time.Duration
	if f.value != "" {
		n, err := strconv.Atoi(f.value)
		unit := time.Duration(0)
		for _, u := range expiryUnits {
			if u.value == f.unit {
				unit = u.unit
			}
		}
		ttl = time.Duration(n) * unit
		if err != nil || n < 1 || unit == 0 || ttl > maxTokenLife {
			f.valueErr = l.T(i18n.AccountTokensExpiresBad)
		}
	}
	if f.admin && !who.user.GetAdmin() {
		f.admin = false // the choice is not offered; nothing is granted
	}
	if f.nameErr != "" || f.valueErr != "" {
		s.showTokens(w, r, http.StatusBadRequest, who, f, nil, "", "")
		return
	}
	scope := "urn:matrix:client:api:*"
	if f.device {
		scope += " urn:matrix:client:device:" + newDeviceID()
	}
	if f.admin {
		scope += " urn:gatehouse:admin"
	}
	req := &tokenv1.CreatePersonalSessionRequest{Name: f.name, Scope: scope}
	if ttl > 0 {
		req.ExpiresIn = durationpb.New(ttl)
	}
	resp, err := s.token.CreatePersonalSession(s.asUser(r.Context(), who), req)
	if err != nil {
		s.failure(w, r, "create a personal token", err)
		return
	}
	s.showTokens(w, r, http.StatusOK, who, tokenForm{unit: "days", device: true}, &createdToken{Name: f.name, Token: resp.GetAccessToken()},
		l.T(i18n.AccountDoneTokenCreated), "")
}

// handleTokenRevokePost revokes one of the person's tokens at once.
func (s *Service) handleTokenRevokePost(w http.ResponseWriter, r *http.Request, who *signedIn) {
	if !s.checkAccountCSRF(w, r, "account-token-revoke") {
		return
	}
	ctx := s.asUser(r.Context(), who)
	id := truncate(r.PostFormValue("id"), 64)
	list, err := s.token.ListSessions(ctx, &tokenv1.ListSessionsRequest{UserId: who.user.GetId()})
	if err != nil {
		s.failure(w, r, "list personal tokens", err)
		return
	}
	found := false
	for _, ts := range list.GetSessions() {
		found = found || (ts.GetSessionId() == id && ts.GetKind() == personalKind && ts.GetEndedAt() == nil && who.owns(ts.GetUserId()))
	}
	if !found {
		l := s.localizer(r)
		s.showTokens(w, r, http.StatusNotFound, who, tokenForm{unit: "days", device: true}, nil, "", l.T(i18n.AccountTokensGone))
		return
	}
	if _, err := s.token.EndSession(ctx, &tokenv1.EndSessionRequest{SessionId: id, Reason: "revoked on the account page"}); err != nil && errs.KindOf(err) != errs.KindNotFound {
		s.failure(w, r, "revoke a personal token", err)
		return
	}
	s.done(w, r, "account/tokens", "token_revoked")
}

// newDeviceID is a fresh device id for a token's own device: 10 characters
// of [A-Z0-9], as homeservers make them.
func newDeviceID() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	const limit = 256 - 256%len(alphabet)
	out := make([]byte, 0, 10)
	var buf [32]byte
	for len(out) < 10 {
		rand.Read(buf[:])
		for _, b := range buf {
			if int(b) < limit && len(out) < 10 {
				out = append(out, alphabet[int(b)%len(alphabet)])
			}
		}
	}
	return string(out)
}

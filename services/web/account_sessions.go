package web

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"gatehouse.dev/platform/errs"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	authorizev1 "gatehouse.dev/proto/gatehouse/authorize/v1"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
	"gatehouse.dev/services/web/internal/i18n"
	"gatehouse.dev/services/web/internal/input"
)

// The sessions pages: the browsers signed in to the account (accounts'
// browser sessions) and the applications and devices (the token service's
// OAuth and compatibility sessions), each with a button that ends it at once;
// and one device's page (MSC4191 device_view) and the confirmation to sign it
// out (device_delete).
//
// The token service's EndSession takes any session id, so every session is
// looked up among the signed-in user's own (ListSessions) before it is ended.

// sessionsView is the data of the sessions page.
type sessionsView struct {
	Browsers     []browserView
	Apps         []appView
	Compat       []appView
	EndAction    string
	EndCSRF      string
	LogoutAction string
	LogoutCSRF   string
}

// browserView is one signed-in browser.
type browserView struct {
	ID         string
	Name       string
	UserAgent  string
	IP         string
	Created    *timeView
	LastActive *timeView
	Current    bool
}

// appView is one application's (OAuth) or old client's (compat) session.
type appView struct {
	ID         string
	Compat     bool
	ClientName string
	ClientID   string
	DeviceID   string
	Created    *timeView
	LastActive *timeView
	// IP is the client's last known address (its sign-in, then refreshes).
	IP string
	// UserAgent is the User-Agent of the sign-in; Software names it for
	// people, as browsers are named ("Chrome on Linux").
	UserAgent string
	Software  string
	ViewURL   string
	EndURL    string
	// EndAction and EndCSRF make the sign-out form.
	EndAction string
	EndCSRF   string
}

func (s *Service) handleSessionsGet(w http.ResponseWriter, r *http.Request, who *signedIn) {
	s.showSessions(w, r, http.StatusOK, who, s.doneNotice(r), "")
}

func (s *Service) showSessions(w http.ResponseWriter, r *http.Request, status int, who *signedIn, notice, formErr string) {
	l := s.localizer(r)
	ctx := s.asUser(r.Context(), who)
	browsers, err := s.accounts.ListBrowserSessions(ctx, &accountsv1.ListBrowserSessionsRequest{UserId: who.user.GetId()})
	if err != nil {
		s.failure(w, r, "list browser sessions", err)
		return
	}
	v := &sessionsView{
		EndAction:    s.path("account/sessions/end"),
		EndCSRF:      s.csrf.Token(w, r, "account-session-end"),
		LogoutAction: s.path("logout"),
		LogoutCSRF:   s.csrf.Token(w, r, "logout"),
	}
	for _, bs := range browsers.GetSessions() {
		if bs.GetEndedAt() != nil {
			continue
		}
		bv := browserView{
			ID: bs.GetSessionId(), Name: describeUserAgent(l, bs.GetUserAgent()), UserAgent: bs.GetUserAgent(), IP: bs.GetIpAddress(),
			Created: when(l, bs.GetCreatedAt()), LastActive: when(l, bs.GetLastActiveAt()),
			Current: bs.GetSessionId() == who.session.GetSessionId(),
		}
		if bv.Current {
			// This browser first.
			v.Browsers = append([]browserView{bv}, v.Browsers...)
		} else {
			v.Browsers = append(v.Browsers, bv)
		}
	}
	apps, err := s.userSessions(ctx, who)
	if err != nil {
		s.failure(w, r, "list sessions", err)
		return
	}
	names := s.clientNames(ctx)
	for _, ts := range apps {
		a := s.appView(l, ts, names)
		a.EndAction, a.EndCSRF = v.EndAction, v.EndCSRF
		if a.Compat {
			v.Compat = append(v.Compat, a)
		} else {
			v.Apps = append(v.Apps, a)
		}
	}
	s.renderAccount(w, r, status, who, l.T(i18n.AccountSessionsTitle), &accountView{Section: sectionSessions, Sessions: v}, notice, formErr)
}

// userSessions lists the user's live OAuth and compatibility sessions (not
// their personal access tokens: the tokens page shows those).
func (s *Service) userSessions(ctx context.Context, who *signedIn) ([]*tokenv1.Session, error) {
	if s.token == nil {
		return nil, errs.Unavailable("the token service is not connected")
	}
	list, err := s.token.ListSessions(ctx, &tokenv1.ListSessionsRequest{UserId: who.user.GetId()})
	if err != nil {
		return nil, err
	}
	var out []*tokenv1.Session
	for _, ts := range list.GetSessions() {
		if ts.GetEndedAt() == nil && who.owns(ts.GetUserId()) && ts.GetKind() != personalKind {
			out = append(out, ts)
		}
	}
	return out, nil
}

// appView describes a token session.
func (s *Service) appView(l i18n.Localizer, ts *tokenv1.Session, names func(string) string) appView {
	a := appView{
		ID: ts.GetSessionId(), Compat: ts.GetKind() == "compat", ClientID: ts.GetClientId(),
		DeviceID: ts.GetDeviceId(), Created: when(l, ts.GetCreatedAt()), LastActive: when(l, ts.GetLastActiveAt()),
		IP: ts.GetIpAddress(), UserAgent: ts.GetUserAgent(),
	}
	if a.UserAgent != "" {
		a.Software = describeUserAgent(l, a.UserAgent)
	}
	if !a.Compat && a.ClientID != "" {
		a.ClientName = names(a.ClientID)
	}
	if a.DeviceID != "" {
		q := url.Values{"device_id": {a.DeviceID}}.Encode()
		a.ViewURL = s.path("account/sessions/device") + "?" + q
		a.EndURL = s.path("account/sessions/end") + "?" + q
	}
	return a
}

// clientNames returns a lookup of client names (the client_name of their
// metadata, else the id), asking authorize once per client.
func (s *Service) clientNames(ctx context.Context) func(string) string {
	cache := map[string]string{}
	return func(id string) string {
		if n, ok := cache[id]; ok {
			return n
		}
		name := id
		if resp, err := s.authorize.GetClient(ctx, &authorizev1.GetClientRequest{ClientId: id}); err == nil {
			var meta struct {
				ClientName string `json:"client_name"`
			}
			if json.Unmarshal(resp.GetMetadataJson(), &meta) == nil && strings.TrimSpace(meta.ClientName) != "" {
				name = strings.TrimSpace(meta.ClientName)
			}
		} else if errs.KindOf(err) != errs.KindNotFound {
			s.logger.WarnContext(ctx, "get client", "client", id, "err", err)
		}
		cache[id] = name
		return name
	}
}

// deviceView is the data of one device's page and of its sign-out confirmation.
type deviceView struct {
	DeviceID  string
	Sessions  []appView
	Action    string
	EndCSRF   string
	BackURL   string
	NotFound  bool
	ConfirmID string
}

// deviceSessions finds the user's live sessions of a device.
func (s *Service) deviceSessions(ctx context.Context, who *signedIn, deviceID string) ([]*tokenv1.Session, error) {
	all, err := s.userSessions(ctx, who)
	if err != nil {
		return nil, err
	}
	var out []*tokenv1.Session
	for _, ts := range all {
		if deviceID != "" && ts.GetDeviceId() == deviceID {
			out = append(out, ts)
		}
	}
	return out, nil
}

// handleDeviceGet shows one device (MSC4191 device_view).
func (s *Service) handleDeviceGet(w http.ResponseWriter, r *http.Request, who *signedIn) {
	s.showDevice(w, r, who, sectionDevice)
}

// handleSessionEndGet asks to confirm signing a device out (MSC4191 device_delete).
func (s *Service) handleSessionEndGet(w http.ResponseWriter, r *http.Request, who *signedIn) {
	s.showDevice(w, r, who, sectionDeviceEnd)
}

func (s *Service) showDevice(w http.ResponseWriter, r *http.Request, who *signedIn, section string) {
	l := s.localizer(r)
	ctx := s.asUser(r.Context(), who)
	deviceID := input.CleanDeviceID(r.URL.Query().Get("device_id"))
	found, err := s.deviceSessions(ctx, who, deviceID)
	if err != nil {
		s.failure(w, r, "list sessions", err)
		return
	}
	v := &deviceView{
		DeviceID: deviceID, Action: s.path("account/sessions/end"), EndCSRF: s.csrf.Token(w, r, "account-session-end"),
		BackURL: s.path("account/sessions"), NotFound: len(found) == 0,
	}
	names := s.clientNames(ctx)
	for _, ts := range found {
		v.Sessions = append(v.Sessions, s.appView(l, ts, names))
	}
	status, title := http.StatusOK, l.T(i18n.AccountDeviceTitle)
	if section == sectionDeviceEnd {
		title = l.T(i18n.AccountDeviceEndTitle)
	}
	if v.NotFound {
		status, title = http.StatusNotFound, l.T(i18n.AccountDeviceNotFoundTitle)
	}
	s.renderAccount(w, r, status, who, title, &accountView{Section: section, Device: v}, "", "")
}

// handleSessionEndPost ends one session at once: a browser (kind=browser),
// an application's or old client's session (kind=token), or every session of
// a device (kind=device, from the confirmation page).
func (s *Service) handleSessionEndPost(w http.ResponseWriter, r *http.Request, who *signedIn) {
	if !s.checkAccountCSRF(w, r, "account-session-end") {
		return
	}
	l := s.localizer(r)
	ctx := s.asUser(r.Context(), who)
	id := truncate(r.PostFormValue("id"), 64)
	switch r.PostFormValue("kind") {
	case "browser":
		if id == who.session.GetSessionId() {
			// This browser: the sign-out button does that (and says so); never
			// end it from here by surprise.
			s.showSessions(w, r, http.StatusBadRequest, who, "", l.T(i18n.AccountSessionIsCurrent))
			return
		}
		_, err := s.accounts.EndBrowserSession(ctx, &accountsv1.EndBrowserSessionRequest{SessionId: id, UserId: who.user.GetId()})
		switch kind := errs.KindOf(err); {
		case err == nil:
		case kind == errs.KindNotFound || kind == errs.KindInvalid:
			s.showSessions(w, r, http.StatusNotFound, who, "", l.T(i18n.AccountSessionGone))
			return
		default:
			s.failure(w, r, "end browser session", err)
			return
		}
	case "token", "device":
		live, err := s.userSessions(ctx, who)
		if err != nil {
			s.failure(w, r, "list sessions", err)
			return
		}
		deviceID := input.CleanDeviceID(r.PostFormValue("device_id"))
		var end []string
		for _, ts := range live {
			if (r.PostFormValue("kind") == "token" && ts.GetSessionId() == id) ||
				(r.PostFormValue("kind") == "device" && deviceID != "" && ts.GetDeviceId() == deviceID) {
				end = append(end, ts.GetSessionId())
			}
		}
		if len(end) == 0 {
			s.showSessions(w, r, http.StatusNotFound, who, "", l.T(i18n.AccountSessionGone))
			return
		}
		for _, sid := range end {
			_, err := s.token.EndSession(ctx, &tokenv1.EndSessionRequest{SessionId: sid, Reason: "signed out from the account page"})
			if err != nil && errs.KindOf(err) != errs.KindNotFound {
				s.failure(w, r, "end session", err)
				return
			}
		}
	default:
		s.errorPage(w, r, http.StatusBadRequest, i18n.ErrorTitle, i18n.ErrorBadRequest)
		return
	}
	s.done(w, r, "account/sessions", "session_ended")
}

// describeUserAgent names a browser for people, such as "Firefox on Linux",
// from its User-Agent; an unknown one is "Unknown browser".
func describeUserAgent(l i18n.Localizer, ua string) string {
	browser := ""
	for _, b := range []struct{ token, name string }{
		{"Firefox/", "Firefox"}, {"Edg/", "Edge"}, {"OPR/", "Opera"}, {"Chrome/", "Chrome"}, {"Chromium/", "Chromium"},
		{"Version/", "Safari"}, {"curl/", "curl"},
	} {
		if strings.Contains(ua, b.token) {
			browser = b.name
			break
		}
	}
	system := ""
	for _, o := range []struct{ token, name string }{
		{"Android", "Android"}, {"iPhone", "iOS"}, {"iPad", "iPadOS"}, {"Windows", "Windows"},
		{"Mac OS X", "macOS"}, {"CrOS", "ChromeOS"}, {"Linux", "Linux"},
	} {
		if strings.Contains(ua, o.token) {
			system = o.name
			break
		}
	}
	switch {
	case browser != "" && system != "":
		return l.T(i18n.AccountBrowserOn, browser, system)
	case browser != "":
		return browser
	case system != "":
		return l.T(i18n.AccountBrowserOn, l.T(i18n.AccountBrowserUnknown), system)
	}
	return l.T(i18n.AccountBrowserUnknown)
}

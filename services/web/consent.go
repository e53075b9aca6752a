package web

import (
	"net/http"
	"net/url"
	"strings"

	"gatehouse.dev/platform/errs"
	authorizev1 "gatehouse.dev/proto/gatehouse/authorize/v1"
	"gatehouse.dev/services/web/internal/i18n"
	"gatehouse.dev/services/web/internal/render"
)

// consentView is the data of the consent page, for an authorization request
// (/consent) and for a device (/link) alike.
type consentView struct {
	Action     string
	Intro      string
	ClientName string
	ClientURI  string
	// ClientHost is the host of ClientURI, the link's text: where the
	// application says it lives.
	ClientHost string
	LogoURI    string
	LogoAlt    string
	PolicyURI  string
	TOSURI     string
	// UserCode is set for a device: the person checks it matches the device's.
	UserCode string
	Scopes   []scopeLine
	// AdminMissing is set when the client asks for administrator access the
	// user does not have: only Cancel is offered.
	AdminMissing bool
	// SignOutAction and SignOutCSRF make the "Not you? Sign out" form.
	SignOutAction string
	SignOutCSRF   string
}

// scopeLine is one thing the client will be allowed to do.
type scopeLine struct {
	Text string
	// Admin marks administrator access, shown as a warning.
	Admin bool
}

func (s *Service) handleConsentGet(w http.ResponseWriter, r *http.Request) {
	f := flowOf(r)
	if f.grant == "" {
		s.grantError(w, r, http.StatusBadRequest, i18n.ErrorGrantUnknown)
		return
	}
	g, ok := s.loadGrant(w, r, f)
	if !ok {
		return
	}
	who, ok := s.requireUser(w, r, "login", url.Values{"grant": {f.grant}})
	if !ok {
		return
	}
	// prompt=login, max_age: a new authentication first.
	if !freshEnough(g, who.session, s.now()) {
		s.signInAgain(w, r, f.grant)
		return
	}
	l := s.localizer(r)
	v := s.consentView(r, g.GetClient(), g.GetScope(), who)
	v.Action = s.flowURL("consent", f)
	v.Intro = l.T(i18n.ConsentIntro, v.ClientName)
	v.SignOutAction = s.flowURL("logout", f)
	v.SignOutCSRF = s.csrf.Token(w, r, "logout")
	// The answer redirects to the client, which form-action 'self' would block.
	w.Header().Set("Content-Security-Policy", cspConsent)
	s.render(w, r, http.StatusOK, "consent", &render.View{Title: l.T(i18n.ConsentTitle), User: who.user, CSRF: s.csrf.Token(w, r, "consent"), Page: v})
}

func (s *Service) handleConsentPost(w http.ResponseWriter, r *http.Request) {
	f := flowOf(r)
	if err := r.ParseForm(); err != nil || f.grant == "" {
		s.errorPage(w, r, http.StatusBadRequest, i18n.ErrorTitle, i18n.ErrorBadRequest)
		return
	}
	who, ok := s.requireUser(w, r, "login", url.Values{"grant": {f.grant}})
	if !ok {
		return
	}
	if !s.csrf.Check(r, "consent") {
		// Show the page again with a fresh token; nothing was decided.
		s.redirect(w, r, "consent", url.Values{"grant": {f.grant}})
		return
	}
	g, ok := s.loadGrant(w, r, f)
	if !ok {
		return
	}
	ctx := s.asUser(r.Context(), who)
	var target string
	switch r.PostFormValue("action") {
	case "allow":
		if _, admin := describeScopes(s.localizer(r), g.GetScope()); admin && !who.user.GetAdmin() {
			s.grantError(w, r, http.StatusForbidden, i18n.ConsentAdminMissing)
			return
		}
		resp, err := s.authorize.ApproveGrant(ctx, &authorizev1.ApproveGrantRequest{GrantId: f.grant})
		if v, _ := errs.FactOf(err, errs.FactStepUp); v == "login" {
			s.signInAgain(w, r, f.grant)
			return
		}
		if err != nil {
			s.decisionFailed(w, r, "approve grant", err)
			return
		}
		target = resp.GetRedirectUri()
	case "deny":
		resp, err := s.authorize.DenyGrant(ctx, &authorizev1.DenyGrantRequest{GrantId: f.grant})
		if err != nil {
			s.decisionFailed(w, r, "deny grant", err)
			return
		}
		target = resp.GetRedirectUri()
	default:
		s.errorPage(w, r, http.StatusBadRequest, i18n.ErrorTitle, i18n.ErrorBadRequest)
		return
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// decisionFailed shows why an approval or refusal did not go through.
func (s *Service) decisionFailed(w http.ResponseWriter, r *http.Request, what string, err error) {
	switch errs.KindOf(err) {
	case errs.KindFailedPrecondition, errs.KindConflict:
		s.grantError(w, r, http.StatusConflict, i18n.ErrorGrantAnswered)
	case errs.KindNotFound, errs.KindInvalid:
		s.grantError(w, r, http.StatusNotFound, i18n.ErrorGrantUnknown)
	case errs.KindPermissionDenied:
		s.grantError(w, r, http.StatusForbidden, i18n.ConsentAdminMissing)
	default:
		s.failure(w, r, what, err)
	}
}

// consentView describes a client and what it asks for.
func (s *Service) consentView(r *http.Request, c *authorizev1.ClientInfo, scope string, who *signedIn) consentView {
	l := s.localizer(r)
	v := consentView{
		ClientName: clientName(c),
		ClientURI:  webURL(c.GetClientUri(), false),
		LogoURI:    webURL(c.GetLogoUri(), true),
		PolicyURI:  webURL(c.GetPolicyUri(), false),
		TOSURI:     webURL(c.GetTosUri(), false),
	}
	if u, err := url.Parse(v.ClientURI); err == nil {
		v.ClientHost = u.Host
	}
	v.LogoAlt = l.T(i18n.ConsentLogoAlt, v.ClientName)
	var wantsAdmin bool
	v.Scopes, wantsAdmin = describeScopes(l, scope)
	v.AdminMissing = wantsAdmin && !who.user.GetAdmin()
	return v
}

// webURL returns u if it is an absolute http(s) URL (https only when
// httpsOnly), else "": client metadata becomes links and images only when it
// cannot be a javascript: or data: URL, and logos only over https.
func webURL(u string, httpsOnly bool) string {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" || p.User != nil {
		return ""
	}
	if p.Scheme == "https" || (p.Scheme == "http" && !httpsOnly) {
		return p.String()
	}
	return ""
}

// The Matrix scopes (MSC2967), in their stable and unstable forms.
const (
	scopeAPI              = "urn:matrix:client:api:*"
	scopeAPIUnstable      = "urn:matrix:org.matrix.msc2967.client:api:*"
	scopeDevice           = "urn:matrix:client:device:"
	scopeDeviceUnstable   = "urn:matrix:org.matrix.msc2967.client:device:"
	scopeSynapseAdmin     = "urn:synapse:admin:*"
	scopeMASAdmin         = "urn:mas:admin"
	scopeMASGraphQL       = "urn:mas:graphql:*"
	scopeOpenID           = "openid"
	scopeEmail            = "email"
	maxDeviceIDInConsents = 64
)

// describeScopes says in plain words what a scope allows, in a fixed order,
// and whether it asks for administrator access.
func describeScopes(l i18n.Localizer, scope string) ([]scopeLine, bool) {
	var api, openid, email, synapseAdmin, masAdmin, graphql bool
	var device string
	var other []string
	for _, tok := range strings.Fields(scope) {
		switch {
		case tok == scopeAPI || tok == scopeAPIUnstable:
			api = true
		case strings.HasPrefix(tok, scopeDevice):
			device = strings.TrimPrefix(tok, scopeDevice)
		case strings.HasPrefix(tok, scopeDeviceUnstable):
			device = strings.TrimPrefix(tok, scopeDeviceUnstable)
		case tok == scopeOpenID:
			openid = true
		case tok == scopeEmail:
			email = true
		case tok == scopeSynapseAdmin:
			synapseAdmin = true
		case tok == scopeMASAdmin:
			masAdmin = true
		case tok == scopeMASGraphQL:
			graphql = true
		default:
			other = append(other, tok)
		}
	}
	var lines []scopeLine
	add := func(cond bool, text string, admin bool) {
		if cond {
			lines = append(lines, scopeLine{Text: text, Admin: admin})
		}
	}
	add(openid, l.T(i18n.ScopeOpenID), false)
	add(email, l.T(i18n.ScopeEmail), false)
	add(api, l.T(i18n.ScopeAPI), false)
	add(device != "", l.T(i18n.ScopeDevice, truncate(device, maxDeviceIDInConsents)), false)
	add(api && device == "", l.T(i18n.ScopeNewDevice), false)
	add(graphql, l.T(i18n.ScopeGraphQL), false)
	add(synapseAdmin, l.T(i18n.ScopeSynapseAdmin), true)
	add(masAdmin, l.T(i18n.ScopeMASAdmin), true)
	for _, o := range other {
		add(true, l.T(i18n.ScopeOther, o), false)
	}
	return lines, synapseAdmin || masAdmin
}

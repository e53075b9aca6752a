package web

import (
	"net/http"
	"net/url"

	"gatehouse.dev/platform/errs"
	authorizev1 "gatehouse.dev/proto/gatehouse/authorize/v1"
	"gatehouse.dev/services/web/internal/i18n"
	"gatehouse.dev/services/web/internal/input"
	"gatehouse.dev/services/web/internal/render"
)

// The device link (RFC 8628 §3.3): a device shows a code and the address of
// /link; the person types the code (or opens the address with ?code= filled
// in), signs in if needed, sees which application asks for what, and allows
// or refuses it. The device, polling the token endpoint, then gets its tokens
// or access_denied.

// linkView is the data of the code entry page.
type linkView struct {
	Action string
	Code   render.Field
}

// linkDoneView is the data of the page that ends a device link.
type linkDoneView struct {
	Message string
}

// handleLinkGet asks for the code, or, with ?code=, shows the consent for
// the device once the person is signed in.
func (s *Service) handleLinkGet(w http.ResponseWriter, r *http.Request) {
	l := s.localizer(r)
	typed := r.URL.Query().Get("code")
	if typed == "" {
		s.renderLink(w, r, http.StatusOK, "", "")
		return
	}
	code := input.CleanUserCode(typed)
	if code == "" {
		s.renderLink(w, r, http.StatusBadRequest, truncate(typed, 32), l.T(i18n.LinkCodeUnknown))
		return
	}
	limit, err := s.take(w, r, perIP(s.rules.DeviceCodeEntry, r))
	if err != nil {
		s.failure(w, r, "rate limit device codes", err)
		return
	}
	if !limit.Allowed {
		s.renderLink(w, r, http.StatusTooManyRequests, code, l.T(i18n.LinkRateLimited))
		return
	}
	dg, ok := s.deviceGrant(w, r, code)
	if !ok {
		return
	}
	who, ok := s.requireUser(w, r, "login", url.Values{"device": {code}})
	if !ok {
		return
	}
	f := flow{device: code}
	v := s.consentView(r, dg.GetClient(), dg.GetScope(), who)
	v.Action = s.path("link") + "?" + url.Values{"code": {code}}.Encode()
	v.Intro = l.T(i18n.ConsentDeviceIntro, v.ClientName)
	v.UserCode = dg.GetUserCode()
	v.SignOutAction = s.flowURL("logout", f)
	v.SignOutCSRF = s.csrf.Token(w, r, "logout")
	s.render(w, r, http.StatusOK, "consent", &render.View{Title: l.T(i18n.ConsentTitle), User: who.user, CSRF: s.csrf.Token(w, r, "link"), Page: v})
}

// deviceGrant looks a user code up. When it is unknown or no longer
// pending, it shows the code form again with the reason and reports false.
func (s *Service) deviceGrant(w http.ResponseWriter, r *http.Request, code string) (*authorizev1.DeviceGrant, bool) {
	l := s.localizer(r)
	resp, err := s.authorize.GetDeviceGrant(r.Context(), &authorizev1.GetDeviceGrantRequest{UserCode: code})
	if err != nil {
		if k := errs.KindOf(err); k == errs.KindNotFound || k == errs.KindInvalid {
			s.renderLink(w, r, http.StatusNotFound, code, l.T(i18n.LinkCodeUnknown))
		} else {
			s.failure(w, r, "get device grant", err)
		}
		return nil, false
	}
	dg := resp.GetDeviceGrant()
	if dg.GetStatus() != authorizev1.DeviceGrantStatus_DEVICE_GRANT_STATUS_PENDING {
		s.renderLink(w, r, http.StatusConflict, code, l.T(i18n.LinkCodeUsed))
		return nil, false
	}
	return dg, true
}

// handleLinkPost records the person's answer for the device.
func (s *Service) handleLinkPost(w http.ResponseWriter, r *http.Request) {
	code := input.CleanUserCode(r.URL.Query().Get("code"))
	if err := r.ParseForm(); err != nil || code == "" {
		s.errorPage(w, r, http.StatusBadRequest, i18n.ErrorTitle, i18n.ErrorBadRequest)
		return
	}
	l := s.localizer(r)
	who, ok := s.requireUser(w, r, "login", url.Values{"device": {code}})
	if !ok {
		return
	}
	if !s.csrf.Check(r, "link") {
		s.redirect(w, r, "link", url.Values{"code": {code}})
		return
	}
	dg, ok := s.deviceGrant(w, r, code)
	if !ok {
		return
	}
	ctx := s.asUser(r.Context(), who)
	var err error
	switch r.PostFormValue("action") {
	case "allow":
		if _, admin := describeScopes(l, dg.GetScope()); admin && !who.user.GetAdmin() {
			s.errorPage(w, r, http.StatusForbidden, i18n.ErrorTitle, i18n.ConsentAdminMissing)
			return
		}
		_, err = s.authorize.ApproveDeviceGrant(ctx, &authorizev1.ApproveDeviceGrantRequest{UserCode: code})
	case "deny":
		_, err = s.authorize.DenyDeviceGrant(ctx, &authorizev1.DenyDeviceGrantRequest{UserCode: code})
	default:
		s.errorPage(w, r, http.StatusBadRequest, i18n.ErrorTitle, i18n.ErrorBadRequest)
		return
	}
	if err != nil {
		switch errs.KindOf(err) {
		case errs.KindFailedPrecondition, errs.KindConflict:
			s.renderLink(w, r, http.StatusConflict, code, l.T(i18n.LinkCodeUsed))
		case errs.KindNotFound, errs.KindInvalid:
			s.renderLink(w, r, http.StatusNotFound, code, l.T(i18n.LinkCodeUnknown))
		case errs.KindPermissionDenied:
			s.errorPage(w, r, http.StatusForbidden, i18n.ErrorTitle, i18n.ConsentAdminMissing)
		default:
			s.failure(w, r, "answer device grant", err)
		}
		return
	}
	s.redirect(w, r, "link/done", url.Values{"code": {code}})
}

// handleLinkDone tells the person how the link ended.
func (s *Service) handleLinkDone(w http.ResponseWriter, r *http.Request) {
	l := s.localizer(r)
	code := input.CleanUserCode(r.URL.Query().Get("code"))
	if code == "" {
		s.redirect(w, r, "link", nil)
		return
	}
	resp, err := s.authorize.GetDeviceGrant(r.Context(), &authorizev1.GetDeviceGrantRequest{UserCode: code})
	if k := errs.KindOf(err); err != nil && (k == errs.KindNotFound || k == errs.KindInvalid) {
		s.redirect(w, r, "link", nil)
		return
	} else if err != nil {
		s.failure(w, r, "get device grant", err)
		return
	}
	dg := resp.GetDeviceGrant()
	name := clientName(dg.GetClient())
	switch dg.GetStatus() {
	case authorizev1.DeviceGrantStatus_DEVICE_GRANT_STATUS_APPROVED, authorizev1.DeviceGrantStatus_DEVICE_GRANT_STATUS_USED:
		s.render(w, r, http.StatusOK, "link_done", &render.View{Title: l.T(i18n.LinkDoneTitle), Page: linkDoneView{Message: l.T(i18n.LinkDoneBody, name)}})
	case authorizev1.DeviceGrantStatus_DEVICE_GRANT_STATUS_DENIED:
		s.render(w, r, http.StatusOK, "link_done", &render.View{Title: l.T(i18n.LinkDeniedTitle), Page: linkDoneView{Message: l.T(i18n.LinkDeniedBody, name)}})
	default:
		s.redirect(w, r, "link", url.Values{"code": {code}})
	}
}

// renderLink shows the code entry form. It is sent with GET: looking a code
// up changes nothing.
func (s *Service) renderLink(w http.ResponseWriter, r *http.Request, status int, code, codeErr string) {
	l := s.localizer(r)
	v := linkView{
		Action: s.path("link"),
		Code: render.Field{
			ID: "code", Name: "code", Type: "text", Label: l.T(i18n.FieldUserCode), Hint: l.T(i18n.FieldUserCodeHint),
			Autocomplete: "off", Autocapitalize: "characters", Value: code, Error: codeErr, Required: true, MaxLength: 32, Autofocus: true,
		},
	}
	s.render(w, r, status, "link", &render.View{Title: l.T(i18n.LinkTitle), Page: v})
}

package web

import (
	"errors"
	"maps"
	"net/http"
	"slices"
	"strings"

	"gatehouse.dev/platform/clientaddr"
	"gatehouse.dev/services/web/internal/captcha"
	"gatehouse.dev/services/web/internal/i18n"
)

// The CAPTCHA (captcha section of the configuration, internal/captcha): on
// the registration form always, on the sign-in form once
// LoginAfterFailures failed attempts count against the client's address or
// the account. The widget needs the provider's JavaScript; everything else
// on these pages works without it, and the form says what to do when it is
// off.

// CaptchaConfig is the CAPTCHA of the forms; an empty Provider means none.
type CaptchaConfig struct {
	// Provider is cloudflare_turnstile, hcaptcha or recaptcha_v2.
	Provider string
	// SiteKey is public; SecretKey only ever goes to the provider's verify URL.
	SiteKey, SecretKey string
	// VerifyURL and ScriptURL replace the provider's (a stand-in in tests).
	VerifyURL, ScriptURL string
	// LoginAfterFailures asks for it at sign-in after that many failures
	// (rate_limits.login); 0: never.
	LoginAfterFailures int
}

// captchaView is the widget of a form, shown by the "captcha" partial.
type captchaView struct {
	captcha.Widget
	Label, NoScript, Error string
}

// showCaptcha returns the widget of a page with the error next to it, and
// lets the page load the provider's script (its Content-Security-Policy
// allows the provider's origin on this answer only).
func (s *Service) showCaptcha(w http.ResponseWriter, r *http.Request, errText string) *captchaView {
	l := s.localizer(r)
	w.Header().Set("Content-Security-Policy", extendCSP(csp, s.captcha.Sources()))
	widget := s.captcha.Widget(l.Lang)
	return &captchaView{
		Widget: widget, Label: l.T(i18n.CaptchaLabel), Error: errText,
		NoScript: l.T(i18n.CaptchaNoScript, widget.Title, s.cfg.ServiceName),
	}
}

// checkCaptcha asks the provider about the form's token. It returns "" when
// the person solved it, else the text to show next to the widget and the
// status to answer with: 400 for a missing or refused token, 503 when the
// provider cannot be asked.
func (s *Service) checkCaptcha(r *http.Request) (string, int) {
	l := s.localizer(r)
	token := s.captcha.Token(r)
	if token == "" {
		return l.T(i18n.CaptchaMissing), http.StatusBadRequest
	}
	err := s.captcha.Verify(r.Context(), token, clientaddr.String(r))
	switch {
	case err == nil:
		return "", 0
	case errors.Is(err, captcha.ErrFailed):
		s.logger.InfoContext(r.Context(), "CAPTCHA refused", "err", err)
		return l.T(i18n.CaptchaFailed), http.StatusBadRequest
	}
	s.logger.WarnContext(r.Context(), "CAPTCHA provider unavailable", "err", err)
	return l.T(i18n.CaptchaUnavailable), http.StatusServiceUnavailable
}

// captchaAtLogin reports whether the sign-in form asks for the CAPTCHA: the
// failed attempts counted against the client's address (or, with a
// username, against the account) have reached LoginAfterFailures.
func (s *Service) captchaAtLogin(r *http.Request, username string) bool {
	n := s.cfg.Captcha.LoginAfterFailures
	if s.captcha == nil || n <= 0 {
		return false
	}
	if s.limiter.Spent(r.Context(), perIP(s.rules.LoginPerIP, r)) >= n {
		return true
	}
	return username != "" && s.limiter.Spent(r.Context(), s.loginKeys(r, username)[1]) >= n
}

// extendCSP adds sources to the directives of a policy, adding the
// directives it lacks.
func extendCSP(policy string, sources map[string][]string) string {
	var out []string
	seen := map[string]bool{}
	for d := range strings.SplitSeq(policy, ";") {
		d = strings.TrimSpace(d)
		name, _, _ := strings.Cut(d, " ")
		seen[name] = true
		if extra := sources[name]; len(extra) > 0 {
			d += " " + strings.Join(extra, " ")
		}
		out = append(out, d)
	}
	for _, name := range slices.Sorted(maps.Keys(sources)) {
		if !seen[name] {
			out = append(out, name+" "+strings.Join(sources[name], " "))
		}
	}
	return strings.Join(out, "; ")
}

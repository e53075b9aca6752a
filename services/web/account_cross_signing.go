package web

import (
	"net/http"

	"gatehouse.dev/platform/errs"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
	"gatehouse.dev/services/web/internal/i18n"
)

// The page of MSC4191's cross_signing_reset action: the person allows the
// homeserver to accept a reset of their cross-signing keys for a while
// (MSC4312), which the token service asks of the homeserver.

// crossSigningView is the data of the cross-signing reset page.
type crossSigningView struct {
	BackURL string
	// Action is where the "allow the reset" form posts.
	Action string
	// Allowed: the homeserver now accepts a reset for a while.
	Allowed bool
	// Unavailable: no homeserver is connected to allow it on.
	Unavailable bool
}

// handleCrossSigningGet is the page of MSC4191's cross_signing_reset action.
func (s *Service) handleCrossSigningGet(w http.ResponseWriter, r *http.Request, who *signedIn) {
	s.renderCrossSigning(w, r, http.StatusOK, who, crossSigningView{})
}

func (s *Service) renderCrossSigning(w http.ResponseWriter, r *http.Request, status int, who *signedIn, v crossSigningView) {
	l := s.localizer(r)
	v.BackURL, v.Action = s.path("account"), s.path("account/cross-signing-reset")
	s.renderAccount(w, r, status, who, l.T(i18n.AccountCrossSigningTitle),
		&accountView{Section: sectionCrossSigning, CrossSigning: &v}, "", "")
}

// handleCrossSigningPost asks the homeserver to accept a cross-signing reset
// from this user without further authentication for a while (MSC4312).
func (s *Service) handleCrossSigningPost(w http.ResponseWriter, r *http.Request, who *signedIn) {
	if !s.checkAccountCSRF(w, r, "account-"+sectionCrossSigning) {
		return
	}
	_, err := s.token.AllowCrossSigningReset(s.asUser(r.Context(), who), &tokenv1.AllowCrossSigningResetRequest{Localpart: who.user.GetUsername()})
	switch {
	case err == nil:
		s.renderCrossSigning(w, r, http.StatusOK, who, crossSigningView{Allowed: true})
	case errs.KindOf(err) == errs.KindFailedPrecondition:
		s.renderCrossSigning(w, r, http.StatusServiceUnavailable, who, crossSigningView{Unavailable: true})
	default:
		s.failure(w, r, "allow cross-signing reset", err)
	}
}

package web

import (
	"net/http"

	"gatehouse.dev/platform/errs"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	"gatehouse.dev/services/web/internal/i18n"
)

// The identity providers linked to the account, listed on the profile page
// with a button to unlink each. Accounts refuses to unlink the last way in
// (no password and no other usable link); the page says so.

// upstreamLinkItem is one linked identity provider.
type upstreamLinkItem struct {
	ID, Provider, Email string
	Linked              *timeView
}

// upstreamLinks lists the signed-in user's links for the profile page.
func (s *Service) upstreamLinks(r *http.Request, who *signedIn) ([]upstreamLinkItem, error) {
	resp, err := s.accounts.ListUpstreamLinks(s.asUser(r.Context(), who), &accountsv1.ListUpstreamLinksRequest{UserId: who.user.GetId()})
	if err != nil {
		return nil, err
	}
	l := s.localizer(r)
	var out []upstreamLinkItem
	for _, link := range resp.GetLinks() {
		out = append(out, upstreamLinkItem{ID: link.GetLinkId(), Provider: link.GetProviderName(), Email: link.GetEmail(), Linked: when(l, link.GetLinkedAt())})
	}
	return out, nil
}

// handleUnlinkPost unlinks one of the user's identity providers.
func (s *Service) handleUnlinkPost(w http.ResponseWriter, r *http.Request, who *signedIn) {
	if !s.checkAccountCSRF(w, r, "account-upstream-unlink") {
		return
	}
	_, err := s.accounts.RemoveUpstreamLink(s.asUser(r.Context(), who), &accountsv1.RemoveUpstreamLinkRequest{
		UserId: who.user.GetId(), LinkId: truncate(r.PostFormValue("link_id"), 64),
	})
	switch {
	case err == nil, errs.KindOf(err) == errs.KindNotFound:
		s.done(w, r, "account", "unlinked") // a link gone already is unlinked too
	case errs.KindOf(err) == errs.KindFailedPrecondition:
		s.showProfile(w, r, http.StatusConflict, who, profileErrors{form: s.localizer(r).T(i18n.AccountUpstreamLastWay)}, "")
	default:
		s.failure(w, r, "unlink identity provider", err)
	}
}

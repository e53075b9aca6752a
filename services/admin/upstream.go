package admin

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/ids"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	pagingv1 "gatehouse.dev/proto/gatehouse/paging/v1"
)

// Upstream identity providers and the links of users to their identities
// there: the accounts service's. Providers come from the configuration, so
// their ids are the configured ones (not ULIDs), they are all enabled and
// have no time of creation (the epoch stands for it); a link's
// human_account_name is the address recorded with it.

type providerAttributes struct {
	Issuer                    *string `json:"issuer"`
	HumanName                 *string `json:"human_name"`
	BrandName                 *string `json:"brand_name"`
	CreatedAt                 string  `json:"created_at"`
	DisabledAt                *string `json:"disabled_at"`
	RegistrationTokenRequired bool    `json:"registration_token_required"`
}

func (s *Service) providerResource(p *accountsv1.UpstreamProvider) resource {
	return s.resource(upstreamProviders, p.GetProviderId(), providerAttributes{
		Issuer: nullable(p.GetIssuer()), HumanName: nullable(p.GetHumanName()), BrandName: nullable(p.GetBrand()),
		CreatedAt: rfc3339v(nil),
	})
}

// providers returns the configured providers in id order.
func (s *Service) providers(ctx context.Context) ([]*accountsv1.UpstreamProvider, error) {
	resp, err := s.accounts.ListUpstreamProviders(ctx, &accountsv1.ListUpstreamProvidersRequest{})
	if err != nil {
		return nil, err
	}
	out := resp.GetProviders()
	slices.SortFunc(out, func(a, b *accountsv1.UpstreamProvider) int {
		return strings.Compare(a.GetProviderId(), b.GetProviderId())
	})
	return out, nil
}

func (s *Service) listProviders(ctx context.Context, r *request) (reply, error) {
	pr, err := r.query.page()
	if err != nil {
		return reply{}, err
	}
	enabled, err := r.query.boolean("filter[enabled]")
	if err != nil {
		return reply{}, err
	}
	all, err := s.providers(ctx)
	if err != nil {
		return reply{}, err
	}
	if enabled != nil && !*enabled {
		all = nil // every configured provider is enabled
	}
	page, info := pageOf(all, pr, (*accountsv1.UpstreamProvider).GetProviderId)
	items := make([]resource, 0, len(page))
	for _, p := range page {
		items = append(items, s.providerResource(p))
	}
	return s.page(r, upstreamProviders, pr, info, items), nil
}

func (s *Service) getProvider(ctx context.Context, r *request) (reply, error) {
	id := r.path("id")
	all, err := s.providers(ctx)
	if err != nil {
		return reply{}, err
	}
	for _, p := range all {
		if p.GetProviderId() == id {
			res := s.providerResource(p)
			return reply{status: http.StatusOK, body: single{Data: res, Links: res.Links}}, nil
		}
	}
	return reply{}, providerNotFound(id)
}

func providerNotFound(id string) error {
	return &apiError{status: http.StatusNotFound, title: "Upstream OAuth 2.0 provider ID " + url.PathEscape(id) + " not found"}
}

// pageOf is the page pr asks of items sorted by key: what paging does in
// the services, for a list that the configuration holds.
func pageOf[T any](items []T, pr *pagingv1.PageRequest, key func(T) string) ([]T, *pagingv1.PageInfo) {
	info := &pagingv1.PageInfo{}
	if pr.GetCount() != pagingv1.Count_COUNT_UNSPECIFIED {
		total := int64(len(items))
		info.Total = &total
	}
	if pr.GetCount() == pagingv1.Count_COUNT_ONLY {
		return nil, info
	}
	var in []T
	for _, it := range items {
		k := key(it)
		if (pr.GetAfter() == "" || k > pr.GetAfter()) && (pr.GetBefore() == "" || k < pr.GetBefore()) {
			in = append(in, it)
		}
	}
	if n := int(pr.GetLast()); n > 0 {
		if len(in) > n {
			in, info.HasPreviousPage = in[len(in)-n:], true
		}
		return in, info
	}
	if n := int(pr.GetFirst()); len(in) > n {
		in, info.HasNextPage = in[:n], true
	}
	return in, info
}

type linkAttributes struct {
	CreatedAt        string  `json:"created_at"`
	ProviderID       string  `json:"provider_id"`
	Subject          string  `json:"subject"`
	UserID           *string `json:"user_id"`
	HumanAccountName *string `json:"human_account_name"`
}

func (s *Service) linkResource(l *accountsv1.UpstreamLink) resource {
	return s.resource(upstreamLinks, l.GetLinkId(), linkAttributes{
		CreatedAt: rfc3339v(l.GetLinkedAt()), ProviderID: l.GetProviderId(), Subject: l.GetSubject(),
		UserID: nullable(l.GetUserId()), HumanAccountName: nullable(l.GetEmail()),
	})
}

func (s *Service) listLinks(ctx context.Context, r *request) (reply, error) {
	pr, err := r.query.page()
	if err != nil {
		return reply{}, err
	}
	user, err := r.query.ulid("filter[user]")
	if err != nil {
		return reply{}, err
	}
	provider := r.query.get("filter[provider]")
	req := &accountsv1.ListUpstreamLinksRequest{Page: pr, UserId: user, ProviderId: provider,
		Subject: r.query.get("filter[subject]"), AddressContains: r.query.get("filter[human-account-name]")}
	// A user or provider that does not exist is 404, as MAS answers.
	if user != "" {
		if _, err := s.accounts.GetUser(ctx, &accountsv1.GetUserRequest{UserId: user}); err != nil {
			return reply{}, notFound(err, "User", user)
		}
	}
	if provider != "" {
		if err := s.knownProvider(ctx, provider); err != nil {
			return reply{}, err
		}
	}
	resp, err := s.accounts.ListUpstreamLinks(ctx, req)
	if err != nil {
		return reply{}, err
	}
	items := make([]resource, 0, len(resp.GetLinks()))
	for _, l := range resp.GetLinks() {
		items = append(items, s.linkResource(l))
	}
	return s.page(r, upstreamLinks, pr, resp.GetPage(), items), nil
}

// knownProvider is nil when a provider with the id is configured.
func (s *Service) knownProvider(ctx context.Context, id string) error {
	all, err := s.providers(ctx)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(all, func(p *accountsv1.UpstreamProvider) bool { return p.GetProviderId() == id }) {
		return providerNotFound(id)
	}
	return nil
}

// link returns one link by its id.
func (s *Service) link(ctx context.Context, id string) (*accountsv1.UpstreamLink, error) {
	resp, err := s.accounts.ListUpstreamLinks(ctx, &accountsv1.ListUpstreamLinksRequest{LinkId: id, Page: &pagingv1.PageRequest{First: 1}})
	if err != nil {
		return nil, err
	}
	if len(resp.GetLinks()) == 0 {
		return nil, &apiError{status: http.StatusNotFound, title: fmt.Sprintf("Upstream OAuth 2.0 Link ID %s not found", id)}
	}
	return resp.GetLinks()[0], nil
}

func (s *Service) getLink(ctx context.Context, r *request) (reply, error) {
	id, err := pathID(r)
	if err != nil {
		return reply{}, err
	}
	l, err := s.link(ctx, id)
	if err != nil {
		return reply{}, err
	}
	res := s.linkResource(l)
	return reply{status: http.StatusOK, body: single{Data: res, Links: res.Links}}, nil
}

// addLink links an identity to a user: 201 for a new link, 200 when the
// user already holds it, 409 when someone else does.
func (s *Service) addLink(ctx context.Context, r *request) (reply, error) {
	var in struct {
		UserID           string  `json:"user_id"`
		ProviderID       string  `json:"provider_id"`
		Subject          string  `json:"subject"`
		HumanAccountName *string `json:"human_account_name"`
	}
	if err := r.decode(&in); err != nil {
		return reply{}, err
	}
	if in.UserID == "" || in.ProviderID == "" || in.Subject == "" {
		return reply{}, badRequest("user_id, provider_id and subject are required")
	}
	if !ids.Valid(in.UserID) {
		return reply{}, badRequest("Invalid user_id: not a ULID.")
	}
	if _, err := s.accounts.GetUser(ctx, &accountsv1.GetUserRequest{UserId: in.UserID}); err != nil {
		return reply{}, notFound(err, "User", in.UserID)
	}
	if err := s.knownProvider(ctx, in.ProviderID); err != nil {
		return reply{}, err
	}
	held, err := s.accounts.ListUpstreamLinks(ctx, &accountsv1.ListUpstreamLinksRequest{ProviderId: in.ProviderID, Subject: in.Subject,
		Page: &pagingv1.PageRequest{First: 1}})
	if err != nil {
		return reply{}, err
	}
	taken := func() error {
		return &apiError{status: http.StatusConflict,
			title: fmt.Sprintf("Upstream OAuth 2.0 Provider ID %s with subject %s is already linked to a user", in.ProviderID, in.Subject)}
	}
	if len(held.GetLinks()) > 0 {
		l := held.GetLinks()[0]
		if l.GetUserId() != in.UserID {
			return reply{}, taken()
		}
		res := s.linkResource(l)
		return reply{status: http.StatusOK, body: single{Data: res, Links: res.Links}}, nil
	}
	resp, err := s.accounts.AddUpstreamLink(ctx, &accountsv1.AddUpstreamLinkRequest{UserId: in.UserID, ProviderId: in.ProviderID,
		Subject: in.Subject, Email: deref(in.HumanAccountName)})
	switch errs.KindOf(err) {
	case errs.KindAlreadyExists:
		return reply{}, taken()
	case errs.KindNotFound:
		return reply{}, notFound(err, "User", in.UserID)
	}
	if err != nil {
		return reply{}, err
	}
	res := s.linkResource(resp.GetLink())
	return reply{status: http.StatusCreated, body: single{Data: res, Links: res.Links}}, nil
}

func (s *Service) deleteLink(ctx context.Context, r *request) (reply, error) {
	id, err := pathID(r)
	if err != nil {
		return reply{}, err
	}
	l, err := s.link(ctx, id)
	if err != nil {
		return reply{}, err
	}
	_, err = s.accounts.RemoveUpstreamLink(ctx, &accountsv1.RemoveUpstreamLinkRequest{UserId: l.GetUserId(), LinkId: id})
	if errs.KindOf(err) == errs.KindFailedPrecondition {
		// The user's last way to sign in (no password, no other usable link).
		return reply{}, &apiError{status: http.StatusConflict, title: errs.PublicMessage(err)}
	}
	if err != nil {
		return reply{}, notFound(err, "Upstream OAuth 2.0 Link", id)
	}
	return reply{status: http.StatusNoContent}, nil
}

// deref is *p, or "" for nil.
func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

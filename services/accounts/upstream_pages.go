package accounts

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/ids"
	"gatehouse.dev/platform/paging"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	pagingv1 "gatehouse.dev/proto/gatehouse/paging/v1"
	"gatehouse.dev/services/accounts/internal/upstream"
)

// linkFilter narrows a page of links (ListUpstreamLinks with a page).
type linkFilter struct {
	userID, provider, linkID, subject, addressContains string
}

// maxScannedAddresses bounds the links whose addresses are opened to filter
// by address (sealed, so not comparable in SQL).
const maxScannedAddresses = 10000

// pageLinks lists one page of links in id order. The subject and the
// address are sealed in the read model: a subject is found by its claim key
// (keyed hash of namespace and subject), an address by opening the
// candidates' (at most maxScannedAddresses).
func (s *Service) pageLinks(ctx context.Context, f linkFilter, pr *pagingv1.PageRequest) ([]*accountsv1.UpstreamLink, *pagingv1.PageInfo, error) {
	p, err := paging.From(pr, ids.Valid)
	if err != nil {
		return nil, nil, err
	}
	q := &paging.Query{From: "upstream_links", Key: "link_id", Columns: linkColumns}
	if f.userID != "" {
		if !ids.Valid(f.userID) {
			return nil, nil, errs.InvalidField("user_id", "user_id must be a user id such as 01HZX3…")
		}
		q.Where("user_id = ?", f.userID)
	}
	if f.linkID != "" {
		if !ids.Valid(f.linkID) {
			return nil, nil, errs.InvalidField("link_id", "link_id must be a link id such as 01HZX3…")
		}
		q.Where("link_id = ?", f.linkID)
	}
	namespaces := []string{f.provider}
	if pv, ok := s.upstream.Get(f.provider); ok {
		namespaces = pv.Namespaces()
	}
	q.WhereIf(f.provider != "", "provider = ANY(?)", namespaces)
	if f.subject != "" {
		if f.provider == "" {
			if namespaces, err = s.linkNamespaces(ctx); err != nil {
				return nil, nil, err
			}
		}
		keys := make([]string, 0, len(namespaces))
		for _, ns := range namespaces {
			keys = append(keys, upstream.ClaimKey(s.claimKey, ns, f.subject))
		}
		q.Where("claim_key = ANY(?)", keys)
	}
	if f.addressContains != "" {
		matching, err := s.linksWithAddress(ctx, *q, f.addressContains)
		if err != nil {
			return nil, nil, err
		}
		q.Where("link_id = ANY(?)", matching)
	}
	rows, info, err := paging.List(ctx, s.pool, q, p, func(r pgx.Rows) (linkRow, error) { return s.scanLink(ctx, r) })
	if err != nil {
		return nil, nil, errs.Wrap(errs.KindUnavailable, "Sign-in links cannot be read right now.", err)
	}
	out := make([]*accountsv1.UpstreamLink, 0, len(rows))
	for _, r := range rows {
		out = append(out, r.link)
	}
	return out, info, nil
}

// linkNamespaces are the namespaces links are recorded under: every
// configured provider's, and any other a link was imported under.
func (s *Service) linkNamespaces(ctx context.Context) ([]string, error) {
	var out []string
	for _, p := range s.upstream.List() {
		out = append(out, p.Namespaces()...)
	}
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT provider FROM upstream_links`)
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "Sign-in links cannot be read right now.", err)
	}
	recorded, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "Sign-in links cannot be read right now.", err)
	}
	return append(out, recorded...), nil
}

// linksWithAddress returns the ids of q's links whose opened address holds
// text, case-insensitively.
func (s *Service) linksWithAddress(ctx context.Context, q paging.Query, text string) ([]string, error) {
	rows, _, err := paging.List(ctx, s.pool, &q, paging.Page{Size: maxScannedAddresses, Items: true}, func(r pgx.Rows) (linkRow, error) { return s.scanLink(ctx, r) })
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "Sign-in links cannot be read right now.", err)
	}
	want := strings.ToLower(text)
	matching := []string{}
	for _, r := range rows {
		if strings.Contains(strings.ToLower(r.link.GetEmail()), want) {
			matching = append(matching, r.link.GetLinkId())
		}
	}
	return matching, nil
}

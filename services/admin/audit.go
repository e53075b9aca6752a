package admin

import (
	"context"
	"slices"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	pagingv1 "gatehouse.dev/proto/gatehouse/paging/v1"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
)

// The audit trail, beyond MAS: every auth event of a user (or of everyone)
// — sign-ins and browser sessions, passwords, locks, emails and
// administrators' acts from the accounts service; OAuth, compat and
// personal sessions started, renamed and ended, personal tokens
// regenerated and login tokens from the token service — merged by event
// id. Event ids are ULIDs, so the merged trail is in time order, and one
// cursor pages through both: each service is asked for a page after (or
// before) it, and the first (or last) N of their union are the answer.

type auditAttributes struct {
	OccurredAt string  `json:"occurred_at"`
	EventType  string  `json:"event_type"`
	Source     string  `json:"source"`
	UserID     *string `json:"user_id"`
	Actor      string  `json:"actor"`
	IPAddress  *string `json:"ip_address"`
	SessionID  *string `json:"session_id"`
	Summary    string  `json:"summary"`
}

// auditItem is one entry of either service, by event id.
type auditItem struct {
	id    string
	attrs auditAttributes
}

func (s *Service) listAudit(ctx context.Context, r *request) (reply, error) {
	pr, err := r.query.page()
	if err != nil {
		return reply{}, err
	}
	user, err := r.query.ulid("filter[user]")
	if err != nil {
		return reply{}, err
	}
	acc, err := s.accounts.ListAuditEntries(ctx, &accountsv1.ListAuditEntriesRequest{UserId: user, Page: pr})
	if err != nil {
		return reply{}, err
	}
	tok, err := s.token.ListAuditEntries(ctx, &tokenv1.ListAuditEntriesRequest{UserId: user, Page: pr})
	if err != nil {
		return reply{}, err
	}
	at := func(ts *timestamppb.Timestamp) string { return rfc3339v(ts) }
	var all []auditItem
	for _, e := range acc.GetEntries() {
		all = append(all, auditItem{e.GetEventId(), auditAttributes{OccurredAt: at(e.GetOccurredAt()), EventType: e.GetEventType(),
			Source: "accounts", UserID: nullable(e.GetUserId()), Actor: e.GetActor(), IPAddress: nullable(e.GetIpAddress()), Summary: e.GetSummary()}})
	}
	for _, e := range tok.GetEntries() {
		all = append(all, auditItem{e.GetEventId(), auditAttributes{OccurredAt: at(e.GetOccurredAt()), EventType: e.GetEventType(),
			Source: "token", UserID: nullable(e.GetUserId()), Actor: e.GetActor(), IPAddress: nullable(e.GetIpAddress()),
			SessionID: nullable(e.GetSessionId()), Summary: e.GetSummary()}})
	}
	slices.SortFunc(all, func(a, b auditItem) int { return strings.Compare(a.id, b.id) })
	info := mergeInfo(pr, acc.GetPage(), tok.GetPage(), len(all))
	switch n := int(max(pr.GetFirst(), pr.GetLast())); {
	case len(all) <= n:
	case pr.GetLast() > 0:
		all = all[len(all)-n:]
	default:
		all = all[:n]
	}
	items := make([]resource, 0, len(all))
	for _, it := range all {
		items = append(items, s.resource(auditEvents, it.id, it.attrs))
	}
	return s.page(r, auditEvents, pr, info, items), nil
}

// mergeInfo is where the merged page stands: more beyond it when either
// service had more, or the union holds more than a page.
func mergeInfo(pr *pagingv1.PageRequest, a, b *pagingv1.PageInfo, union int) *pagingv1.PageInfo {
	more := union > int(max(pr.GetFirst(), pr.GetLast()))
	info := &pagingv1.PageInfo{}
	if pr.GetLast() > 0 {
		info.HasPreviousPage = more || a.GetHasPreviousPage() || b.GetHasPreviousPage()
	} else {
		info.HasNextPage = more || a.GetHasNextPage() || b.GetHasNextPage()
	}
	if a.Total != nil && b.Total != nil {
		total := a.GetTotal() + b.GetTotal()
		info.Total = &total
	}
	return info
}

package admin

import (
	"context"
	"net/http"

	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
)

// Browser sessions ("user sessions" in MAS): the accounts service's.

type userSessionAttributes struct {
	CreatedAt    string  `json:"created_at"`
	FinishedAt   *string `json:"finished_at"`
	UserID       string  `json:"user_id"`
	UserAgent    *string `json:"user_agent"`
	LastActiveAt *string `json:"last_active_at"`
	LastActiveIP *string `json:"last_active_ip"`
}

func (s *Service) userSessionResource(bs *accountsv1.BrowserSession) resource {
	return s.resource(userSessions, bs.GetSessionId(), userSessionAttributes{
		CreatedAt: rfc3339v(bs.GetCreatedAt()), FinishedAt: rfc3339(bs.GetEndedAt()), UserID: bs.GetUserId(),
		UserAgent: nullable(bs.GetUserAgent()), LastActiveAt: rfc3339(bs.GetLastActiveAt()), LastActiveIP: nullable(bs.GetIpAddress()),
	})
}

func (s *Service) listUserSessions(ctx context.Context, r *request) (reply, error) {
	pr, err := r.query.page()
	if err != nil {
		return reply{}, err
	}
	req := &accountsv1.ListBrowserSessionsRequest{Page: pr}
	if req.UserId, err = r.query.ulid("filter[user]"); err != nil {
		return reply{}, err
	}
	if req.Status, err = r.query.enum("filter[status]"); err != nil {
		return reply{}, err
	}
	if req.CreatedBefore, req.CreatedAfter, req.LastActiveBefore, req.LastActiveAfter, err = timeRanges(r.query); err != nil {
		return reply{}, err
	}
	resp, err := s.accounts.ListBrowserSessions(ctx, req)
	if err != nil {
		return reply{}, err
	}
	items := make([]resource, 0, len(resp.GetSessions()))
	for _, bs := range resp.GetSessions() {
		items = append(items, s.userSessionResource(bs))
	}
	return s.page(r, userSessions, pr, resp.GetPage(), items), nil
}

func (s *Service) getUserSession(ctx context.Context, r *request) (reply, error) {
	id, err := pathID(r)
	if err != nil {
		return reply{}, err
	}
	resp, err := s.accounts.GetBrowserSession(ctx, &accountsv1.GetBrowserSessionRequest{SessionId: id})
	if err != nil {
		return reply{}, notFound(err, "User session", id)
	}
	res := s.userSessionResource(resp.GetSession())
	return reply{status: http.StatusOK, body: single{Data: res, Links: res.Links}}, nil
}

func (s *Service) finishUserSession(ctx context.Context, r *request) (reply, error) {
	id, err := pathID(r)
	if err != nil {
		return reply{}, err
	}
	got, err := s.accounts.GetBrowserSession(ctx, &accountsv1.GetBrowserSessionRequest{SessionId: id})
	if err != nil {
		return reply{}, notFound(err, "User session", id)
	}
	if got.GetSession().GetEndedAt() != nil {
		return reply{}, badRequest("User session ID " + id + " is already finished")
	}
	if _, err := s.accounts.EndBrowserSession(ctx, &accountsv1.EndBrowserSessionRequest{SessionId: id}); err != nil {
		return reply{}, notFound(err, "User session", id)
	}
	resp, err := s.accounts.GetBrowserSession(ctx, &accountsv1.GetBrowserSessionRequest{SessionId: id})
	if err != nil {
		return reply{}, err
	}
	res := s.userSessionResource(resp.GetSession())
	return reply{status: http.StatusOK, body: single{Data: res, Links: res.Links}}, nil
}

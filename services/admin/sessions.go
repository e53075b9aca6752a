package admin

import (
	"context"
	"net/http"
	"slices"

	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/paging"
	authorizev1 "gatehouse.dev/proto/gatehouse/authorize/v1"
	pagingv1 "gatehouse.dev/proto/gatehouse/paging/v1"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
)

// OAuth 2.0 and compatibility sessions: the token service's sessions of
// those kinds (client_credentials sessions count as OAuth ones).

type oauthSessionAttributes struct {
	CreatedAt     string  `json:"created_at"`
	FinishedAt    *string `json:"finished_at"`
	UserID        *string `json:"user_id"`
	UserSessionID *string `json:"user_session_id"`
	ClientID      string  `json:"client_id"`
	Scope         string  `json:"scope"`
	UserAgent     *string `json:"user_agent"`
	LastActiveAt  *string `json:"last_active_at"`
	LastActiveIP  *string `json:"last_active_ip"`
	HumanName     *string `json:"human_name"`
}

type compatSessionAttributes struct {
	UserID        string  `json:"user_id"`
	DeviceID      *string `json:"device_id"`
	UserSessionID *string `json:"user_session_id"`
	RedirectURI   *string `json:"redirect_uri"`
	CreatedAt     string  `json:"created_at"`
	UserAgent     *string `json:"user_agent"`
	LastActiveAt  *string `json:"last_active_at"`
	LastActiveIP  *string `json:"last_active_ip"`
	FinishedAt    *string `json:"finished_at"`
	HumanName     *string `json:"human_name"`
}

// sessionKind is a kind of token session the API shows as a collection.
type sessionKind struct {
	kind  string   // QuerySessions' kind filter
	kinds []string // the sessions' kinds
	coll  collection
	what  string // "OAuth 2.0 session", for errors
	attrs func(*tokenv1.Session) any
}

var (
	oauthKind = sessionKind{kind: "oauth", kinds: []string{"oauth", "client_credentials"}, coll: oauthSessions, what: "OAuth 2.0 session",
		attrs: func(ts *tokenv1.Session) any {
			return oauthSessionAttributes{
				CreatedAt: rfc3339v(ts.GetCreatedAt()), FinishedAt: rfc3339(ts.GetEndedAt()), UserID: nullable(ts.GetUserId()),
				UserSessionID: nullable(ts.GetBrowserSessionId()), ClientID: ts.GetClientId(), Scope: ts.GetScope(), UserAgent: nullable(ts.GetUserAgent()),
				LastActiveAt: rfc3339(ts.GetLastActiveAt()), LastActiveIP: nullable(ts.GetIpAddress()), HumanName: nullable(ts.GetDeviceDisplayName()),
			}
		}}
	compatKind = sessionKind{kind: "compat", kinds: []string{"compat"}, coll: compatSessions, what: "Compatibility session",
		attrs: func(ts *tokenv1.Session) any {
			return compatSessionAttributes{
				UserID: ts.GetUserId(), DeviceID: nullable(ts.GetDeviceId()), UserSessionID: nullable(ts.GetBrowserSessionId()), CreatedAt: rfc3339v(ts.GetCreatedAt()),
				UserAgent: nullable(ts.GetUserAgent()), LastActiveAt: rfc3339(ts.GetLastActiveAt()), LastActiveIP: nullable(ts.GetIpAddress()),
				FinishedAt: rfc3339(ts.GetEndedAt()), HumanName: nullable(ts.GetDeviceDisplayName()),
			}
		}}
)

// timeRanges reads the created and last-active filters.
func timeRanges(q *query) (createdBefore, createdAfter, activeBefore, activeAfter *timestamppb.Timestamp, err error) {
	for _, f := range []struct {
		name string
		dst  **timestamppb.Timestamp
	}{
		{"filter[created-before]", &createdBefore}, {"filter[created-after]", &createdAfter},
		{"filter[last-active-before]", &activeBefore}, {"filter[last-active-after]", &activeAfter},
	} {
		if *f.dst, err = q.time(f.name); err != nil {
			return
		}
	}
	return
}

// statusFilter maps the API's status onto the token service's.
func statusFilter(v, finished string) tokenv1.SessionStatus {
	switch v {
	case "active":
		return tokenv1.SessionStatus_SESSION_STATUS_ACTIVE
	case finished:
		return tokenv1.SessionStatus_SESSION_STATUS_FINISHED
	}
	return tokenv1.SessionStatus_SESSION_STATUS_UNSPECIFIED
}

// listSessions lists one kind of session with the filters of its route.
func (s *Service) listSessions(ctx context.Context, r *request, k sessionKind, req *tokenv1.QuerySessionsRequest) (reply, error) {
	pr, err := r.query.page()
	if err != nil {
		return reply{}, err
	}
	req.Page, req.Kind = pr, k.kind
	resp, err := s.token.QuerySessions(ctx, req)
	if err != nil {
		return reply{}, err
	}
	items := make([]resource, 0, len(resp.GetSessions()))
	for _, ts := range resp.GetSessions() {
		items = append(items, s.resource(k.coll, ts.GetSessionId(), k.attrs(ts)))
	}
	return s.page(r, k.coll, pr, resp.GetPage(), items), nil
}

// sessionFilters reads the filters the OAuth and compat lists share.
func sessionFilters(r *request) (*tokenv1.QuerySessionsRequest, error) {
	req := &tokenv1.QuerySessionsRequest{}
	var err error
	if req.UserId, err = r.query.ulid("filter[user]"); err != nil {
		return nil, err
	}
	if req.BrowserSessionId, err = r.query.ulid("filter[user-session]"); err != nil {
		return nil, err
	}
	st, err := r.query.enum("filter[status]")
	if err != nil {
		return nil, err
	}
	req.Status = statusFilter(st, "finished")
	if req.CreatedBefore, req.CreatedAfter, req.LastActiveBefore, req.LastActiveAfter, err = timeRanges(r.query); err != nil {
		return nil, err
	}
	return req, nil
}

func (s *Service) listOAuthSessions(ctx context.Context, r *request) (reply, error) {
	req, err := sessionFilters(r)
	if err != nil {
		return reply{}, err
	}
	req.ClientId, req.Scopes = r.query.get("filter[client]"), r.query.all("filter[scope]")
	kind, err := r.query.enum("filter[client-kind]")
	if err != nil {
		return reply{}, err
	}
	if kind != "" {
		// Static clients are the configuration's: few. Dynamic ones are all others.
		static, err := s.staticClients(ctx)
		if err != nil {
			return reply{}, err
		}
		switch {
		case kind == "static" && len(static) == 0:
			static = []string{""} // no client has an empty id: nothing matches
			fallthrough
		case kind == "static":
			req.ClientIds = static
		default:
			req.ClientIds, req.ExcludeClientIds = static, true
		}
	}
	return s.listSessions(ctx, r, oauthKind, req)
}

// staticClients are the ids of the clients the configuration lists.
func (s *Service) staticClients(ctx context.Context) ([]string, error) {
	resp, err := s.authorize.ListClients(ctx, &authorizev1.ListClientsRequest{Source: "configuration", Page: &pagingv1.PageRequest{First: paging.MaxSize}})
	if err != nil {
		return nil, err
	}
	if resp.GetPage().GetHasNextPage() {
		return nil, errs.Internalf("admin: more than %d static clients", paging.MaxSize)
	}
	out := make([]string, 0, len(resp.GetClients()))
	for _, c := range resp.GetClients() {
		out = append(out, c.GetClientId())
	}
	return out, nil
}

func (s *Service) listCompatSessions(ctx context.Context, r *request) (reply, error) {
	req, err := sessionFilters(r)
	if err != nil {
		return reply{}, err
	}
	return s.listSessions(ctx, r, compatKind, req)
}

// session reads one session of a kind: another kind's is not found.
func (s *Service) session(ctx context.Context, r *request, k sessionKind) (*tokenv1.Session, error) {
	id, err := pathID(r)
	if err != nil {
		return nil, err
	}
	resp, err := s.token.GetSession(ctx, &tokenv1.GetSessionRequest{SessionId: id})
	if err == nil && !slices.Contains(k.kinds, resp.GetSession().GetKind()) {
		err = errs.NotFound("not of this kind")
	}
	if err != nil {
		return nil, notFound(err, k.what, id)
	}
	return resp.GetSession(), nil
}

func (s *Service) getSessionOf(ctx context.Context, r *request, k sessionKind) (reply, error) {
	ts, err := s.session(ctx, r, k)
	if err != nil {
		return reply{}, err
	}
	return s.one(http.StatusOK, k.coll, ts.GetSessionId(), k.attrs(ts)), nil
}

// finish ends a live session of a kind (reason "admin").
func (s *Service) finish(ctx context.Context, r *request, k sessionKind, alreadyStatus int, alreadyTitle string) (*tokenv1.Session, error) {
	ts, err := s.session(ctx, r, k)
	if err != nil {
		return nil, err
	}
	if ts.GetEndedAt() != nil {
		return nil, &apiError{status: alreadyStatus, title: k.what + " ID " + ts.GetSessionId() + " " + alreadyTitle}
	}
	if _, err := s.token.EndSession(ctx, &tokenv1.EndSessionRequest{SessionId: ts.GetSessionId(), Reason: "admin"}); err != nil {
		return nil, err
	}
	resp, err := s.token.GetSession(ctx, &tokenv1.GetSessionRequest{SessionId: ts.GetSessionId()})
	if err != nil {
		return nil, err
	}
	return resp.GetSession(), nil
}

func (s *Service) finishSessionOf(ctx context.Context, r *request, k sessionKind) (reply, error) {
	ts, err := s.finish(ctx, r, k, http.StatusBadRequest, "is already finished")
	if err != nil {
		return reply{}, err
	}
	return s.one(http.StatusOK, k.coll, ts.GetSessionId(), k.attrs(ts)), nil
}

func (s *Service) getOAuthSession(ctx context.Context, r *request) (reply, error) {
	return s.getSessionOf(ctx, r, oauthKind)
}

func (s *Service) finishOAuthSession(ctx context.Context, r *request) (reply, error) {
	return s.finishSessionOf(ctx, r, oauthKind)
}

func (s *Service) getCompatSession(ctx context.Context, r *request) (reply, error) {
	return s.getSessionOf(ctx, r, compatKind)
}

func (s *Service) finishCompatSession(ctx context.Context, r *request) (reply, error) {
	return s.finishSessionOf(ctx, r, compatKind)
}

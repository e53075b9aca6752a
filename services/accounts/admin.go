package accounts

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/caller"
	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/ids"
	"gatehouse.dev/platform/paging"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	pagingv1 "gatehouse.dev/proto/gatehouse/paging/v1"
	"gatehouse.dev/services/accounts/internal/browser"
	"gatehouse.dev/services/accounts/internal/user"
)

// What administrators (the admin API, the admin CLI) ask beyond the rest:
// the admin flag, one address or browser session by id, and pages of every
// user's addresses and browser sessions in id order with the admin API's
// filters (paging.Page).

// SetAdmin makes a user an administrator, or no longer one.
func (g *grpcServer) SetAdmin(ctx context.Context, req *accountsv1.SetAdminRequest) (*accountsv1.SetAdminResponse, error) {
	u, err := g.change(ctx, req.GetUserId(), func(s user.State) ([]proto.Message, error) { return user.SetAdmin(s, req.GetAdmin()) })
	if err != nil {
		return nil, err
	}
	return &accountsv1.SetAdminResponse{User: u}, nil
}

// emailID is the id of a user's address added at a time: a ULID of that
// millisecond and a hash of the user and the address (ids.Derive), so the
// users projection gives every address the same id however often it is
// rebuilt (migration 0009 computes the same for rows older than it).
func emailID(at time.Time, userID, email string) string {
	return ids.Derive(at, "user_email\n"+userID+"\n"+email)
}

// emailColumns are the columns scanEmail reads.
const emailColumns = `email, is_primary, added_at, verification_id, email_id, user_id`

func scanEmail(row pgx.Row) (*accountsv1.Email, error) {
	var (
		e  accountsv1.Email
		at time.Time
	)
	if err := row.Scan(&e.Email, &e.Primary, &at, &e.VerificationId, &e.EmailId, &e.UserId); err != nil {
		return nil, err
	}
	// Every address a user holds was proved before it was added.
	e.Verified, e.AddedAt = true, timestamppb.New(at)
	return &e, nil
}

// GetEmail returns one address by its id.
func (g *grpcServer) GetEmail(ctx context.Context, req *accountsv1.GetEmailRequest) (*accountsv1.GetEmailResponse, error) {
	if !ids.Valid(req.GetEmailId()) {
		return nil, errs.InvalidField("email_id", "email_id is not an address id")
	}
	e, err := scanEmail(g.svc.pool.QueryRow(ctx, `SELECT `+emailColumns+` FROM user_emails WHERE email_id = $1`, req.GetEmailId()))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errs.NotFound("No such email address.")
	}
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "Email addresses cannot be read right now.", err)
	}
	return &accountsv1.GetEmailResponse{Email: e}, nil
}

// pageEmails is one page of every user's addresses (or one user's).
func (s *Service) pageEmails(ctx context.Context, req *accountsv1.ListEmailsRequest) (*accountsv1.ListEmailsResponse, error) {
	if req.GetUserId() != "" && !ids.Valid(req.GetUserId()) {
		return nil, errs.InvalidField("user_id", "user_id must be a user id such as 01HZX3…")
	}
	p, err := paging.From(req.GetPage(), ids.Valid)
	if err != nil {
		return nil, err
	}
	q := &paging.Query{From: "user_emails", Columns: emailColumns, Key: "email_id"}
	q.WhereIf(req.GetUserId() != "", "user_id = ?", req.GetUserId())
	if req.GetEmail() != "" {
		email, err := user.NormalizeEmail(req.GetEmail())
		if err != nil {
			return nil, err
		}
		q.Where("email = ?", email)
	}
	list, info, err := paging.List(ctx, s.pool, q, p, func(r pgx.Rows) (*accountsv1.Email, error) { return scanEmail(r) })
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "Email addresses cannot be read right now.", err)
	}
	return &accountsv1.ListEmailsResponse{Emails: list, Page: info}, nil
}

// GetBrowserSession returns one browser session.
func (g *grpcServer) GetBrowserSession(ctx context.Context, req *accountsv1.GetBrowserSessionRequest) (*accountsv1.GetBrowserSessionResponse, error) {
	if !ids.Valid(req.GetSessionId()) {
		return nil, errs.InvalidField("session_id", "session_id is not a session id")
	}
	r := &sessionRow{}
	err := g.svc.pool.QueryRow(ctx, `SELECT `+sessionColumns+` FROM browser_sessions s WHERE s.session_id = $1`, req.GetSessionId()).Scan(r.scanTargets()...)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errs.NotFound("No such browser session.")
	}
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "Browser sessions cannot be read right now.", err)
	}
	g.svc.withActivity(r)
	return &accountsv1.GetBrowserSessionResponse{Session: r.proto(g.svc.now())}, nil
}

// pageBrowserSessions is one page of browser sessions with the admin API's
// filters. A session is active until it ends or expires (browser.MaxAge
// after it started, browser.MaxIdle after its last recorded activity).
func (s *Service) pageBrowserSessions(ctx context.Context, req *accountsv1.ListBrowserSessionsRequest) (*accountsv1.ListBrowserSessionsResponse, error) {
	if req.GetUserId() != "" && !ids.Valid(req.GetUserId()) {
		return nil, errs.InvalidField("user_id", "user_id must be a user id such as 01HZX3…")
	}
	p, err := paging.From(req.GetPage(), ids.Valid)
	if err != nil {
		return nil, err
	}
	now := s.now()
	q := &paging.Query{From: "browser_sessions s", Columns: sessionColumns, Key: "s.session_id"}
	q.WhereIf(req.GetUserId() != "", "s.user_id = ?", req.GetUserId())
	const active = "s.ended_at IS NULL AND s.created_at > ? AND s.last_active_at > ?"
	switch req.GetStatus() {
	case "":
	case "active":
		q.Where(active, now.Add(-browser.MaxAge), now.Add(-browser.MaxIdle))
	case "finished":
		q.Where("NOT ("+active+")", now.Add(-browser.MaxAge), now.Add(-browser.MaxIdle))
	default:
		return nil, errs.InvalidField("status", "status is active or finished")
	}
	for _, f := range []struct {
		cond string
		at   *timestamppb.Timestamp
	}{
		{"s.created_at < ?", req.GetCreatedBefore()}, {"s.created_at > ?", req.GetCreatedAfter()},
		{"s.last_active_at < ?", req.GetLastActiveBefore()}, {"s.last_active_at > ?", req.GetLastActiveAfter()},
	} {
		if f.at != nil {
			q.Where(f.cond, f.at.AsTime())
		}
	}
	rows, info, err := paging.List(ctx, s.pool, q, p, func(r pgx.Rows) (*sessionRow, error) {
		row := &sessionRow{}
		return row, r.Scan(row.scanTargets()...)
	})
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "Browser sessions cannot be read right now.", err)
	}
	resp := &accountsv1.ListBrowserSessionsResponse{Page: info}
	for _, r := range rows {
		s.withActivity(r)
		resp.Sessions = append(resp.Sessions, r.proto(now))
	}
	return resp, nil
}

// adminPage reports whether a list call asking for a page comes from an
// administrator (anyone else lists one user's, the older way).
func adminPage(ctx context.Context, page *pagingv1.PageRequest) bool {
	id, _ := caller.From(ctx)
	return page != nil && id.Is(caller.Admin)
}

package accounts

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/projection"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/accounts/internal/browser"
)

// sessionsReadModel keeps the browser_sessions table from the sessions'
// events and the batches of their activity, their personal fields opened. It
// also follows the users' events for one: erasing a user empties the address
// and user agent of every session of theirs and marks them erased, so that
// activity applied later (noted before the erasure, or sealed with a key a
// process still held in memory) records no address on them.
func (s *Service) sessionsReadModel() projection.Projection {
	return projection.Projection{
		Name:     sessionsProjection,
		Subjects: []string{eventsv1.AccountsBrowser.Subjects(), eventsv1.AccountsActivity.Subjects(), eventsv1.AccountsUser.Subjects()},
		Apply:    s.unsealing(applySessionEvent),
		Tables:   []string{"browser_sessions"},
		// The users' events but an erasure, stepped over undecoded (an
		// import's above all).
		Ignores: []proto.Message{&eventsv1.UserRegistered{}, &eventsv1.UserImported{}, &eventsv1.PasswordChanged{}, &eventsv1.UserLocked{},
			&eventsv1.UserUnlocked{}, &eventsv1.UserReactivated{}, &eventsv1.DisplayNameSet{}, &eventsv1.AdminSet{}, &eventsv1.UpstreamLinked{},
			&eventsv1.UpstreamUnlinked{}, &eventsv1.EmailAdded{}, &eventsv1.EmailRemoved{}, &eventsv1.PrimaryEmailSet{}},
	}
}

func applySessionEvent(ctx context.Context, tx pgx.Tx, rec eventlog.Record) error {
	at := rec.OccurredAt()
	seq := int64(rec.Seq)
	var (
		sql  string
		args []any
	)
	switch ev := rec.Event.(type) {
	case *eventsv1.BrowserSessionStarted:
		sql = `INSERT INTO browser_sessions (session_id, user_id, secret_hash, user_agent, ip_address, created_at, authenticated_at, last_active_at, version,
		       upstream_provider, upstream_sid, auth_methods)
		       VALUES ($1, $2, $3, $4, $5, $6, $6, $6, $7, $8, $9, $10) ON CONFLICT (session_id) DO NOTHING`
		args = []any{ev.GetSessionId(), ev.GetUserId(), ev.GetSecretHash(), ev.GetUserAgent(), ev.GetIpAddress(), at, seq,
			ev.GetUpstreamProvider(), ev.GetUpstreamSid(), methodsOrEmpty(ev.GetAuthMethods())}
	case *eventsv1.BrowserSessionReauthenticated:
		sql = `UPDATE browser_sessions SET authenticated_at = $2, auth_methods = $3, version = $4
		       WHERE session_id = $1 AND ended_at IS NULL AND version < $4`
		args = []any{ev.GetSessionId(), at, methodsOrEmpty(ev.GetAuthMethods()), seq}
	case *eventsv1.BrowserSessionEnded:
		sql = `UPDATE browser_sessions SET ended_at = $2, end_reason = $3, version = $4 WHERE session_id = $1 AND ended_at IS NULL`
		args = []any{ev.GetSessionId(), at, ev.GetReason(), seq}
	case *eventsv1.BrowserSessionsActive:
		// One statement for the whole batch. Activity only moves forward (several
		// replicas flush their own batches) and is not recorded on ended sessions.
		n := len(ev.GetEntries())
		ids, ips, ats := make([]string, 0, n), make([]string, 0, n), make([]time.Time, 0, n)
		for _, e := range ev.GetEntries() {
			ids = append(ids, e.GetSessionId())
			ips = append(ips, e.GetIpAddress())
			ats = append(ats, time.Unix(e.GetLastActiveUnix(), 0).UTC())
		}
		sql = `UPDATE browser_sessions b
		       SET last_active_at = v.at, ip_address = CASE WHEN v.ip <> '' AND NOT b.erased THEN v.ip ELSE b.ip_address END
		       FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS v(id, ip, at)
		       WHERE b.session_id = v.id AND b.ended_at IS NULL AND v.at > b.last_active_at`
		args = []any{ids, ips, ats}
	case *eventsv1.UserDeactivated:
		if !ev.GetErase() {
			return nil
		}
		sql = `UPDATE browser_sessions SET ip_address = '', user_agent = '', erased = true WHERE user_id = $1`
		args = []any{ev.GetUserId()}
	case *eventsv1.UserRegistered, *eventsv1.UserImported, *eventsv1.PasswordChanged, *eventsv1.UserLocked, *eventsv1.UserUnlocked,
		*eventsv1.UserReactivated, *eventsv1.DisplayNameSet, *eventsv1.AdminSet, *eventsv1.UpstreamLinked, *eventsv1.UpstreamUnlinked, *eventsv1.EmailAdded,
		*eventsv1.EmailRemoved, *eventsv1.PrimaryEmailSet:
		return nil // only an erasure changes sessions
	default:
		return eventlog.Unhandled(rec)
	}
	if _, err := tx.Exec(ctx, sql, args...); err != nil {
		return fmt.Errorf("browser_sessions: %s: %w", rec.Type(), err)
	}
	return nil
}

// methodsOrEmpty keeps a nil list of methods from becoming NULL.
func methodsOrEmpty(m []string) []string {
	if m == nil {
		return []string{}
	}
	return m
}

// sessionRow is a row of the browser_sessions read model (without the secret's hash).
type sessionRow struct {
	id, userID, userAgent, ip              string
	upstreamProvider                       string
	createdAt, authenticatedAt, lastActive time.Time
	endedAt                                *time.Time
	authMethods                            []string
}

const sessionColumns = `s.session_id, s.user_id, s.user_agent, s.ip_address, s.created_at, s.authenticated_at, s.last_active_at, s.ended_at, s.upstream_provider, s.auth_methods`

func (r *sessionRow) scanTargets() []any {
	return []any{&r.id, &r.userID, &r.userAgent, &r.ip, &r.createdAt, &r.authenticatedAt, &r.lastActive, &r.endedAt, &r.upstreamProvider, &r.authMethods}
}

// live reports whether the session authenticates at now, ignoring its user.
func (r *sessionRow) live(now time.Time) bool {
	return r.endedAt == nil && browser.Live(r.createdAt, r.lastActive, now)
}

// proto is the public view of the session at now: an expired session shows
// when it expired as its end.
func (r *sessionRow) proto(now time.Time) *accountsv1.BrowserSession {
	bs := &accountsv1.BrowserSession{
		SessionId: r.id, UserId: r.userID, UserAgent: r.userAgent, IpAddress: r.ip,
		CreatedAt: timestamppb.New(r.createdAt), AuthenticatedAt: timestamppb.New(r.authenticatedAt),
		LastActiveAt: timestamppb.New(r.lastActive), UpstreamProvider: r.upstreamProvider, AuthMethods: r.authMethods,
	}
	switch {
	case r.endedAt != nil:
		bs.EndedAt = timestamppb.New(*r.endedAt)
	case !r.live(now):
		bs.EndedAt = timestamppb.New(browser.ExpiresAt(r.createdAt, r.lastActive))
	}
	return bs
}

// withActivity brings the row's last activity up to what this process has
// recorded but not yet written.
func (s *Service) withActivity(r *sessionRow) {
	if n, ok := s.activity.Last(r.id); ok && n.At.After(r.lastActive) {
		r.lastActive = n.At
		if n.IP != "" {
			r.ip = n.IP
		}
	}
}

var errNoSession = errs.NotFound("No such browser session.")

func (s *Service) sessionByID(ctx context.Context, id string) (*sessionRow, error) {
	r := &sessionRow{}
	err := s.pool.QueryRow(ctx, `SELECT `+sessionColumns+` FROM browser_sessions s WHERE s.session_id = $1`, id).Scan(r.scanTargets()...)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errNoSession
	}
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "Browser sessions cannot be read right now.", err)
	}
	s.withActivity(r)
	return r, nil
}

// sessionBySecretHash finds a session that has not ended by its secret's hash,
// with its user, unless the user is locked or deactivated. Whether it expired
// is the caller's to check.
func (s *Service) sessionBySecretHash(ctx context.Context, hash string) (*sessionRow, *userRow, error) {
	r := &sessionRow{}
	var row pgx.Row = s.pool.QueryRow(ctx, `SELECT `+sessionColumns+`, `+qualifiedUserColumns+`
		FROM browser_sessions s JOIN users u ON u.id = s.user_id
		WHERE s.secret_hash = $1 AND s.ended_at IS NULL AND NOT u.locked AND NOT u.deactivated`, hash)
	u, err := scanUser(rowFunc(func(dest ...any) error { return row.Scan(append(r.scanTargets(), dest...)...) }))
	if errs.KindOf(err) == errs.KindNotFound {
		return nil, nil, errNoSession
	}
	if err != nil {
		return nil, nil, err
	}
	s.withActivity(r)
	return r, u, nil
}

// rowFunc adapts a scan function to pgx.Row.
type rowFunc func(dest ...any) error

func (f rowFunc) Scan(dest ...any) error { return f(dest...) }

// maxListedSessions bounds ListBrowserSessions: the newest sessions come first.
const maxListedSessions = 500

// listSessions lists a user's sessions, newest first: the live ones, or all
// of them with includeEnded.
func (s *Service) listSessions(ctx context.Context, userID string, includeEnded bool) ([]*sessionRow, error) {
	filter := ""
	if !includeEnded {
		filter = ` AND s.ended_at IS NULL`
	}
	rows, err := s.pool.Query(ctx, `SELECT `+sessionColumns+` FROM browser_sessions s WHERE s.user_id = $1`+filter+`
		ORDER BY s.session_id DESC LIMIT $2`, userID, maxListedSessions)
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "Browser sessions cannot be read right now.", err)
	}
	defer rows.Close()
	now := s.now()
	var out []*sessionRow
	for rows.Next() {
		r := &sessionRow{}
		if err := rows.Scan(r.scanTargets()...); err != nil {
			return nil, errs.Wrap(errs.KindUnavailable, "Browser sessions cannot be read right now.", err)
		}
		s.withActivity(r)
		if includeEnded || r.live(now) {
			out = append(out, r)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "Browser sessions cannot be read right now.", err)
	}
	return out, nil
}

package accounts

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/ids"
	"gatehouse.dev/platform/paging"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	pagingv1 "gatehouse.dev/proto/gatehouse/paging/v1"
)

// userRow is a row of the users read model.
type userRow struct {
	id, username, email, displayName string
	// passwordHash is a hash held in clear by events written before
	// sealing; passwordSealed the marshalled SealedSecret of a sealed one
	// (see storedPassword).
	passwordHash               string
	passwordSealed             []byte
	admin, locked, deactivated bool
	erased                     bool
	createdAt, updatedAt       time.Time
	lockedAt, deactivatedAt    *time.Time
	version                    uint64
}

const userColumns = `id, username, email, display_name, password_hash, password_sealed, admin, locked, deactivated, erased, created_at, updated_at, version, locked_at, deactivated_at`

// qualifiedUserColumns are userColumns of the users table aliased "u", for joins.
var qualifiedUserColumns = "u." + strings.ReplaceAll(userColumns, ", ", ", u.")

func scanUser(row pgx.Row) (*userRow, error) {
	u := &userRow{}
	var version int64
	err := row.Scan(&u.id, &u.username, &u.email, &u.displayName, &u.passwordHash, &u.passwordSealed, &u.admin, &u.locked, &u.deactivated, &u.erased, &u.createdAt, &u.updatedAt, &version, &u.lockedAt, &u.deactivatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errs.NotFound("No such user.")
	}
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "Users cannot be read right now.", err)
	}
	u.version = uint64(version)
	return u, nil
}

// proto is the public view of the user, without the password hash.
func (u *userRow) proto() *accountsv1.User {
	out := &accountsv1.User{
		Id: u.id, Username: u.username, Email: u.email, DisplayName: u.displayName,
		Admin: u.admin, Locked: u.locked, Deactivated: u.deactivated, Erased: u.erased, HasPassword: u.hasPassword(),
		CreatedAt: timestamppb.New(u.createdAt), UpdatedAt: timestamppb.New(u.updatedAt),
	}
	if u.lockedAt != nil && u.locked {
		out.LockedAt = timestamppb.New(*u.lockedAt)
	}
	if u.deactivatedAt != nil && u.deactivated {
		out.DeactivatedAt = timestamppb.New(*u.deactivatedAt)
	}
	return out
}

func (s *Service) userByID(ctx context.Context, id string) (*userRow, error) {
	return scanUser(s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id))
}

func (s *Service) userByUsername(ctx context.Context, username string) (*userRow, error) {
	return scanUser(s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE username = $1`, username))
}

// Page sizes of list calls.
const (
	defaultPageSize = 50
	maxPageSize     = 500
)

func pageSize(n int32) (int, error) {
	switch {
	case n < 0 || n > maxPageSize:
		return 0, errs.InvalidField("page_size", fmt.Sprintf("page_size must be between 1 and %d", maxPageSize))
	case n == 0:
		return defaultPageSize, nil
	}
	return int(n), nil
}

// Page tokens are opaque to clients: base64 of the last key of the previous page.
func encodeToken(key string) string { return base64.RawURLEncoding.EncodeToString([]byte(key)) }

func decodeToken(token string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return "", errs.InvalidField("page_token", "page_token is not a token from a previous page")
	}
	return string(b), nil
}

// listUsers pages through users in id (creation) order: with page, as the
// admin API asks (paging.Page); else by page_size and page_token, which are
// the same forward paging written the older way.
func (s *Service) listUsers(ctx context.Context, req *accountsv1.ListUsersRequest) (*accountsv1.ListUsersResponse, error) {
	page := req.GetPage()
	if page == nil {
		size, err := pageSize(req.GetPageSize())
		if err != nil {
			return nil, err
		}
		after, err := decodeToken(req.GetPageToken())
		if err != nil {
			return nil, err
		}
		page = &pagingv1.PageRequest{First: int32(size), After: after}
	}
	p, err := paging.From(page, nil)
	if err != nil {
		return nil, err
	}
	q := &paging.Query{From: "users", Columns: userColumns, Key: "id"}
	switch req.GetStatus() {
	case accountsv1.UserStatus_USER_STATUS_UNSPECIFIED:
	case accountsv1.UserStatus_USER_STATUS_ACTIVE:
		q.Where("NOT locked AND NOT deactivated")
	case accountsv1.UserStatus_USER_STATUS_LOCKED:
		q.Where("locked")
	case accountsv1.UserStatus_USER_STATUS_DEACTIVATED:
		q.Where("deactivated")
	case accountsv1.UserStatus_USER_STATUS_LOCKED_OR_DEACTIVATED:
		q.Where("locked OR deactivated")
	default:
		return nil, errs.InvalidField("status", "unknown status filter")
	}
	if req.Admin != nil {
		q.Where("admin = ?", req.GetAdmin())
	}
	if term := req.GetSearch(); term != "" {
		q.Where("strpos(username, ?) > 0", strings.ToLower(term))
	}
	bySessions, err := filterBySessions(q, req)
	if err != nil {
		return nil, err
	}
	if bySessions {
		if err := s.catchUpTokenSessions(ctx); err != nil {
			return nil, err
		}
	}
	users, info, err := paging.List(ctx, s.pool, q, p, func(r pgx.Rows) (*accountsv1.User, error) {
		u, err := scanUser(r)
		if err != nil {
			return nil, err
		}
		return u.proto(), nil
	})
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "Users cannot be read right now.", err)
	}
	resp := &accountsv1.ListUsersResponse{Users: users}
	if req.GetPage() != nil {
		resp.Page = info
	} else if info.GetHasNextPage() && len(users) > 0 {
		resp.NextPageToken = encodeToken(users[len(users)-1].GetId())
	}
	return resp, nil
}

// pageAudit is one page of the audit log in event id (time) order.
func (s *Service) pageAudit(ctx context.Context, req *accountsv1.ListAuditEntriesRequest) (*accountsv1.ListAuditEntriesResponse, error) {
	if req.GetUserId() != "" && !ids.Valid(req.GetUserId()) {
		return nil, errs.InvalidField("user_id", "user_id must be a user id such as 01HZX3…")
	}
	p, err := paging.From(req.GetPage(), ids.Valid)
	if err != nil {
		return nil, err
	}
	if err := s.catchUpAudit(ctx); err != nil {
		return nil, err
	}
	q := &paging.Query{From: "audit_entries", Key: "event_id",
		Columns: "seq, event_id, event_type, user_id, actor, occurred_at, summary, ip_address"}
	q.WhereIf(req.GetUserId() != "", "user_id = ?", req.GetUserId())
	if r := s.cfg.AuditRetention; r > 0 {
		q.Where("occurred_at >= ?", s.clock().Add(-r)) // swept hourly; never shown past it
	}
	entries, info, err := paging.List(ctx, s.pool, q, p, func(r pgx.Rows) (*accountsv1.AuditEntry, error) {
		var (
			e  accountsv1.AuditEntry
			at time.Time
			sq int64
		)
		err := r.Scan(&sq, &e.EventId, &e.EventType, &e.UserId, &e.Actor, &at, &e.Summary, &e.IpAddress)
		e.Sequence, e.OccurredAt = uint64(sq), timestamppb.New(at)
		return &e, err
	})
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "The audit log cannot be read right now.", err)
	}
	return &accountsv1.ListAuditEntriesResponse{Entries: entries, Page: info}, nil
}

// listAudit pages through the audit log, newest first.
func (s *Service) listAudit(ctx context.Context, req *accountsv1.ListAuditEntriesRequest) (*accountsv1.ListAuditEntriesResponse, error) {
	if req.GetPage() != nil {
		return s.pageAudit(ctx, req)
	}
	size, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	before := int64(1<<62 - 1)
	if req.GetPageToken() != "" {
		tok, err := decodeToken(req.GetPageToken())
		if err != nil {
			return nil, err
		}
		if before, err = strconv.ParseInt(tok, 10, 64); err != nil {
			return nil, errs.InvalidField("page_token", "page_token is not a token from a previous page")
		}
	}
	if err := s.catchUpAudit(ctx); err != nil {
		return nil, err
	}
	since := time.Time{}
	if r := s.cfg.AuditRetention; r > 0 {
		since = s.clock().Add(-r) // swept hourly; never shown past it
	}
	rows, err := s.pool.Query(ctx, `
		SELECT seq, event_id, event_type, user_id, actor, occurred_at, summary FROM audit_entries
		WHERE seq < $1 AND ($2 = '' OR user_id = $2) AND occurred_at >= $4 ORDER BY seq DESC LIMIT $3`, before, req.GetUserId(), size+1, since)
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "The audit log cannot be read right now.", err)
	}
	defer rows.Close()
	resp := &accountsv1.ListAuditEntriesResponse{}
	for rows.Next() {
		var (
			e  accountsv1.AuditEntry
			at time.Time
			sq int64
		)
		if err := rows.Scan(&sq, &e.EventId, &e.EventType, &e.UserId, &e.Actor, &at, &e.Summary); err != nil {
			return nil, errs.Wrap(errs.KindUnavailable, "The audit log cannot be read right now.", err)
		}
		if len(resp.Entries) == size {
			resp.NextPageToken = encodeToken(strconv.FormatUint(resp.Entries[size-1].GetSequence(), 10))
			break
		}
		e.Sequence, e.OccurredAt = uint64(sq), timestamppb.New(at)
		resp.Entries = append(resp.Entries, &e)
	}
	if err := rows.Err(); err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "The audit log cannot be read right now.", err)
	}
	return resp, nil
}

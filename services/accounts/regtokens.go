package accounts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/ids"
	"gatehouse.dev/platform/paging"
	"gatehouse.dev/platform/projection"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// Registration tokens let people create accounts when registration requires
// one (account.registration: token). Each is an aggregate
// accounts.regtoken.<id>; the token itself is shown once and kept only as a
// hash. A use is an expected-version append, so a token allowing n uses
// admits exactly n registrations however many race for it.

var regTokenAggregate = eventsv1.AccountsRegToken.Type

const (
	regTokensProjection   = "registration_tokens"
	maxRegistrationTokens = 1000
)

// regTokenState is a registration token folded from its events.
type regTokenState struct {
	created *eventsv1.RegistrationTokenCreated
	uses    int32
	revoked bool
	// expiresAt and usesAllowed are the created ones, or the last update's.
	expiresAt   *timestamppb.Timestamp
	usesAllowed int32
}

func foldRegToken(history []eventlog.Record) regTokenState {
	var s regTokenState
	for _, rec := range history {
		switch ev := rec.Event.(type) {
		case *eventsv1.RegistrationTokenCreated:
			s.created, s.expiresAt, s.usesAllowed = ev, ev.GetExpiresAt(), ev.GetUsesAllowed()
		case *eventsv1.RegistrationTokenUsed:
			s.uses++
		case *eventsv1.RegistrationTokenRevoked:
			s.revoked = true
		case *eventsv1.RegistrationTokenUnrevoked:
			s.revoked = false
		case *eventsv1.RegistrationTokenUpdated:
			s.expiresAt, s.usesAllowed = ev.GetExpiresAt(), ev.GetUsesAllowed()
		}
	}
	return s
}

// usable reports whether the token admits one more registration at now.
func (s regTokenState) usable(now time.Time) bool {
	switch {
	case s.created == nil, s.revoked:
		return false
	case s.expiresAt != nil && !now.Before(s.expiresAt.AsTime()):
		return false
	case s.usesAllowed > 0 && s.uses >= s.usesAllowed:
		return false
	}
	return true
}

func regTokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func (s *Service) createRegistrationToken(ctx context.Context, req *accountsv1.CreateRegistrationTokenRequest, actor string) (*accountsv1.CreateRegistrationTokenResponse, error) {
	if req.GetUsesAllowed() < 0 {
		return nil, errs.InvalidField("uses_allowed", "uses_allowed must be 0 (unlimited) or more")
	}
	if req.GetExpiresAt() != nil && !req.GetExpiresAt().AsTime().After(s.clock()) {
		return nil, errs.InvalidField("expires_at", "expires_at must be in the future")
	}
	id, token := ids.New(), ids.Token(32)
	if t := req.GetToken(); t != "" {
		if !validChosenToken(t) {
			return nil, errs.InvalidField("token", "A chosen token has 8 to 64 characters of A-Z a-z 0-9 . _ ~ -")
		}
		var taken bool
		if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM registration_tokens WHERE token_hash = $1)`, regTokenHash(t)).Scan(&taken); err != nil {
			return nil, errs.Wrap(errs.KindUnavailable, "Registration tokens cannot be read right now.", err)
		}
		if taken {
			return nil, errs.AlreadyExists("This registration token already exists.")
		}
		token = t
	}
	ev := &eventsv1.RegistrationTokenCreated{TokenId: id, TokenHash: regTokenHash(token), UsesAllowed: req.GetUsesAllowed(), ExpiresAt: req.GetExpiresAt()}
	appended, err := s.log.Append(ctx, eventlog.Write{Expect: eventlog.ExpectNew(), Event: eventlog.Event{
		Aggregate: eventlog.Ref{Type: regTokenAggregate, ID: id}, Actor: actor, Payload: ev,
	}})
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "The token could not be created right now.", err)
	}
	if err := s.projections.WaitFor(ctx, regTokensProjection, appended.Last()); err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "The token was created but is not visible yet.", err)
	}
	return &accountsv1.CreateRegistrationTokenResponse{Token: token, RegistrationToken: &accountsv1.RegistrationToken{
		TokenId: id, UsesAllowed: ev.GetUsesAllowed(), CreatedAt: timestamppb.New(s.clock()), ExpiresAt: ev.GetExpiresAt(),
	}}, nil
}

// useRegistrationToken spends one use; every refusal looks the same.
func (s *Service) useRegistrationToken(ctx context.Context, token, actor string) (string, error) {
	refused := errs.FailedPrecondition("This registration token is not valid.")
	refused.Field = "registration_token"
	if token == "" || len(token) > 128 {
		return "", refused
	}
	var id string
	err := s.pool.QueryRow(ctx, `SELECT token_id FROM registration_tokens WHERE token_hash = $1`, regTokenHash(token)).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", refused
	}
	if err != nil {
		return "", errs.Wrap(errs.KindUnavailable, "Registration tokens cannot be checked right now.", err)
	}
	ref := eventlog.Ref{Type: regTokenAggregate, ID: id}
	_, err = s.log.Execute(ctx, ref, func(history []eventlog.Record, version uint64) ([]eventlog.Write, error) {
		if !foldRegToken(history).usable(s.clock()) {
			return nil, refused
		}
		return []eventlog.Write{{Expect: eventlog.ExpectVersion(version), Event: eventlog.Event{
			Aggregate: ref, Actor: actor, Payload: &eventsv1.RegistrationTokenUsed{TokenId: id},
		}}}, nil
	})
	if err != nil {
		var e *errs.Error
		if errors.As(err, &e) {
			return "", err
		}
		return "", errs.Wrap(errs.KindUnavailable, "The registration token could not be used right now.", err)
	}
	return id, nil
}

func (s *Service) revokeRegistrationToken(ctx context.Context, id, actor string) error {
	if !ids.Valid(id) {
		return errs.InvalidField("token_id", "token_id is not a token id")
	}
	ref := eventlog.Ref{Type: regTokenAggregate, ID: id}
	appended, err := s.log.Execute(ctx, ref, func(history []eventlog.Record, version uint64) ([]eventlog.Write, error) {
		st := foldRegToken(history)
		switch {
		case st.created == nil:
			return nil, errs.NotFound("No such registration token.")
		case st.revoked:
			return nil, nil
		}
		return []eventlog.Write{{Expect: eventlog.ExpectVersion(version), Event: eventlog.Event{
			Aggregate: ref, Actor: actor, Payload: &eventsv1.RegistrationTokenRevoked{TokenId: id},
		}}}, nil
	})
	if err != nil {
		return err
	}
	if appended.Last() > 0 {
		return s.projections.WaitFor(ctx, regTokensProjection, appended.Last())
	}
	return nil
}

// validChosenToken reports whether an administrator's chosen token is one
// a person can type and a URL can carry.
func validChosenToken(t string) bool {
	if len(t) < 8 || len(t) > 64 {
		return false
	}
	for _, c := range []byte(t) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._~-", c) >= 0) {
			return false
		}
	}
	return true
}

// regTokenColumns are the columns scanRegToken reads.
const regTokenColumns = `token_id, uses_allowed, uses, created_at, expires_at, revoked, last_used_at, revoked_at`

func scanRegToken(row pgx.Row) (*accountsv1.RegistrationToken, error) {
	var (
		t                            accountsv1.RegistrationToken
		created                      time.Time
		expires, lastUsed, revokedAt *time.Time
	)
	if err := row.Scan(&t.TokenId, &t.UsesAllowed, &t.Uses, &created, &expires, &t.Revoked, &lastUsed, &revokedAt); err != nil {
		return nil, err
	}
	t.CreatedAt = timestamppb.New(created)
	for _, f := range []struct {
		at  *time.Time
		dst **timestamppb.Timestamp
	}{{expires, &t.ExpiresAt}, {lastUsed, &t.LastUsedAt}, {revokedAt, &t.RevokedAt}} {
		if f.at != nil {
			*f.dst = timestamppb.New(*f.at)
		}
	}
	return &t, nil
}

func (s *Service) listRegistrationTokens(ctx context.Context) ([]*accountsv1.RegistrationToken, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+regTokenColumns+` FROM registration_tokens ORDER BY token_id DESC LIMIT $1`, maxRegistrationTokens)
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "Registration tokens cannot be read right now.", err)
	}
	defer rows.Close()
	var out []*accountsv1.RegistrationToken
	for rows.Next() {
		t, err := scanRegToken(rows)
		if err != nil {
			return nil, errs.Wrap(errs.KindUnavailable, "Registration tokens cannot be read right now.", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// pageRegistrationTokens is one page of tokens in id order, with filters.
func (s *Service) pageRegistrationTokens(ctx context.Context, req *accountsv1.ListRegistrationTokensRequest) (*accountsv1.ListRegistrationTokensResponse, error) {
	p, err := paging.From(req.GetPage(), ids.Valid)
	if err != nil {
		return nil, err
	}
	q := &paging.Query{From: "registration_tokens", Columns: regTokenColumns, Key: "token_id"}
	now := s.clock()
	expired := "(expires_at IS NOT NULL AND expires_at <= ?)"
	usedUp := "(uses_allowed > 0 AND uses >= uses_allowed)"
	filter := func(set *bool, cond string, args ...any) {
		if set != nil {
			if !*set {
				cond = "NOT " + cond
			}
			q.Where(cond, args...)
		}
	}
	filter(req.Used, "(uses > 0)")
	filter(req.Revoked, "(revoked)")
	filter(req.Expired, expired, now)
	filter(req.Valid, "(NOT revoked AND NOT "+expired+" AND NOT "+usedUp+")", now)
	list, info, err := paging.List(ctx, s.pool, q, p, func(r pgx.Rows) (*accountsv1.RegistrationToken, error) { return scanRegToken(r) })
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "Registration tokens cannot be read right now.", err)
	}
	return &accountsv1.ListRegistrationTokensResponse{RegistrationTokens: list, Page: info}, nil
}

// getRegistrationToken describes one token.
func (s *Service) getRegistrationToken(ctx context.Context, id string) (*accountsv1.RegistrationToken, error) {
	if !ids.Valid(id) {
		return nil, errs.InvalidField("token_id", "token_id is not a token id")
	}
	t, err := scanRegToken(s.pool.QueryRow(ctx, `SELECT `+regTokenColumns+` FROM registration_tokens WHERE token_id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errs.NotFound("No such registration token.")
	}
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "Registration tokens cannot be read right now.", err)
	}
	return t, nil
}

// changeRegistrationToken decides one change of a token and returns it afterwards.
func (s *Service) changeRegistrationToken(ctx context.Context, id, actor string, decide func(regTokenState) (proto.Message, error)) (*accountsv1.RegistrationToken, error) {
	if !ids.Valid(id) {
		return nil, errs.InvalidField("token_id", "token_id is not a token id")
	}
	ref := eventlog.Ref{Type: regTokenAggregate, ID: id}
	appended, err := s.log.Execute(ctx, ref, func(history []eventlog.Record, version uint64) ([]eventlog.Write, error) {
		st := foldRegToken(history)
		if st.created == nil {
			return nil, errs.NotFound("No such registration token.")
		}
		ev, err := decide(st)
		if err != nil || ev == nil {
			return nil, err
		}
		return []eventlog.Write{{Expect: eventlog.ExpectVersion(version), Event: eventlog.Event{Aggregate: ref, Actor: actor, Payload: ev}}}, nil
	})
	if err != nil {
		return nil, err
	}
	if appended.Last() > 0 {
		if err := s.projections.WaitFor(ctx, regTokensProjection, appended.Last()); err != nil {
			return nil, errs.Wrap(errs.KindUnavailable, "The change was saved but is not visible yet.", err)
		}
	}
	return s.getRegistrationToken(ctx, id)
}

func (g *grpcServer) GetRegistrationToken(ctx context.Context, req *accountsv1.GetRegistrationTokenRequest) (*accountsv1.GetRegistrationTokenResponse, error) {
	t, err := g.svc.getRegistrationToken(ctx, req.GetTokenId())
	if err != nil {
		return nil, err
	}
	return &accountsv1.GetRegistrationTokenResponse{RegistrationToken: t}, nil
}

// UpdateRegistrationToken replaces a token's expiry (which may lie in the
// past: that expires it) and number of uses.
func (g *grpcServer) UpdateRegistrationToken(ctx context.Context, req *accountsv1.UpdateRegistrationTokenRequest) (*accountsv1.UpdateRegistrationTokenResponse, error) {
	if req.GetUsesAllowed() < 0 {
		return nil, errs.InvalidField("uses_allowed", "uses_allowed must be 0 (unlimited) or more")
	}
	t, err := g.svc.changeRegistrationToken(ctx, req.GetTokenId(), actor(ctx), func(st regTokenState) (proto.Message, error) {
		if proto.Equal(st.expiresAt, req.GetExpiresAt()) && st.usesAllowed == req.GetUsesAllowed() {
			return nil, nil
		}
		return &eventsv1.RegistrationTokenUpdated{TokenId: req.GetTokenId(), ExpiresAt: req.GetExpiresAt(), UsesAllowed: req.GetUsesAllowed()}, nil
	})
	if err != nil {
		return nil, err
	}
	return &accountsv1.UpdateRegistrationTokenResponse{RegistrationToken: t}, nil
}

// UnrevokeRegistrationToken lets a revoked token work again.
func (g *grpcServer) UnrevokeRegistrationToken(ctx context.Context, req *accountsv1.UnrevokeRegistrationTokenRequest) (*accountsv1.UnrevokeRegistrationTokenResponse, error) {
	t, err := g.svc.changeRegistrationToken(ctx, req.GetTokenId(), actor(ctx), func(st regTokenState) (proto.Message, error) {
		if !st.revoked {
			return nil, errs.FailedPrecondition("The registration token is not revoked.")
		}
		return &eventsv1.RegistrationTokenUnrevoked{TokenId: req.GetTokenId()}, nil
	})
	if err != nil {
		return nil, err
	}
	return &accountsv1.UnrevokeRegistrationTokenResponse{RegistrationToken: t}, nil
}

// regTokensReadModel keeps the registration_tokens table.
func regTokensReadModel() projection.Projection {
	return projection.Projection{
		Name:     regTokensProjection,
		Subjects: []string{eventsv1.AccountsRegToken.Subjects()},
		Apply: func(ctx context.Context, tx pgx.Tx, rec eventlog.Record) error {
			var err error
			seq := int64(rec.Seq)
			switch ev := rec.Event.(type) {
			case *eventsv1.RegistrationTokenCreated:
				var expires *time.Time
				if ev.GetExpiresAt() != nil {
					t := ev.GetExpiresAt().AsTime()
					expires = &t
				}
				_, err = tx.Exec(ctx, `INSERT INTO registration_tokens (token_id, token_hash, uses_allowed, created_at, expires_at, version)
					VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (token_id) DO NOTHING`,
					ev.GetTokenId(), ev.GetTokenHash(), ev.GetUsesAllowed(), rec.OccurredAt(), expires, seq)
			case *eventsv1.RegistrationTokenUsed:
				// Counted once: a use delivered again finds its own version.
				_, err = tx.Exec(ctx, `UPDATE registration_tokens SET uses = uses + 1, last_used_at = $3, version = $2 WHERE token_id = $1 AND version < $2`,
					ev.GetTokenId(), seq, rec.OccurredAt())
			case *eventsv1.RegistrationTokenRevoked:
				_, err = tx.Exec(ctx, `UPDATE registration_tokens SET revoked = true, revoked_at = $3, version = $2 WHERE token_id = $1 AND version < $2`,
					ev.GetTokenId(), seq, rec.OccurredAt())
			case *eventsv1.RegistrationTokenUnrevoked:
				_, err = tx.Exec(ctx, `UPDATE registration_tokens SET revoked = false, revoked_at = NULL, version = $2 WHERE token_id = $1 AND version < $2`,
					ev.GetTokenId(), seq)
			case *eventsv1.RegistrationTokenUpdated:
				var expires *time.Time
				if ev.GetExpiresAt() != nil {
					t := ev.GetExpiresAt().AsTime()
					expires = &t
				}
				_, err = tx.Exec(ctx, `UPDATE registration_tokens SET expires_at = $3, uses_allowed = $4, version = $2 WHERE token_id = $1 AND version < $2`,
					ev.GetTokenId(), seq, expires, ev.GetUsesAllowed())
			default:
				return eventlog.Unhandled(rec)
			}
			if err != nil {
				return fmt.Errorf("registration tokens: %w", err)
			}
			return nil
		},
		Tables: []string{"registration_tokens"},
		// 2: last use and revocation times (0011_admin_api.sql gave used and
		// revoked tokens their creation time), rebuilt exact on upgrade.
		Version: 2,
	}
}

func (g *grpcServer) CreateRegistrationToken(ctx context.Context, req *accountsv1.CreateRegistrationTokenRequest) (*accountsv1.CreateRegistrationTokenResponse, error) {
	return g.svc.createRegistrationToken(ctx, req, actor(ctx))
}

func (g *grpcServer) UseRegistrationToken(ctx context.Context, req *accountsv1.UseRegistrationTokenRequest) (*accountsv1.UseRegistrationTokenResponse, error) {
	id, err := g.svc.useRegistrationToken(ctx, req.GetToken(), actor(ctx))
	if err != nil {
		return nil, err
	}
	return &accountsv1.UseRegistrationTokenResponse{TokenId: id}, nil
}

func (g *grpcServer) RevokeRegistrationToken(ctx context.Context, req *accountsv1.RevokeRegistrationTokenRequest) (*accountsv1.RevokeRegistrationTokenResponse, error) {
	if err := g.svc.revokeRegistrationToken(ctx, req.GetTokenId(), actor(ctx)); err != nil {
		return nil, err
	}
	return &accountsv1.RevokeRegistrationTokenResponse{}, nil
}

func (g *grpcServer) ListRegistrationTokens(ctx context.Context, req *accountsv1.ListRegistrationTokensRequest) (*accountsv1.ListRegistrationTokensResponse, error) {
	if req.GetPage() != nil {
		return g.svc.pageRegistrationTokens(ctx, req)
	}
	list, err := g.svc.listRegistrationTokens(ctx)
	if err != nil {
		return nil, err
	}
	return &accountsv1.ListRegistrationTokensResponse{RegistrationTokens: list}, nil
}

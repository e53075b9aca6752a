package accounts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/ids"
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
}

func foldRegToken(history []eventlog.Record) regTokenState {
	var s regTokenState
	for _, rec := range history {
		switch ev := rec.Event.(type) {
		case *eventsv1.RegistrationTokenCreated:
			s.created = ev
		case *eventsv1.RegistrationTokenUsed:
			s.uses++
		case *eventsv1.RegistrationTokenRevoked:
			s.revoked = true
		}
	}
	return s
}

// usable reports whether the token admits one more registration at now.
func (s regTokenState) usable(now time.Time) bool {
	switch {
	case s.created == nil, s.revoked:
		return false
	case s.created.GetExpiresAt() != nil && !now.Before(s.created.GetExpiresAt().AsTime()):
		return false
	case s.created.GetUsesAllowed() > 0 && s.uses >= s.created.GetUsesAllowed():
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

func (s *Service) listRegistrationTokens(ctx context.Context) ([]*accountsv1.RegistrationToken, error) {
	rows, err := s.pool.Query(ctx, `SELECT token_id, uses_allowed, uses, created_at, expires_at, revoked
		FROM registration_tokens ORDER BY token_id DESC LIMIT $1`, maxRegistrationTokens)
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "Registration tokens cannot be read right now.", err)
	}
	defer rows.Close()
	var out []*accountsv1.RegistrationToken
	for rows.Next() {
		var (
			t       accountsv1.RegistrationToken
			created time.Time
			expires *time.Time
		)
		if err := rows.Scan(&t.TokenId, &t.UsesAllowed, &t.Uses, &created, &expires, &t.Revoked); err != nil {
			return nil, errs.Wrap(errs.KindUnavailable, "Registration tokens cannot be read right now.", err)
		}
		t.CreatedAt = timestamppb.New(created)
		if expires != nil {
			t.ExpiresAt = timestamppb.New(*expires)
		}
		out = append(out, &t)
	}
	return out, rows.Err()
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
				_, err = tx.Exec(ctx, `UPDATE registration_tokens SET uses = uses + 1, version = $2 WHERE token_id = $1 AND version < $2`, ev.GetTokenId(), seq)
			case *eventsv1.RegistrationTokenRevoked:
				_, err = tx.Exec(ctx, `UPDATE registration_tokens SET revoked = true, version = $2 WHERE token_id = $1 AND version < $2`, ev.GetTokenId(), seq)
			default:
				return eventlog.Unhandled(rec)
			}
			if err != nil {
				return fmt.Errorf("registration tokens: %w", err)
			}
			return nil
		},
		Tables: []string{"registration_tokens"},
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

func (g *grpcServer) ListRegistrationTokens(ctx context.Context, _ *accountsv1.ListRegistrationTokensRequest) (*accountsv1.ListRegistrationTokensResponse, error) {
	list, err := g.svc.listRegistrationTokens(ctx)
	if err != nil {
		return nil, err
	}
	return &accountsv1.ListRegistrationTokensResponse{RegistrationTokens: list}, nil
}

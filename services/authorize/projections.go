package authorize

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/projection"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// Projection names. Grants are "pending_grants" since they moved to
// AUTHORIZE_PENDING ("grants" was fed from AUTHORIZE).
const (
	clientsProjection = "clients"
	grantsProjection  = "pending_grants"
)

func clientsReadModel() projection.Projection {
	return projection.Projection{
		Name:     clientsProjection,
		Subjects: []string{eventsv1.AuthorizeClient.Subjects()},
		Apply: func(ctx context.Context, tx pgx.Tx, rec eventlog.Record) error {
			ev, ok := rec.Event.(*eventsv1.ClientRegistered)
			if !ok {
				return eventlog.Unhandled(rec)
			}
			// A later registration (a static client's new configuration)
			// replaces an earlier one, never the other way round.
			_, err := tx.Exec(ctx, `
				INSERT INTO clients (client_id, metadata, secret_hash, source, registered_at, version) VALUES ($1, $2, $3, $4, $5, $6)
				ON CONFLICT (client_id) DO UPDATE SET metadata = $2, secret_hash = $3, source = $4, version = $6
				WHERE clients.version < $6`,
				ev.GetClientId(), ev.GetMetadataJson(), ev.GetSecretHash(), ev.GetSource(), rec.OccurredAt(), int64(rec.Seq))
			if err != nil {
				return fmt.Errorf("clients: %w", err)
			}
			return nil
		},
		Tables: []string{"clients"},
	}
}

// grantsReadModel maps code hashes to grants while the grants live: a row
// goes when the marker of its grant's expiry comes, or when an event later
// than its purge time (the grant's end plus after) is applied.
func grantsReadModel(pending *eventlog.Log, after time.Duration) projection.Projection {
	return projection.Projection{
		Name:     grantsProjection,
		Source:   pending,
		Subjects: []string{eventsv1.AuthorizeGrant.Subjects()},
		Apply: func(ctx context.Context, tx pgx.Tx, rec eventlog.Record) error {
			// A grant's row changes only for an event later than its version.
			at, seq := rec.OccurredAt(), int64(rec.Seq)
			if _, err := tx.Exec(ctx, `DELETE FROM pending_grants WHERE purge_at < $1`, at); err != nil {
				return fmt.Errorf("grants: %w", err)
			}
			if rec.Expired {
				_, err := tx.Exec(ctx, `DELETE FROM pending_grants WHERE grant_id = $1 AND version < $2`, rec.Aggregate().ID, seq)
				return err
			}
			var err error
			switch ev := rec.Event.(type) {
			case *eventsv1.GrantRequested:
				_, err = tx.Exec(ctx, `INSERT INTO pending_grants (grant_id, client_id, status, purge_at, created_at, updated_at, version) VALUES ($1, $2, 'pending', $3, $4, $4, $5)
					ON CONFLICT (grant_id) DO NOTHING`,
					ev.GetGrantId(), ev.GetClientId(), ev.GetExpiresAt().AsTime().Add(after), at, seq)
			case *eventsv1.GrantApproved:
				_, err = tx.Exec(ctx, `UPDATE pending_grants SET status = 'approved', code_hash = $2, user_id = $3, updated_at = $4, version = $5 WHERE grant_id = $1 AND version < $5`,
					ev.GetGrantId(), ev.GetCodeHash(), ev.GetUserId(), at, seq)
			case *eventsv1.GrantDenied:
				_, err = tx.Exec(ctx, `UPDATE pending_grants SET status = 'denied', updated_at = $2, version = $3 WHERE grant_id = $1 AND version < $3`, ev.GetGrantId(), at, seq)
			case *eventsv1.GrantExchanged:
				_, err = tx.Exec(ctx, `UPDATE pending_grants SET status = 'exchanged', updated_at = $2, version = $3 WHERE grant_id = $1 AND version < $3`, ev.GetGrantId(), at, seq)
			default:
				return eventlog.Unhandled(rec)
			}
			if err != nil {
				return fmt.Errorf("grants: %s: %w", rec.Type(), err)
			}
			return nil
		},
		Tables: []string{"pending_grants"},
	}
}

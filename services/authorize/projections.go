package authorize

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/projection"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// Projection names.
const (
	clientsProjection = "clients"
	grantsProjection  = "grants"
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

func grantsReadModel() projection.Projection {
	return projection.Projection{
		Name:     grantsProjection,
		Subjects: []string{eventsv1.AuthorizeGrant.Subjects()},
		Apply: func(ctx context.Context, tx pgx.Tx, rec eventlog.Record) error {
			// A grant's row changes only for an event later than its version.
			at, seq := rec.OccurredAt(), int64(rec.Seq)
			var err error
			switch ev := rec.Event.(type) {
			case *eventsv1.GrantRequested:
				_, err = tx.Exec(ctx, `INSERT INTO grants (grant_id, client_id, status, created_at, updated_at, version) VALUES ($1, $2, 'pending', $3, $3, $4)
					ON CONFLICT (grant_id) DO NOTHING`,
					ev.GetGrantId(), ev.GetClientId(), at, seq)
			case *eventsv1.GrantApproved:
				_, err = tx.Exec(ctx, `UPDATE grants SET status = 'approved', code_hash = $2, user_id = $3, updated_at = $4, version = $5 WHERE grant_id = $1 AND version < $5`,
					ev.GetGrantId(), ev.GetCodeHash(), ev.GetUserId(), at, seq)
			case *eventsv1.GrantDenied:
				_, err = tx.Exec(ctx, `UPDATE grants SET status = 'denied', updated_at = $2, version = $3 WHERE grant_id = $1 AND version < $3`, ev.GetGrantId(), at, seq)
			case *eventsv1.GrantExchanged:
				_, err = tx.Exec(ctx, `UPDATE grants SET status = 'exchanged', updated_at = $2, version = $3 WHERE grant_id = $1 AND version < $3`, ev.GetGrantId(), at, seq)
			default:
				return eventlog.Unhandled(rec)
			}
			if err != nil {
				return fmt.Errorf("grants: %s: %w", rec.Type(), err)
			}
			return nil
		},
		Tables: []string{"grants"},
	}
}

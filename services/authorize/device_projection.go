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

// devicesProjection is the read model of device authorization grants
// ("devices" while they were in AUTHORIZE).
const devicesProjection = "pending_devices"

// devicesReadModel maps device and user codes (hashed) to device grants
// while they live: a row goes when the marker of its grant's expiry comes,
// or when an event later than its purge time (expiry plus keep) is applied.
func devicesReadModel(pending *eventlog.Log, keep time.Duration) projection.Projection {
	return projection.Projection{
		Name:     devicesProjection,
		Source:   pending,
		Subjects: []string{eventsv1.AuthorizeDevice.Subjects()},
		Apply: func(ctx context.Context, tx pgx.Tx, rec eventlog.Record) error {
			// A device grant's row changes only for an event later than its version.
			at, seq := rec.OccurredAt(), int64(rec.Seq)
			if _, err := tx.Exec(ctx, `DELETE FROM pending_devices WHERE purge_at < $1`, at); err != nil {
				return fmt.Errorf("devices: %w", err)
			}
			if rec.Expired {
				_, err := tx.Exec(ctx, `DELETE FROM pending_devices WHERE device_grant_id = $1 AND version < $2`, rec.Aggregate().ID, seq)
				return err
			}
			var err error
			switch ev := rec.Event.(type) {
			case *eventsv1.DeviceAuthorizationRequested:
				_, err = tx.Exec(ctx, `
					INSERT INTO pending_devices (device_grant_id, client_id, device_code_hash, user_code_hash, status, expires_at, purge_at, created_at, updated_at, version)
					VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $7, $8) ON CONFLICT (device_grant_id) DO NOTHING`,
					ev.GetDeviceGrantId(), ev.GetClientId(), ev.GetDeviceCodeHash(), ev.GetUserCodeHash(), ev.GetExpiresAt().AsTime(),
					ev.GetExpiresAt().AsTime().Add(keep), at, seq)
			case *eventsv1.DeviceApproved:
				_, err = tx.Exec(ctx, `UPDATE pending_devices SET status = 'approved', user_id = $2, updated_at = $3, version = $4 WHERE device_grant_id = $1 AND version < $4`,
					ev.GetDeviceGrantId(), ev.GetUserId(), at, seq)
			case *eventsv1.DeviceDenied:
				_, err = tx.Exec(ctx, `UPDATE pending_devices SET status = 'denied', updated_at = $2, version = $3 WHERE device_grant_id = $1 AND version < $3`, ev.GetDeviceGrantId(), at, seq)
			case *eventsv1.DeviceTokenIssued:
				_, err = tx.Exec(ctx, `UPDATE pending_devices SET status = 'used', updated_at = $2, version = $3 WHERE device_grant_id = $1 AND version < $3`, ev.GetDeviceGrantId(), at, seq)
			default:
				return eventlog.Unhandled(rec)
			}
			if err != nil {
				return fmt.Errorf("devices: %s: %w", rec.Type(), err)
			}
			return nil
		},
		Tables: []string{"pending_devices"},
	}
}

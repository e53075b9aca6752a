package accounts

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/projection"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// passkeysProjection keeps passkey_credentials: credential id → user, for
// passwordless sign-in.
const passkeysProjection = "passkeys"

// passkeysReadModel follows the factors and, for erasures and resets, the
// users.
func (s *Service) passkeysReadModel() projection.Projection {
	return projection.Projection{
		Name:     passkeysProjection,
		Subjects: []string{eventsv1.AccountsFactors.Subjects(), eventsv1.AccountsUser.Subjects()},
		Apply:    applyPasskeyEvent,
		Tables:   []string{"passkey_credentials"},
		// The users' events but an erasure, stepped over undecoded (an
		// import's above all).
		Ignores: []proto.Message{&eventsv1.UserRegistered{}, &eventsv1.PasswordChanged{}, &eventsv1.UserLocked{}, &eventsv1.UserUnlocked{},
			&eventsv1.UserReactivated{}, &eventsv1.DisplayNameSet{}, &eventsv1.AdminSet{}, &eventsv1.EmailAdded{}, &eventsv1.EmailRemoved{},
			&eventsv1.PrimaryEmailSet{}, &eventsv1.UpstreamLinked{}, &eventsv1.UpstreamUnlinked{}, &eventsv1.UserImported{}},
	}
}

func applyPasskeyEvent(ctx context.Context, tx pgx.Tx, rec eventlog.Record) error {
	var (
		sql  string
		args []any
	)
	switch ev := rec.Event.(type) {
	case *eventsv1.PasskeyAdded:
		// A credential removed later stays removed when its addition comes
		// again; one registered again after its removal comes back.
		sql = `INSERT INTO passkey_credentials (credential_id, user_id, passkey_id, version) VALUES ($1, $2, $3, $4)
		       ON CONFLICT (credential_id) DO UPDATE SET user_id = $2, passkey_id = $3, removed = false, version = $4
		       WHERE passkey_credentials.version < $4`
		args = []any{ev.GetCredentialId(), ev.GetUserId(), ev.GetPasskeyId(), int64(rec.Seq)}
	case *eventsv1.PasskeyRemoved:
		sql = `UPDATE passkey_credentials SET removed = true, version = $3 WHERE user_id = $1 AND passkey_id = $2 AND version < $3`
		args = []any{ev.GetUserId(), ev.GetPasskeyId(), int64(rec.Seq)}
	case *eventsv1.SecondFactorsReset:
		// Only the passkeys added before the reset.
		sql = `UPDATE passkey_credentials SET removed = true, version = $2 WHERE user_id = $1 AND version < $2`
		args = []any{ev.GetUserId(), int64(rec.Seq)}
	case *eventsv1.UserDeactivated:
		if !ev.GetErase() {
			return nil
		}
		sql = `UPDATE passkey_credentials SET removed = true, version = $2 WHERE user_id = $1 AND version < $2`
		args = []any{ev.GetUserId(), int64(rec.Seq)}
	case *eventsv1.PasskeyUsed, *eventsv1.PasskeyRenamed, *eventsv1.TOTPEnabled, *eventsv1.TOTPUsed, *eventsv1.TOTPDisabled,
		*eventsv1.RecoveryCodesGenerated, *eventsv1.RecoveryCodeUsed, *eventsv1.SecondFactorRequirementSet:
		return nil // nothing about which credential is whose
	case *eventsv1.UserRegistered, *eventsv1.PasswordChanged, *eventsv1.UserLocked, *eventsv1.UserUnlocked,
		*eventsv1.UserReactivated, *eventsv1.DisplayNameSet, *eventsv1.AdminSet, *eventsv1.EmailAdded, *eventsv1.EmailRemoved,
		*eventsv1.PrimaryEmailSet, *eventsv1.UpstreamLinked, *eventsv1.UpstreamUnlinked, *eventsv1.UserImported:
		return nil // only an erasure changes passkeys
	default:
		return eventlog.Unhandled(rec)
	}
	if _, err := tx.Exec(ctx, sql, args...); err != nil {
		return fmt.Errorf("passkey_credentials: %s: %w", rec.Type(), err)
	}
	return nil
}

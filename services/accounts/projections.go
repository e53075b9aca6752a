package accounts

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/personal"
	"gatehouse.dev/platform/projection"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// Projection names.
const (
	usersProjection    = "users"
	sessionsProjection = "browser_sessions"
)

// usersReadModel keeps the users and user_emails tables from the user
// aggregates' events, their personal fields opened. users.email is the
// primary address. An erased user keeps a row (username, flags, times) with
// erased set and no address, display name or password; a rebuild after the
// erasure finds their personal fields unreadable and ends the same.
func (s *Service) usersReadModel() projection.Projection {
	return projection.Projection{
		Name:       usersProjection,
		Subjects:   []string{eventsv1.AccountsUser.Subjects()},
		Apply:      s.unsealing(applyUserEvent),
		Batch:      importBatch,
		ApplyBatch: s.applyUsersBatch,
		Tables:     []string{"users", "user_emails", "upstream_links"},
		// 2: users' lock and deactivation times (0011_admin_api.sql could
		// only approximate them), rebuilt exact from the stream on upgrade.
		Version: 2,
	}
}

// applyFunc applies one event in a projection's batch transaction.
type applyFunc = func(ctx context.Context, tx pgx.Tx, rec eventlog.Record) error

// unsealing opens a record's personal fields before apply sees it.
func (s *Service) unsealing(apply applyFunc) applyFunc {
	return func(ctx context.Context, tx pgx.Tx, rec eventlog.Record) error {
		if err := s.personal.UnsealRecord(ctx, &rec); err != nil {
			return err
		}
		return apply(ctx, tx, rec)
	}
}

// statement is one SQL statement with its arguments.
type statement struct {
	sql  string
	args []any
}

// applyUserEvent applies one event of a user. A user's row remembers the
// last event applied (version): an event delivered again changes nothing.
func applyUserEvent(ctx context.Context, tx pgx.Tx, rec eventlog.Record) error {
	at := rec.OccurredAt()
	seq := int64(rec.Seq)
	id := rec.Aggregate().ID
	var version int64
	err := tx.QueryRow(ctx, `SELECT version FROM users WHERE id = $1 FOR UPDATE`, id).Scan(&version)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return fmt.Errorf("users: %s: read version: %w", rec.Type(), err)
	case version >= seq:
		return nil // delivered again
	}
	var (
		sql  string
		args []any
		// emails runs before the users statement.
		emails *statement
	)
	switch ev := rec.Event.(type) {
	case *eventsv1.UserRegistered:
		hash, blob, keyID, personal, err := sealedColumns(ev.GetPasswordHash(), ev.GetSealedPasswordHash())
		if err != nil {
			return fmt.Errorf("users: %s: %w", rec.Type(), err)
		}
		sql = `INSERT INTO users (id, username, email, display_name, password_hash, password_sealed, password_key_id, password_personal, admin, created_at, updated_at, version)
		       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11)`
		args = []any{id, ev.GetUsername(), ev.GetEmail(), ev.GetDisplayName(), hash, blob, keyID, personal, ev.GetAdmin(), at, seq}
		if ev.GetEmail() != "" {
			emails = &statement{`INSERT INTO user_emails (email, user_id, is_primary, added_at, verification_id, email_id) VALUES ($1, $2, true, $3, $4, $5)
				ON CONFLICT (email) DO UPDATE SET user_id = EXCLUDED.user_id, is_primary = true, added_at = EXCLUDED.added_at,
				verification_id = EXCLUDED.verification_id, email_id = EXCLUDED.email_id`,
				[]any{ev.GetEmail(), id, at, ev.GetEmailVerificationId(), emailID(at, id, ev.GetEmail())}}
		}
	case *eventsv1.UserImported:
		return applyUserImported(ctx, tx, ev, id, at, seq)
	case *eventsv1.PasswordChanged:
		hash, blob, keyID, personal, err := sealedColumns(ev.GetPasswordHash(), ev.GetSealedPasswordHash())
		if err != nil {
			return fmt.Errorf("users: %s: %w", rec.Type(), err)
		}
		sql, args = update("password_hash = $4, password_sealed = $5, password_key_id = $6, password_personal = $7", id, at, seq, hash, blob, keyID, personal)
	case *eventsv1.UserLocked:
		sql, args = update("locked = true, locked_at = COALESCE(locked_at, $2)", id, at, seq)
	case *eventsv1.UserUnlocked:
		sql, args = update("locked = false, locked_at = NULL", id, at, seq)
	case *eventsv1.UserDeactivated:
		if !ev.GetErase() {
			sql, args = update("deactivated = true, deactivated_at = COALESCE(deactivated_at, $2)", id, at, seq)
			break
		}
		// Erased: nothing personal stays.
		emails = &statement{`WITH links AS (DELETE FROM upstream_links WHERE user_id = $1)
			DELETE FROM user_emails WHERE user_id = $1`, []any{id}}
		sql, args = update(`deactivated = true, deactivated_at = COALESCE(deactivated_at, $2), erased = true, email = '', display_name = '',
			password_hash = '', password_sealed = NULL, password_key_id = '', password_personal = false`, id, at, seq)
	case *eventsv1.UserReactivated:
		sql, args = update("deactivated = false, deactivated_at = NULL", id, at, seq)
	case *eventsv1.DisplayNameSet:
		sql, args = update("display_name = $4", id, at, seq, ev.GetDisplayName())
	case *eventsv1.AdminSet:
		sql, args = update("admin = $4", id, at, seq, ev.GetAdmin())
	case *eventsv1.EmailAdded, *eventsv1.EmailRemoved, *eventsv1.PrimaryEmailSet:
		if emailOf(rec.Event) == "" { // erased: the address no longer opens
			sql, args = update("email = email", id, at, seq)
			break
		}
		emails, sql, args = applyEmailEvent(rec.Event, id, at, seq)
	case *eventsv1.UpstreamLinked:
		subject, err := marshalSealed(ev.GetSealedSubject())
		if err != nil {
			return fmt.Errorf("users: %s: %w", rec.Type(), err)
		}
		email, err := marshalSealed(ev.GetSealedEmail())
		if err != nil {
			return fmt.Errorf("users: %s: %w", rec.Type(), err)
		}
		emails = &statement{`INSERT INTO upstream_links (link_id, user_id, provider, subject_sealed, email_sealed, claim_key, source, linked_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (link_id) DO NOTHING`,
			[]any{ev.GetLinkId(), id, ev.GetProvider(), subject, email, ev.GetClaimKey(), ev.GetSource(), at}}
		sql, args = update("admin = admin", id, at, seq)
	case *eventsv1.UpstreamUnlinked:
		emails = &statement{`DELETE FROM upstream_links WHERE link_id = $1 AND user_id = $2`, []any{ev.GetLinkId(), id}}
		sql, args = update("admin = admin", id, at, seq)
	default:
		return eventlog.Unhandled(rec)
	}
	if emails != nil {
		if _, err := tx.Exec(ctx, emails.sql, emails.args...); err != nil {
			return fmt.Errorf("users: %s: emails: %w", rec.Type(), err)
		}
	}
	if _, err := tx.Exec(ctx, sql, args...); err != nil {
		return fmt.Errorf("users: %s: %w", rec.Type(), err)
	}
	return nil
}

// emailOf is the address an email event names.
func emailOf(ev proto.Message) string {
	//eventcheck:partial — only the three email events name an address; applyUserEvent handles the others
	switch ev := ev.(type) {
	case *eventsv1.EmailAdded:
		return ev.GetEmail()
	case *eventsv1.EmailRemoved:
		return ev.GetEmail()
	case *eventsv1.PrimaryEmailSet:
		return ev.GetEmail()
	}
	return ""
}

// applyEmailEvent returns the statements of an email event of a user: one on
// user_emails, then one on users.
func applyEmailEvent(event proto.Message, id string, at time.Time, seq int64) (emails *statement, sql string, args []any) {
	//eventcheck:partial — called by applyUserEvent for the three email events only
	switch ev := event.(type) {
	case *eventsv1.EmailAdded:
		// As in user.State: a user's first address becomes the primary one.
		// The reservation makes an address one user's at a time; should a row
		// of another user remain anyway, the event, which is later, wins.
		emails = &statement{`INSERT INTO user_emails (email, user_id, is_primary, added_at, verification_id, email_id)
			VALUES ($1, $2, NOT EXISTS (SELECT 1 FROM user_emails WHERE user_id = $2 AND is_primary), $3, $4, $5)
			ON CONFLICT (email) DO UPDATE SET user_id = EXCLUDED.user_id, is_primary = EXCLUDED.is_primary, added_at = EXCLUDED.added_at,
			verification_id = EXCLUDED.verification_id, email_id = EXCLUDED.email_id
			WHERE user_emails.user_id <> EXCLUDED.user_id`,
			[]any{ev.GetEmail(), id, at, ev.GetVerificationId(), emailID(at, id, ev.GetEmail())}}
		sql, args = update("email = CASE WHEN email = '' THEN $4 ELSE email END", id, at, seq, ev.GetEmail())
	case *eventsv1.EmailRemoved:
		emails = &statement{`DELETE FROM user_emails WHERE email = $1 AND user_id = $2`, []any{ev.GetEmail(), id}}
		sql, args = update("email = CASE WHEN email = $4 THEN '' ELSE email END", id, at, seq, ev.GetEmail())
	case *eventsv1.PrimaryEmailSet:
		// Only one of the user's addresses becomes primary; others change nothing.
		emails = &statement{`UPDATE user_emails SET is_primary = (email = $2)
			WHERE user_id = $1 AND EXISTS (SELECT 1 FROM user_emails WHERE user_id = $1 AND email = $2)`,
			[]any{id, ev.GetEmail()}}
		sql, args = update("email = CASE WHEN EXISTS (SELECT 1 FROM user_emails WHERE user_id = $1 AND email = $4) THEN $4 ELSE email END",
			id, at, seq, ev.GetEmail())
	}
	return emails, sql, args
}

// marshalSealed encodes a sealed value for a bytea column; nil for none.
func marshalSealed(v *eventsv1.SealedSecret) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	return proto.Marshal(v)
}

// update builds an UPDATE of one user row; extra arguments start at $4.
func update(set, id string, at any, seq int64, extra ...any) (string, []any) {
	return `UPDATE users SET ` + set + `, updated_at = $2, version = $3 WHERE id = $1`, append([]any{id, at, seq}, extra...)
}

// auditEntry is what the audit trail keeps of one event (audit_reactor.go).
type auditEntry struct {
	userID, summary string
	// erased is the summary once the user's personal data is gone.
	erased string
	// ip is a sign-in's address; empty for every other event.
	ip string
}

// auditEntryOf makes the audit entry of an event, its personal data opened.
func (s *Service) auditEntryOf(ctx context.Context, rec eventlog.Record) (auditEntry, error) {
	if !personal.Holds(rec.Event) { // nothing to erase: one summary (a username claim)
		var e auditEntry
		e.userID, e.summary = describe(rec)
		e.erased = e.summary
		return e, nil
	}
	bare := rec
	bare.Event = personal.Redacted(rec.Event)
	_, erased := describe(bare)
	if err := s.personal.UnsealRecord(ctx, &rec); err != nil {
		return auditEntry{}, err
	}
	e := auditEntry{erased: erased}
	e.userID, e.summary = describe(rec)
	if ev, ok := rec.Event.(*eventsv1.BrowserSessionStarted); ok { //eventcheck:partial only a sign-in carries the address the audit shows
		e.ip = ev.GetIpAddress()
	}
	return e, nil
}

// describe names the user an event concerns and summarises it for people.
// Summaries never include secrets such as password hashes; personal data
// that no longer opens reads "(erased)". Entries that name no user name no
// personal data either (a registration's address stays out), so erasing a
// user leaves none behind.
func describe(rec eventlog.Record) (userID, summary string) {
	switch ev := rec.Event.(type) {
	case *eventsv1.UsernameReserved:
		return ev.GetUserId(), fmt.Sprintf("username %q reserved", ev.GetUsername())
	case *eventsv1.EmailReserved:
		return ev.GetUserId(), fmt.Sprintf("email %s reserved", shown(ev.GetEmail(), ev.GetSealedEmail()))
	case *eventsv1.EmailReleased:
		return ev.GetUserId(), fmt.Sprintf("email %s released", shown(ev.GetEmail(), ev.GetSealedEmail()))
	case *eventsv1.UserRegistered:
		s := fmt.Sprintf("registered as %q", ev.GetUsername())
		if ev.GetAdmin() {
			s += " (administrator)"
		}
		email := shown(ev.GetEmail(), ev.GetSealedEmail())
		if ev.GetEmailVerificationId() != "" {
			s += fmt.Sprintf(" with email %s (verification %s)", email, ev.GetEmailVerificationId())
		} else if ev.GetEmail() != "" || ev.GetSealedEmail() != nil {
			s += fmt.Sprintf(" with email %s (vouched for by %s)", email, rec.Envelope.GetActor())
		}
		return ev.GetUserId(), s
	case *eventsv1.UserImported:
		s := fmt.Sprintf("imported from %s as %q (%s)", importSourceName(ev.GetSource()), ev.GetUsername(), ev.GetExternalId())
		var flags []string
		for _, f := range []struct {
			on   bool
			name string
		}{{ev.GetAdmin(), "administrator"}, {ev.GetLocked(), "locked"}, {ev.GetDeactivated(), "deactivated"}, {ev.GetSealedPasswordHash() != nil, "with its " + ev.GetPasswordScheme() + " password hash"}} {
			if f.on {
				flags = append(flags, f.name)
			}
		}
		if len(flags) > 0 {
			s += ", " + strings.Join(flags, ", ")
		}
		return ev.GetUserId(), s + fmt.Sprintf(", %d email address(es), %d upstream link(s)", len(ev.GetEmails()), len(ev.GetLinks()))
	case *eventsv1.PasswordChanged:
		reasons := map[eventsv1.PasswordChangeReason]string{
			eventsv1.PasswordChangeReason_PASSWORD_CHANGE_REASON_USER:     "password changed by the user",
			eventsv1.PasswordChangeReason_PASSWORD_CHANGE_REASON_ADMIN:    "password set by an administrator",
			eventsv1.PasswordChangeReason_PASSWORD_CHANGE_REASON_UPGRADE:  "password hash upgraded",
			eventsv1.PasswordChangeReason_PASSWORD_CHANGE_REASON_RECOVERY: "password reset through recovery",
			eventsv1.PasswordChangeReason_PASSWORD_CHANGE_REASON_RESEALED: "password hash sealed again under key-encryption key " + ev.GetSealedPasswordHash().GetKeyId(),
		}
		if s, ok := reasons[ev.GetReason()]; ok {
			return ev.GetUserId(), s
		}
		return ev.GetUserId(), "password changed"
	case *eventsv1.UserLocked:
		if ev.GetReason() != "" {
			return ev.GetUserId(), "locked: " + ev.GetReason()
		}
		return ev.GetUserId(), "locked"
	case *eventsv1.UserUnlocked:
		return ev.GetUserId(), "unlocked"
	case *eventsv1.UserDeactivated:
		if ev.GetErase() {
			return ev.GetUserId(), "deactivated (erase requested)"
		}
		return ev.GetUserId(), "deactivated"
	case *eventsv1.UserReactivated:
		return ev.GetUserId(), "reactivated"
	case *eventsv1.DisplayNameSet:
		return ev.GetUserId(), fmt.Sprintf("display name set to %s", shown(ev.GetDisplayName(), ev.GetSealedDisplayName()))
	case *eventsv1.AdminSet:
		if ev.GetAdmin() {
			return ev.GetUserId(), "made an administrator"
		}
		return ev.GetUserId(), "administrator rights removed"
	case *eventsv1.EmailAdded:
		email := shown(ev.GetEmail(), ev.GetSealedEmail())
		if ev.GetVerificationId() != "" {
			return ev.GetUserId(), fmt.Sprintf("email %s added (verification %s)", email, ev.GetVerificationId())
		}
		return ev.GetUserId(), fmt.Sprintf("email %s added (vouched for by %s)", email, rec.Envelope.GetActor())
	case *eventsv1.EmailRemoved:
		return ev.GetUserId(), fmt.Sprintf("email %s removed", shown(ev.GetEmail(), ev.GetSealedEmail()))
	case *eventsv1.PrimaryEmailSet:
		return ev.GetUserId(), fmt.Sprintf("primary email set to %s", shown(ev.GetEmail(), ev.GetSealedEmail()))
	case *eventsv1.BrowserSessionStarted:
		// Never the secret's hash.
		s := "browser session " + ev.GetSessionId() + " started"
		if ev.GetIpAddress() != "" || ev.GetSealedIpAddress() != nil {
			s += " from " + strings.Trim(shown(ev.GetIpAddress(), ev.GetSealedIpAddress()), `"`)
		}
		if ev.GetUserAgent() != "" || ev.GetSealedUserAgent() != nil {
			s += " (" + shown(ev.GetUserAgent(), ev.GetSealedUserAgent()) + ")"
		}
		return ev.GetUserId(), s
	case *eventsv1.BrowserSessionEnded:
		if ev.GetReason() != "" {
			return ev.GetUserId(), fmt.Sprintf("browser session %s ended: %s", ev.GetSessionId(), ev.GetReason())
		}
		return ev.GetUserId(), fmt.Sprintf("browser session %s ended", ev.GetSessionId())
	case *eventsv1.BrowserSessionReauthenticated:
		return ev.GetUserId(), fmt.Sprintf("browser session %s authenticated again (%s)", ev.GetSessionId(), strings.Join(ev.GetAuthMethods(), "+"))
	// Second factors: never a secret, a code's hash nor a credential's key.
	case *eventsv1.PasskeyAdded:
		return ev.GetUserId(), fmt.Sprintf("passkey %s (%s) added", ev.GetPasskeyId(), shown(ev.GetName(), ev.GetSealedName()))
	case *eventsv1.PasskeyUsed:
		return ev.GetUserId(), fmt.Sprintf("passkey %s used (%s)", ev.GetPasskeyId(), ev.GetPurpose())
	case *eventsv1.PasskeyRenamed:
		return ev.GetUserId(), fmt.Sprintf("passkey %s renamed %s", ev.GetPasskeyId(), shown(ev.GetName(), ev.GetSealedName()))
	case *eventsv1.PasskeyRemoved:
		return ev.GetUserId(), fmt.Sprintf("passkey %s removed", ev.GetPasskeyId())
	case *eventsv1.TOTPEnabled:
		return ev.GetUserId(), "authenticator app (TOTP) set up"
	case *eventsv1.TOTPUsed:
		return ev.GetUserId(), "authenticator app (TOTP) code used"
	case *eventsv1.TOTPDisabled:
		return ev.GetUserId(), "authenticator app (TOTP) removed"
	case *eventsv1.RecoveryCodesGenerated:
		return ev.GetUserId(), fmt.Sprintf("%d recovery codes generated", len(ev.GetCodeHashes()))
	case *eventsv1.RecoveryCodeUsed:
		return ev.GetUserId(), fmt.Sprintf("recovery code %d used", ev.GetIndex()+1)
	case *eventsv1.SecondFactorRequirementSet:
		by := "by the user"
		if ev.GetByAdmin() {
			by = "by an administrator"
		}
		if ev.GetRequired() {
			return ev.GetUserId(), "second factor required " + by
		}
		return ev.GetUserId(), "second factor no longer required " + by
	case *eventsv1.SecondFactorsReset:
		return ev.GetUserId(), "every second factor removed by an administrator"
	case *eventsv1.BrowserSessionsActive:
		// Activity of many users' sessions: no single user.
		return "", fmt.Sprintf("activity recorded for %d browser sessions", len(ev.GetEntries()))
	case *eventsv1.RegistrationStarted:
		// Never the password hash, nor the address: a stranger's until the
		// registration completes, in an entry that names no user.
		return "", fmt.Sprintf("registration %s of %q started", ev.GetRegistrationId(), ev.GetUsername())
	case *eventsv1.RegistrationCompleted:
		return ev.GetUserId(), fmt.Sprintf("registration %s completed (verification %s)", ev.GetRegistrationId(), ev.GetVerificationId())
	case *eventsv1.RegistrationTokenCreated:
		if ev.GetUsesAllowed() > 0 {
			return "", fmt.Sprintf("registration token %s created for %d uses", ev.GetTokenId(), ev.GetUsesAllowed())
		}
		return "", fmt.Sprintf("registration token %s created", ev.GetTokenId())
	case *eventsv1.RegistrationTokenUsed:
		return "", fmt.Sprintf("registration token %s used", ev.GetTokenId())
	case *eventsv1.RegistrationTokenRevoked:
		return "", fmt.Sprintf("registration token %s revoked", ev.GetTokenId())
	case *eventsv1.RegistrationTokenUnrevoked:
		return "", fmt.Sprintf("registration token %s unrevoked", ev.GetTokenId())
	case *eventsv1.RegistrationTokenUpdated:
		s := fmt.Sprintf("registration token %s updated: ", ev.GetTokenId())
		if ev.GetUsesAllowed() > 0 {
			s += fmt.Sprintf("%d uses", ev.GetUsesAllowed())
		} else {
			s += "unlimited uses"
		}
		if ev.GetExpiresAt() != nil {
			s += ", expires " + ev.GetExpiresAt().AsTime().UTC().Format(time.RFC3339)
		} else {
			s += ", never expires"
		}
		return "", s
	case *eventsv1.UpstreamLinked:
		// Never the subject or the address (personal data, sealed).
		return ev.GetUserId(), fmt.Sprintf("upstream identity of %s linked (link %s, %s)", ev.GetProvider(), ev.GetLinkId(), ev.GetSource())
	case *eventsv1.UpstreamUnlinked:
		return ev.GetUserId(), fmt.Sprintf("upstream identity of %s unlinked (link %s)", ev.GetProvider(), ev.GetLinkId())
	case *eventsv1.UpstreamLinkReserved:
		return ev.GetUserId(), fmt.Sprintf("upstream identity of %s claimed (link %s)", ev.GetProvider(), ev.GetLinkId())
	case *eventsv1.UpstreamLinkReleased:
		return ev.GetUserId(), fmt.Sprintf("upstream identity of %s released (link %s)", ev.GetProvider(), ev.GetLinkId())
	case *eventsv1.UpstreamLogoutReceived:
		return ev.GetUserId(), fmt.Sprintf("back-channel logout from %s", ev.GetProvider())
	default:
		return rec.Aggregate().ID, rec.Type()
	}
}

// shown is a personal field as a summary shows it: quoted, "(erased)" when it
// no longer opens (or was redacted).
func shown(clear string, sealed *eventsv1.SealedSecret) string {
	if clear == "" && sealed != nil {
		return "(erased)"
	}
	return strconv.Quote(clear)
}

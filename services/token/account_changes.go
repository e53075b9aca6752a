package token

import (
	"context"
	"fmt"
	"time"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/personal"
	"gatehouse.dev/platform/projection"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"google.golang.org/protobuf/proto"
)

// accountChanges is the reactor that ends the OAuth and compat sessions of a
// user whose account changed for good:
//
//   - UserDeactivated: every session ends (reason "user_deactivated"); they
//     do not come back when the user is reactivated.
//   - PasswordChanged by recovery: every session ends (reason
//     "password_recovered"): whoever held a session before the reset may be
//     the person the reset locks out. (The accounts service ends the user's
//     browser sessions itself.)
//
// An erasure (UserDeactivated with erase) also empties the address and user
// agent of every session of the user in the sessions read model, once the
// sessions it ended are there (so no activity applied later writes one back),
// and of their entries in the audit trail,
// and forgets the user's personal key in this process: the events keep them
// sealed under that key, destroyed by the accounts service.
//
// Only sessions started before the event are ended, so a replay (a rebuild,
// or a restart after a crash) never ends a session the user started after,
// for example after signing in with the new password. Locks end nothing: the
// introspection index refuses a locked user's tokens while the lock lasts
// (user_blocks.go). Ending a session is idempotent, so repeating an event
// is harmless.
const accountChanges = "account_sessions"

// accountChangeWait bounds the wait for the sessions read model to hold every
// session started so far.
const accountChangeWait = 30 * time.Second

func (s *Service) accountChangesReactor() projection.Reactor {
	return projection.Reactor{
		Name:     accountChanges,
		Source:   s.accountsLog,
		Subjects: []string{eventsv1.AccountsUser.Subjects()},
		Handle:   s.endSessionsOnAccountChange,
		// Most user events (an import's above all) end no session.
		Relevant: func(rec eventlog.Record) bool {
			//eventcheck:partial — a quick filter; endSessionsOnAccountChange handles every event type
			switch ev := rec.Event.(type) {
			case *eventsv1.UserDeactivated:
				return true
			case *eventsv1.PasswordChanged:
				return ev.GetReason() == eventsv1.PasswordChangeReason_PASSWORD_CHANGE_REASON_RECOVERY
			}
			return false
		},
		Ignores:  []proto.Message{&eventsv1.UserImported{}}, // an import's bulk, stepped over undecoded
		RetryMax: 10 * time.Second,
	}
}

func (s *Service) endSessionsOnAccountChange(ctx context.Context, rec eventlog.Record) error {
	var reason string
	switch ev := rec.Event.(type) {
	case *eventsv1.UserDeactivated:
		if ev.GetErase() {
			return s.eraseSessions(ctx, rec.Aggregate().ID, rec.OccurredAt())
		}
		reason = "user_deactivated"
	case *eventsv1.PasswordChanged:
		if ev.GetReason() != eventsv1.PasswordChangeReason_PASSWORD_CHANGE_REASON_RECOVERY {
			return nil // the user (or an administrator) changed it: the sessions stay
		}
		reason = "password_recovered"
	case *eventsv1.UserLocked, *eventsv1.UserUnlocked, *eventsv1.UserReactivated:
		return nil // locks are enforced while they last (user_blocks.go); reactivation restores nothing
	case *eventsv1.UserRegistered, *eventsv1.UserImported, *eventsv1.DisplayNameSet, *eventsv1.AdminSet,
		*eventsv1.EmailAdded, *eventsv1.EmailRemoved, *eventsv1.PrimaryEmailSet,
		*eventsv1.UpstreamLinked, *eventsv1.UpstreamUnlinked:
		return nil // no bearing on sessions (unlinking leaves the sessions made through the link, as MAS does)
	default:
		return eventlog.Unhandled(rec)
	}
	return s.endSessionsBefore(ctx, rec.Aggregate().ID, rec.OccurredAt(), reason)
}

// eraseSessions ends an erased user's sessions and empties their addresses
// and user agents in the read model.
func (s *Service) eraseSessions(ctx context.Context, userID string, t time.Time) error {
	s.personal.Forget(personal.User(userID))
	if err := s.endSessionsBefore(ctx, userID, t, "user_deactivated"); err != nil {
		return err
	}
	last, err := s.log.LastSeqOf(ctx, eventsv1.TokenSession.Subjects(), eventsv1.TokenActivity.Subjects())
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, accountChangeWait)
	defer cancel()
	if err := s.projections.WaitFor(wctx, sessionsProjection, last); err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, `UPDATE sessions SET ip_address = '', user_agent = '' WHERE user_id = $1 AND (ip_address <> '' OR user_agent <> '')`, userID); err != nil {
		return fmt.Errorf("erase the sessions of user %s: %w", userID, err)
	}
	// And the addresses noted with their activity, their times with them (as
	// a rebuild, which cannot open them, leaves them: activity_projection.go).
	if _, err := s.pool.Exec(ctx, `UPDATE session_activity a SET ip_address = '', ip_at = NULL, carried_ip_at = NULL FROM sessions s
		WHERE a.session_id = s.session_id AND s.user_id = $1 AND (a.ip_address <> '' OR a.ip_at IS NOT NULL OR a.carried_ip_at IS NOT NULL)`, userID); err != nil {
		return fmt.Errorf("erase the session activity of user %s: %w", userID, err)
	}
	// The audit trail keeps what happened, not where from.
	// (Entries appended from now on hold no address: the key is gone.)
	last, err = s.projections.Head(ctx, auditProjection)
	if err != nil {
		return err
	}
	if err := s.projections.WaitFor(wctx, auditProjection, last); err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, `UPDATE audit_entries SET ip_address = '' WHERE user_id = $1 AND ip_address <> ''`, userID); err != nil {
		return fmt.Errorf("erase the audit trail of user %s: %w", userID, err)
	}
	return nil
}

// endSessionsBefore ends the live sessions of a user started at or before t.
func (s *Service) endSessionsBefore(ctx context.Context, userID string, t time.Time, reason string) error {
	return s.endSessionsWhere(ctx, `user_id = $1 AND ended_at IS NULL AND created_at <= $2`, []any{userID, t}, reason, "user "+userID)
}

package accounts

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/ids"
	"gatehouse.dev/services/accounts/internal/browser"
	"gatehouse.dev/services/accounts/internal/user"
)

// Browser sessions: one aggregate per signed-in browser,
// accounts.browser.<session id> (see internal/browser for the rules). The
// cookie secret is returned once by startBrowserSession; the events and the
// browser_sessions read model keep only its SHA-256. Authenticating reads the
// read model and writes nothing but an in-memory note (see activity.go).

// startBrowserSession signs a user in on a browser. It returns the session
// and its cookie secret, which is not kept anywhere.
// cmd carries the browser's details and the upstream session, if any; its
// id and secret are chosen here.
func (s *Service) startBrowserSession(ctx context.Context, userID string, cmd browser.StartCommand, actor string) (*sessionRow, string, error) {
	userRef, u, err := s.loadUser(ctx, userID)
	if err != nil {
		return nil, "", err
	}
	id := ids.New()
	secret, hash := browser.NewSecret()
	cmd.SessionID, cmd.SecretHash = id, hash
	decided, err := browser.Start(browser.State{}, u, cmd)
	if err != nil {
		return nil, "", err
	}
	appended, err := s.append(ctx, eventlog.Write{
		Expect: eventlog.ExpectNew(), TTL: s.browserTTL(), // browser_retention.go
		Event: eventlog.Event{Aggregate: eventlog.Ref{Type: browserAggregate, ID: id}, Actor: actor, Payload: decided[0]},
	})
	if err != nil {
		if _, ok := errors.AsType[*errs.Error](err); ok {
			return nil, "", err
		}
		return nil, "", errs.Wrap(errs.KindUnavailable, "You could not be signed in right now; try again.", err)
	}
	// A deactivation that raced with this start may have listed the user's
	// sessions before this one was visible. If the user changed since the
	// decision, look again, and end the session if they were deactivated.
	// (A deactivation appended after this check sees the session: it waits for
	// the read model to apply every session started before it lists them.)
	if v, err := s.log.Version(ctx, userRef); err != nil || v != u.Version {
		_, now, err := s.loadUser(ctx, userID)
		if err != nil || now.Deactivated {
			if _, endErr := s.endBrowserSession(ctx, id, "", browser.ReasonDeactivated, "system"); endErr != nil {
				s.logger.ErrorContext(ctx, "browser session of a deactivated user not ended", "session_id", id, "user_id", userID, "err", endErr)
			}
			if err != nil {
				return nil, "", err
			}
			return nil, "", errs.FailedPrecondition("This account has been deactivated.")
		}
	}
	if err := s.projections.WaitFor(ctx, sessionsProjection, appended.Last()); err != nil {
		return nil, "", errs.Wrap(errs.KindUnavailable, "You were signed in but the session is not usable yet; try again shortly.", err)
	}
	r, err := s.sessionByID(ctx, id)
	if err != nil {
		return nil, "", err
	}
	return r, secret, nil
}

// authenticateBrowserSession resolves a cookie secret to its live session and
// user, and notes the session's use. Every reason to refuse gets the same
// answer.
func (s *Service) authenticateBrowserSession(ctx context.Context, secret, ip string) (*sessionRow, *userRow, error) {
	ip, err := browser.NormalizeIP(ip)
	if err != nil {
		return nil, nil, err
	}
	refused := errs.Unauthenticated("This browser session is not valid; sign in again.")
	if !browser.WellFormedSecret(secret) {
		return nil, nil, refused
	}
	r, u, err := s.sessionBySecretHash(ctx, browser.HashSecret(secret))
	if errs.KindOf(err) == errs.KindNotFound {
		return nil, nil, refused
	}
	if err != nil {
		return nil, nil, err
	}
	now := s.now()
	if !r.live(now) {
		return nil, nil, refused
	}
	s.activity.Touch(r.id, u.id, ip, now)
	r.lastActive = now
	if ip != "" {
		r.ip = ip
	}
	return r, u, nil
}

// endBrowserSession ends a session for reason; when ownerID is set, the
// session must be one of that user's (else it is not found). Ending an ended
// session succeeds. It returns the sequence of the event appended, 0 for none,
// without waiting for the read model.
func (s *Service) endBrowserSession(ctx context.Context, sessionID, ownerID, reason, actor string) (uint64, error) {
	return s.endSession(ctx, sessionID, ownerID, reason, false, actor)
}

// endBrowserSessionWith ends a session for reason; endStarted asks the token
// service to end the OAuth and compat sessions started from it too.
func (s *Service) endBrowserSessionWith(ctx context.Context, sessionID, reason string, endStarted bool, actor string) (uint64, error) {
	return s.endSession(ctx, sessionID, "", reason, endStarted, actor)
}

func (s *Service) endSession(ctx context.Context, sessionID, ownerID, reason string, endStarted bool, actor string) (uint64, error) {
	if !ids.Valid(sessionID) {
		return 0, errs.InvalidField("session_id", "session_id must be a session id such as 01HZX3…")
	}
	if ownerID != "" && !ids.Valid(ownerID) {
		return 0, errs.InvalidField("user_id", "user_id must be a user id such as 01HZX3…")
	}
	ref := eventlog.Ref{Type: browserAggregate, ID: sessionID}
	appended, err := s.log.Execute(ctx, ref, func(history []eventlog.Record, version uint64) ([]eventlog.Write, error) {
		st := browser.Fold(history)
		if ownerID != "" && st.Exists() && st.UserID != ownerID {
			return nil, errNoSession
		}
		decided, err := browser.EndWith(st, reason, endStarted)
		if errs.KindOf(err) == errs.KindNotFound {
			return nil, errNoSession
		}
		if err != nil || len(decided) == 0 {
			return nil, err
		}
		return []eventlog.Write{{
			Expect: eventlog.ExpectVersion(version), TTL: s.browserTTL(),
			Event: eventlog.Event{Aggregate: ref, Actor: actor, Payload: decided[0]},
		}}, nil
	})
	if err != nil {
		if _, ok := errors.AsType[*errs.Error](err); ok {
			return 0, err
		}
		return 0, errs.Wrap(errs.KindUnavailable, "The session could not be ended right now; try again.", err)
	}
	return appended.Last(), nil
}

// signOut ends one session and waits until the read model shows it.
func (s *Service) signOut(ctx context.Context, sessionID, ownerID, actor string) error {
	reason := browser.ReasonEnded
	if ownerID != "" {
		reason = browser.ReasonLogout
	}
	seq, err := s.endBrowserSession(ctx, sessionID, ownerID, reason, actor)
	if err != nil {
		return err
	}
	return s.waitForSessions(ctx, seq)
}

// endBrowserSessions ends every live session of a user but except (a session
// id, or "") for reason, one BrowserSessionEnded each, and waits until the
// read model shows it. Deactivation uses it; so may a password change that
// signs the user out everywhere else.
func (s *Service) endBrowserSessions(ctx context.Context, userID, except, reason, actor string) error {
	// Every session started so far must be in the read model before listing.
	last, err := s.log.LastSeqOf(ctx, s.log.Subjects(browserAggregate))
	if err != nil {
		return errs.Wrap(errs.KindUnavailable, "Browser sessions cannot be read right now.", err)
	}
	if err := s.waitForSessions(ctx, last); err != nil {
		return err
	}
	live, err := s.listSessions(ctx, userID, false)
	if err != nil {
		return err
	}
	var (
		latest uint64
		failed []error
	)
	for _, r := range live {
		if r.id == except {
			continue
		}
		seq, err := s.endBrowserSession(ctx, r.id, userID, reason, actor)
		if err != nil {
			failed = append(failed, fmt.Errorf("end session %s: %w", r.id, err))
			continue
		}
		latest = max(latest, seq)
	}
	if len(failed) > 0 {
		return errs.Wrap(errs.KindUnavailable, "Some browser sessions could not be ended; try again.", errors.Join(failed...))
	}
	return s.waitForSessions(ctx, latest)
}

// waitForSessions waits until the browser_sessions read model has applied seq (0: nothing).
func (s *Service) waitForSessions(ctx context.Context, seq uint64) error {
	if seq == 0 {
		return nil
	}
	if err := s.projections.WaitFor(ctx, sessionsProjection, seq); err != nil {
		return errs.Wrap(errs.KindUnavailable, "The change was saved but is not visible yet; try again shortly.", err)
	}
	return nil
}

// listBrowserSessions lists a user's sessions, newest first.
func (s *Service) listBrowserSessions(ctx context.Context, userID string, includeEnded bool) ([]*sessionRow, error) {
	if !ids.Valid(userID) {
		return nil, errs.InvalidField("user_id", "user_id must be a user id such as 01HZX3…")
	}
	if _, err := s.userByID(ctx, userID); err != nil {
		return nil, err
	}
	return s.listSessions(ctx, userID, includeEnded)
}

// deactivate deactivates a user and then ends all of their browser sessions;
// with erase, it erases the user (erase.go). A retry after a failure to end
// some ends the rest.
func (s *Service) deactivate(ctx context.Context, userID string, erase bool, actor string) (*userRow, error) {
	if erase {
		return s.erase(ctx, userID, actor)
	}
	u, err := s.update(ctx, userID, actor, func(st user.State) ([]proto.Message, error) { return user.Deactivate(st, false) })
	if err != nil {
		return nil, err
	}
	if err := s.endBrowserSessions(ctx, userID, "", browser.ReasonDeactivated, actor); err != nil {
		return nil, errs.Wrap(errs.KindOf(err), "The account was deactivated, but not all of its browser sessions could be ended; try again.", err)
	}
	return u, nil
}

// now is the service's clock.
func (s *Service) now() time.Time { return s.clock() }

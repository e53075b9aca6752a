package accounts

import (
	"context"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/personal"
	"gatehouse.dev/platform/projection"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/accounts/internal/browser"
	"gatehouse.dev/services/accounts/internal/factors"
	"gatehouse.dev/services/accounts/internal/user"
	"google.golang.org/protobuf/proto"
)

// Erasure (GDPR art. 17). Deactivating a user with erase:
//
//  1. appends, as one atomic batch, the release of every address the user
//     holds (EmailReleased on each claim, so the addresses are free again)
//     and then UserDeactivated with erase; the read models drop the user's
//     address, display name, password, session addresses and user agents,
//     and the audit log's summaries of the user's entries lose their
//     personal data (projections.go, sessions_projection.go);
//     (with, when the user has any, SecondFactorsReset: passkeys, TOTP and
//     recovery codes removed);
//  2. ends the user's browser sessions;
//  3. destroys the user's personal key: every personal datum sealed under
//     it, in the events of every service and in any copy of the streams,
//     never opens again. The erasure reactor destroys it too, so a crash
//     between the event and the destruction still destroys it.
//
// Other services learn the erasure from the event: the token service forgets
// the sessions' addresses and user agents, the homeserver is asked to erase
// the user. The username stays reserved, so nobody can take over the erased
// person's Matrix ID. An erased account cannot be reactivated.

// erasureReactorName is the reactor that destroys erased users' keys.
const erasureReactorName = "erasure"

// erasureReactor destroys the personal key of every user deactivated with
// erase. Destroying is idempotent, so a replay destroys nothing new.
func (s *Service) erasureReactor() projection.Reactor {
	return projection.Reactor{
		Name:     erasureReactorName,
		Subjects: []string{eventsv1.AccountsUser.Subjects()},
		Relevant: func(rec eventlog.Record) bool {
			//eventcheck:partial — a quick filter: only an erasure concerns this reactor
			ev, ok := rec.Event.(*eventsv1.UserDeactivated)
			return ok && ev.GetErase()
		},
		Ignores: []proto.Message{&eventsv1.UserImported{}}, // an import's bulk, stepped over undecoded
		Handle: func(ctx context.Context, rec eventlog.Record) error {
			//eventcheck:partial — only an erasure destroys a key; no other event of a user concerns this reactor
			if ev, ok := rec.Event.(*eventsv1.UserDeactivated); ok && ev.GetErase() {
				return s.personal.Destroy(ctx, personal.User(ev.GetUserId()))
			}
			return nil
		},
	}
}

// erase deactivates a user and erases their personal data. Erasing an erased
// user ends and destroys what a failed attempt left (sessions, the key).
func (s *Service) erase(ctx context.Context, userID, actor string) (*userRow, error) {
	appended, err := s.executeBatch(ctx, func() ([]eventlog.Write, error) {
		ref, st, err := s.loadUser(ctx, userID)
		if err != nil {
			return nil, err
		}
		decided, err := user.Deactivate(st, true)
		if err != nil || len(decided) == 0 {
			return nil, err
		}
		// The releases first: the deactivation, last, erases their audit
		// summaries with the rest.
		var writes []eventlog.Write
		for _, e := range st.Emails {
			claimRef, claim, err := s.emailClaim(ctx, e.Address)
			if err != nil {
				return nil, err
			}
			if claim.Holder != st.ID {
				continue
			}
			writes = append(writes, eventlog.Write{
				Expect: eventlog.ExpectVersion(claim.Version),
				Event:  eventlog.Event{Aggregate: claimRef, Actor: actor, Payload: &eventsv1.EmailReleased{Email: e.Address, UserId: st.ID}},
			})
		}
		// Upstream identities are released too: an erased person may sign up
		// again through their provider (their links' subjects are shredded
		// with the key).
		for _, l := range st.Links {
			claimRef, claim, err := s.linkClaim(ctx, l.ClaimKey)
			if err != nil {
				return nil, err
			}
			if claim.Holder != st.ID {
				continue
			}
			writes = append(writes, eventlog.Write{
				Expect: eventlog.ExpectVersion(claim.Version),
				Event: eventlog.Event{Aggregate: claimRef, Actor: actor,
					Payload: &eventsv1.UpstreamLinkReleased{Provider: l.Provider, UserId: st.ID, LinkId: l.ID}},
			})
		}
		// Passkeys, the authenticator app and recovery codes go too (the
		// TOTP secret and the passkeys' names are sealed under the key).
		fs, err := s.loadFactors(ctx, st.ID)
		if err != nil {
			return nil, err
		}
		if reset, _ := factors.Reset(fs, st.ID, factors.Notice{}); len(reset) > 0 {
			writes = append(writes, eventlog.Write{
				Expect: eventlog.ExpectVersion(fs.Version),
				Event:  eventlog.Event{Aggregate: eventlog.Ref{Type: factorsAggregate, ID: st.ID}, Actor: actor, Payload: reset[0]},
			})
		}
		return append(writes, eventlog.Write{
			Expect: eventlog.ExpectVersion(st.Version),
			Event:  eventlog.Event{Aggregate: ref, Actor: actor, Payload: decided[0]},
		}), nil
	})
	if err != nil {
		return nil, err
	}
	if seq := appended.Last(); seq > 0 {
		if err := s.projections.WaitFor(ctx, usersProjection, seq); err != nil {
			return nil, errs.Wrap(errs.KindUnavailable, "The account was erased but the change is not visible yet; try again shortly.", err)
		}
	}
	if err := s.endBrowserSessions(ctx, userID, "", browser.ReasonDeactivated, actor); err != nil {
		return nil, errs.Wrap(errs.KindOf(err), "The account was erased, but not all of its browser sessions could be ended; try again.", err)
	}
	if err := s.personal.Destroy(ctx, personal.User(userID)); err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "The account was deactivated, but its personal data could not be destroyed yet; try again.", err)
	}
	// Every read model of the service shows the erasure when the call returns.
	if seq := appended.Last(); seq > 0 {
		for _, name := range []string{sessionsProjection, erasureReactorName, auditReactorName} {
			if err := s.projections.WaitFor(ctx, name, seq); err != nil {
				return nil, errs.Wrap(errs.KindUnavailable, "The account was erased but the change is not visible yet; try again shortly.", err)
			}
		}
		// The erasure's entry is in AUDIT: the trail shows it once applied.
		head, err := s.projections.Head(ctx, auditProjection)
		if err == nil {
			err = s.projections.WaitFor(ctx, auditProjection, head)
		}
		if err != nil {
			return nil, errs.Wrap(errs.KindUnavailable, "The account was erased but the change is not visible yet; try again shortly.", err)
		}
	}
	return s.userByID(ctx, userID)
}

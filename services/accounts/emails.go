package accounts

import (
	"context"

	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/ids"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/accounts/internal/user"
)

// A user's email addresses live on the user aggregate (EmailAdded,
// EmailRemoved, PrimaryEmailSet); each address is also held through its own
// reservation aggregate, accounts.email.<user.EmailKey>, a keyed hash of the
// address, so that two users can never hold one address. Adding an address
// appends EmailReserved and EmailAdded as one atomic batch, removing one
// EmailRemoved and EmailReleased, each write expecting the version it was
// decided on.

// emailClaim loads who holds an address (normalized), and the aggregate its
// claim lives on: its keyed subject, or, for an address claimed by a version
// before keyed claims and not moved yet (upgrade.go), its legacy subject.
func (s *Service) emailClaim(ctx context.Context, email string) (eventlog.Ref, user.EmailClaim, error) {
	ref := eventlog.Ref{Type: emailAggregate, ID: user.EmailKey(s.claimKey, email)}
	history, _, err := s.log.Load(ctx, ref)
	if err != nil {
		return ref, user.EmailClaim{}, errs.Wrap(errs.KindUnavailable, "Email addresses cannot be checked right now; try again.", err)
	}
	if len(history) > 0 {
		return ref, user.FoldEmailClaim(history), nil
	}
	legacy := eventlog.Ref{Type: emailAggregate, ID: user.LegacyEmailKey(email)}
	old, _, err := s.log.Load(ctx, legacy)
	if err != nil {
		return ref, user.EmailClaim{}, errs.Wrap(errs.KindUnavailable, "Email addresses cannot be checked right now; try again.", err)
	}
	if claim := user.FoldEmailClaim(old); claim.Holder != "" {
		return legacy, claim, nil
	}
	return ref, user.EmailClaim{}, nil
}

// emailTaken is the answer to claiming an address another user holds.
func emailTaken(cause error) error {
	e := errs.AlreadyExists("This email address is already in use.")
	e.Field, e.Err = "email", cause
	return e
}

// loadUser loads a user aggregate for a decision.
func (s *Service) loadUser(ctx context.Context, userID string) (eventlog.Ref, user.State, error) {
	ref := eventlog.Ref{Type: userAggregate, ID: userID}
	if !ids.Valid(userID) {
		return ref, user.State{}, errs.InvalidField("user_id", "user_id must be a user id such as 01HZX3…")
	}
	history, _, err := s.load(ctx, ref)
	if err != nil {
		return ref, user.State{}, errs.Wrap(errs.KindUnavailable, "The account cannot be read right now; try again.", err)
	}
	return ref, user.Fold(history), nil
}

// addEmail adds an address to a user and returns the user's addresses. The
// address must be proved by a verification the notify service confirmed for
// this user, or vouched for by an administrator (skip).
func (s *Service) addEmail(ctx context.Context, userID, email, verificationID string, skip bool, actor string) ([]*accountsv1.Email, error) {
	if !ids.Valid(userID) {
		return nil, errs.InvalidField("user_id", "user_id must be a user id such as 01HZX3…")
	}
	normalized, err := user.NormalizeEmail(email)
	if err != nil {
		return nil, err
	}
	switch {
	case verificationID != "":
		if err := s.checkProof(ctx, proof{
			verificationID: verificationID, email: normalized, userID: userID,
			purpose: eventsv1.VerificationPurpose_VERIFICATION_PURPOSE_ADD_EMAIL,
			after:   s.clock().Add(-verificationMaxAge),
		}); err != nil {
			return nil, err
		}
	case !skip:
		return nil, errs.InvalidField("verification_id", "Adding an address needs verification_id (a confirmed verification) or skip_verification (an administrator vouches for it)")
	}
	return s.changeEmails(ctx, userID, actor, func(st user.State) ([]proto.Message, error) {
		return user.AddEmail(st, email, verificationID)
	})
}

// removeEmail removes one of a user's non-primary addresses, releasing it.
func (s *Service) removeEmail(ctx context.Context, userID, email, actor string) ([]*accountsv1.Email, error) {
	return s.changeEmails(ctx, userID, actor, func(st user.State) ([]proto.Message, error) {
		return user.RemoveEmail(st, email)
	})
}

// setPrimaryEmail makes one of a user's addresses the primary one.
func (s *Service) setPrimaryEmail(ctx context.Context, userID, email, actor string) ([]*accountsv1.Email, error) {
	if _, err := s.update(ctx, userID, actor, func(st user.State) ([]proto.Message, error) {
		return user.SetPrimaryEmail(st, email)
	}); err != nil {
		return nil, err
	}
	return s.listEmails(ctx, userID)
}

// changeEmails decides an EmailAdded or EmailRemoved on a user and appends it
// in one atomic batch with the matching claim or release of the address.
func (s *Service) changeEmails(ctx context.Context, userID, actor string, decide decision) ([]*accountsv1.Email, error) {
	var userIndex int // index of the user's event in the batch
	appended, err := s.executeBatch(ctx, func() ([]eventlog.Write, error) {
		ref, st, err := s.loadUser(ctx, userID)
		if err != nil {
			return nil, err
		}
		decided, err := decide(st)
		if err != nil || len(decided) == 0 {
			return nil, err
		}
		userWrite := eventlog.Write{
			Expect: eventlog.ExpectVersion(st.Version),
			Event:  eventlog.Event{Aggregate: ref, Actor: actor, Payload: decided[0]},
		}
		var email string
		//eventcheck:partial — a decision of the two email commands, not a consumer of the stream
		switch ev := decided[0].(type) {
		case *eventsv1.EmailAdded:
			email = ev.GetEmail()
		case *eventsv1.EmailRemoved:
			email = ev.GetEmail()
		default:
			return nil, errs.Internalf("accounts: email change decided %T", decided[0])
		}
		emailRef, claim, err := s.emailClaim(ctx, email)
		if err != nil {
			return nil, err
		}
		var claimEvent proto.Message
		//eventcheck:partial — as above: an EmailAdded or an EmailRemoved just decided
		switch decided[0].(type) {
		case *eventsv1.EmailAdded:
			switch claim.Holder {
			case "":
				claimEvent = &eventsv1.EmailReserved{Email: email, UserId: st.ID}
			case st.ID: // already held: only the user's side is missing
			default:
				return nil, emailTaken(nil)
			}
		case *eventsv1.EmailRemoved:
			if claim.Holder == st.ID {
				claimEvent = &eventsv1.EmailReleased{Email: email, UserId: st.ID}
			}
		}
		if claimEvent == nil {
			userIndex = 0
			return []eventlog.Write{userWrite}, nil
		}
		userIndex = 1
		return []eventlog.Write{{
			Expect: eventlog.ExpectVersion(claim.Version),
			Event:  eventlog.Event{Aggregate: emailRef, Actor: actor, Payload: claimEvent},
		}, userWrite}, nil
	})
	if err != nil {
		return nil, err
	}
	if len(appended.Seqs) > userIndex {
		if err := s.projections.WaitFor(ctx, usersProjection, appended.Seqs[userIndex]); err != nil {
			return nil, errs.Wrap(errs.KindUnavailable, "The change was saved but is not visible yet; try again shortly.", err)
		}
	}
	return s.listEmails(ctx, userID)
}

// listEmails lists a user's addresses, the primary one first, then in the
// order they were added. NOT_FOUND for an unknown user.
func (s *Service) listEmails(ctx context.Context, userID string) ([]*accountsv1.Email, error) {
	if !ids.Valid(userID) {
		return nil, errs.InvalidField("user_id", "user_id must be a user id such as 01HZX3…")
	}
	rows, err := s.pool.Query(ctx, `SELECT `+emailColumns+` FROM user_emails WHERE user_id = $1
		ORDER BY is_primary DESC, added_at, email`, userID)
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "Email addresses cannot be read right now.", err)
	}
	defer rows.Close()
	var out []*accountsv1.Email
	for rows.Next() {
		e, err := scanEmail(rows)
		if err != nil {
			return nil, errs.Wrap(errs.KindUnavailable, "Email addresses cannot be read right now.", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "Email addresses cannot be read right now.", err)
	}
	if len(out) == 0 {
		if _, err := s.userByID(ctx, userID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// userByEmail finds the user holding an address.
func (s *Service) userByEmail(ctx context.Context, email string) (*userRow, error) {
	email, err := user.NormalizeEmail(email)
	if err != nil {
		return nil, err
	}
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+qualifiedUserColumns+` FROM users u JOIN user_emails e ON e.user_id = u.id WHERE e.email = $1`, email))
	if errs.KindOf(err) == errs.KindNotFound {
		return nil, errs.NotFound("No user has this email address.")
	}
	return u, err
}

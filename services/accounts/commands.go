package accounts

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/ids"
	"gatehouse.dev/platform/personal"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/accounts/internal/browser"
	"gatehouse.dev/services/accounts/internal/password"
	"gatehouse.dev/services/accounts/internal/user"
)

// Aggregate types of the service's subjects, as the event contract names
// them (proto/gatehouse/events/v1/streams.go).
var (
	userAggregate     = eventsv1.AccountsUser.Type
	usernameAggregate = eventsv1.AccountsUsername.Type
	emailAggregate    = eventsv1.AccountsEmail.Type
	// browserAggregate is a browser session (see internal/browser).
	browserAggregate = eventsv1.AccountsBrowser.Type
	// activityAggregate is one batch of browser session activity (see activity.go).
	activityAggregate = eventsv1.AccountsActivity.Type
	// registrationAggregate is a pending self-service registration (see registrations.go).
	registrationAggregate = eventsv1.AccountsRegistration.Type
)

// registration is the input of Register.
type registration struct {
	Username, Password, Email, DisplayName string
	Admin                                  bool
	// VerificationID is the notify service's confirmed verification of Email.
	VerificationID string
	// SkipVerification: an administrator vouches for Email.
	SkipVerification bool
}

// register creates a user directly (administrators, the CLI). An email
// address must be proved by a confirmed verification, or vouched for.
func (s *Service) register(ctx context.Context, in registration, actor string) (*userRow, error) {
	if err := user.ValidateUsername(in.Username, s.cfg.ServerName); err != nil {
		return nil, err
	}
	var email string
	if in.Email != "" {
		var err error
		if email, err = user.NormalizeEmail(in.Email); err != nil {
			return nil, err
		}
		switch {
		case in.VerificationID != "":
			if err := s.checkProof(ctx, proof{
				verificationID: in.VerificationID, email: email,
				purpose: eventsv1.VerificationPurpose_VERIFICATION_PURPOSE_REGISTRATION,
				after:   s.clock().Add(-verificationMaxAge),
			}); err != nil {
				return nil, err
			}
		case !in.SkipVerification:
			return nil, errs.InvalidField("verification_id", "An email address needs verification_id (a confirmed verification) or skip_verification (an administrator vouches for it)")
		}
	}
	var hash string
	if in.Password != "" {
		if err := password.CheckPolicy(in.Password); err != nil {
			return nil, err
		}
		var err error
		if hash, err = s.hasher.Hash(in.Password); err != nil {
			return nil, errs.Wrap(errs.KindInternal, "", fmt.Errorf("hash password: %w", err))
		}
	}
	return s.createUser(ctx, user.RegisterCommand{
		Username: in.Username, Email: email, Admin: in.Admin,
		DisplayName: in.DisplayName, EmailVerificationID: in.VerificationID,
	}, hash, actor, nil)
}

// createUser appends a new user's first event, with the password hash (a
// PHC string, "" for none) sealed for the new user. The username (and email,
// if any) are claimed in the same atomic batch, each on a subject of its own
// that must still be empty (or, for an email address, end in its release):
// of two concurrent registrations of one name, exactly one is stored. more
// is appended in the same batch (a registration's completion), after the
// user's event; it gets the new user's id.
func (s *Service) createUser(ctx context.Context, cmd user.RegisterCommand, hash, actor string, more func(userID string) ([]eventlog.Write, error)) (*userRow, error) {
	id := ids.New()
	cmd.UserID, cmd.ServerName = id, s.cfg.ServerName
	// The user's personal key exists before anything is sealed under it. A
	// registration that fails leaves an unused key behind, which seals nothing.
	if _, err := s.personal.Create(ctx, personal.User(id)); err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "The account could not be created right now; try again.", err)
	}
	var err error
	if cmd.Password, err = s.sealHash(ctx, id, hash); err != nil {
		return nil, err
	}
	decided, err := user.Register(user.State{}, cmd)
	if err != nil {
		return nil, err
	}
	nameRef := eventlog.Ref{Type: usernameAggregate, ID: user.UsernameKey(cmd.Username)}
	writes := []eventlog.Write{{
		Expect: eventlog.ExpectNew(),
		Event:  eventlog.Event{Aggregate: nameRef, Actor: actor, Payload: &eventsv1.UsernameReserved{Username: cmd.Username, UserId: id}},
	}}
	var emailRef eventlog.Ref
	if cmd.Email != "" {
		ref, claim, err := s.emailClaim(ctx, cmd.Email)
		if err != nil {
			return nil, err
		}
		if claim.Holder != "" {
			return nil, emailTaken(nil)
		}
		emailRef = ref
		writes = append(writes, eventlog.Write{
			Expect: eventlog.ExpectVersion(claim.Version),
			Event:  eventlog.Event{Aggregate: emailRef, Actor: actor, Payload: &eventsv1.EmailReserved{Email: cmd.Email, UserId: id}},
		})
	}
	userRef := eventlog.Ref{Type: userAggregate, ID: id}
	for _, ev := range decided {
		writes = append(writes, eventlog.Write{Expect: eventlog.ExpectNew(), Event: eventlog.Event{Aggregate: userRef, Actor: actor, Payload: ev}})
	}
	userSeq := len(writes) - 1
	if more != nil {
		extra, err := more(id)
		if err != nil {
			return nil, err
		}
		writes = append(writes, extra...)
	}
	appended, err := s.append(ctx, writes...)
	if eventlog.IsConflict(err) {
		return nil, s.whichClaimLost(ctx, nameRef, emailRef, err)
	}
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "The account could not be created right now; try again.", err)
	}
	if err := s.projections.WaitFor(ctx, usersProjection, appended.Seqs[userSeq]); err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "The account was created but is not visible yet; try again shortly.", err)
	}
	return s.userByID(ctx, id)
}

// whichClaimLost explains a lost registration race: the username or the email was taken.
func (s *Service) whichClaimLost(ctx context.Context, nameRef, emailRef eventlog.Ref, cause error) error {
	if v, err := s.log.Version(ctx, nameRef); err == nil && v > 0 {
		e := errs.AlreadyExists("This username is already taken.")
		e.Field, e.Err = "username", cause
		return e
	}
	if emailRef.ID != "" {
		if history, _, err := s.log.Load(ctx, emailRef); err == nil && user.FoldEmailClaim(history).Holder != "" {
			return emailTaken(cause)
		}
	}
	return errs.Wrap(errs.KindConflict, "The account could not be created; try again.", cause)
}

// executeBatch runs a command that appends to several aggregates in one
// atomic batch: build loads the aggregates, decides and returns the writes,
// each expecting the version it decided on. When another writer changed any
// of them in between, build runs again on the new state. No writes append
// nothing.
func (s *Service) executeBatch(ctx context.Context, build func() ([]eventlog.Write, error)) (eventlog.Appended, error) {
	for attempt := 1; ; attempt++ {
		writes, err := build()
		if err != nil || len(writes) == 0 {
			return eventlog.Appended{}, err
		}
		appended, err := s.append(ctx, writes...)
		switch {
		case err == nil:
			return appended, nil
		case !eventlog.IsConflict(err):
			if _, ok := errors.AsType[*errs.Error](err); ok {
				return eventlog.Appended{}, err
			}
			return eventlog.Appended{}, errs.Wrap(errs.KindUnavailable, "The change could not be saved right now; try again.", err)
		case attempt == maxBatchAttempts:
			return eventlog.Appended{}, errs.Wrap(errs.KindConflict, "The change collided with others; try again.", err)
		}
		// Back off a little, with jitter, so contenders do not collide again.
		backoff := time.Duration(attempt*attempt) * time.Millisecond * time.Duration(1+rand.IntN(4))
		select {
		case <-ctx.Done():
			return eventlog.Appended{}, errs.Wrap(errs.KindUnavailable, "The change could not be saved right now; try again.", ctx.Err())
		case <-time.After(backoff):
		}
	}
}

// maxBatchAttempts bounds how often executeBatch decides again after losing a race.
const maxBatchAttempts = 8

// decision decides a command on a user's current state.
type decision func(user.State) ([]proto.Message, error)

// update runs a command on one user: load, decide, append (retrying lost
// races), and wait until the users projection shows the result.
func (s *Service) update(ctx context.Context, userID, actor string, decide decision) (*userRow, error) {
	if !ids.Valid(userID) {
		return nil, errs.InvalidField("user_id", "user_id must be a user id such as 01HZX3…")
	}
	ref := eventlog.Ref{Type: userAggregate, ID: userID}
	appended, err := s.execute(ctx, ref, func(history []eventlog.Record, version uint64) ([]eventlog.Write, error) {
		decided, err := decide(user.Fold(history))
		switch {
		case err != nil || len(decided) == 0:
			return nil, err
		case len(decided) > 1:
			// One event per command keeps every append a single expected-version publish.
			return nil, errs.Internalf("accounts: a command decided %d events; commands decide one", len(decided))
		}
		return []eventlog.Write{{
			Expect: eventlog.ExpectVersion(version),
			Event:  eventlog.Event{Aggregate: ref, Actor: actor, Payload: decided[0]},
		}}, nil
	})
	if err != nil {
		var e *errs.Error
		if errors.As(err, &e) {
			return nil, err
		}
		return nil, errs.Wrap(errs.KindUnavailable, "The change could not be saved right now; try again.", err)
	}
	if appended.Last() > 0 {
		if err := s.projections.WaitFor(ctx, usersProjection, appended.Last()); err != nil {
			return nil, errs.Wrap(errs.KindUnavailable, "The change was saved but is not visible yet; try again shortly.", err)
		}
	}
	return s.userByID(ctx, userID)
}

// verifyPassword checks a username and password. Every failure before the
// password is known to be right looks the same and costs the same time, so
// neither the answer nor its timing tells whether the user exists.
func (s *Service) verifyPassword(ctx context.Context, username, pw string) (*userRow, error) {
	wrong := errs.Unauthenticated("Wrong username or password.")
	if username == "" || pw == "" || len(pw) > 1024 {
		s.hasher.VerifyDummy(pw)
		return nil, wrong
	}
	u, err := s.userByUsername(ctx, username)
	if errs.KindOf(err) == errs.KindNotFound || (err == nil && !u.hasPassword()) {
		s.hasher.VerifyDummy(pw)
		return nil, wrong
	}
	if err != nil {
		return nil, err
	}
	hash, err := s.passwordHashOf(ctx, u)
	if err != nil {
		return nil, err
	}
	if hash == "" { // erased since the read model was read
		s.hasher.VerifyDummy(pw)
		return nil, wrong
	}
	ok, rehash, err := s.hasher.Verify(hash, pw)
	if err != nil {
		s.logger.ErrorContext(ctx, "stored password hash is malformed", "user_id", u.id, "err", err)
		return nil, wrong
	}
	if !ok {
		return nil, wrong
	}
	switch {
	case u.deactivated:
		return nil, errs.FailedPrecondition("This account has been deactivated.")
	case u.locked:
		return nil, errs.FailedPrecondition("This account is locked.")
	}
	if rehash {
		s.upgradeHash(ctx, u, pw)
	}
	return u, nil
}

// calibratePasswords measures what verifying a password costs in each
// scheme users may have — argon2id, and bcrypt at Synapse's cost when users
// were imported or a Synapse pepper is configured — so that sign-ins are
// padded to the slowest from the first (password.Hasher.Calibrate).
func (s *Service) calibratePasswords(ctx context.Context) {
	imported := s.cfg.BcryptPepper != ""
	if !imported {
		if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE imported_from <> '')`).Scan(&imported); err != nil && ctx.Err() == nil {
			s.logger.WarnContext(ctx, "password calibration: cannot tell whether users were imported; measuring bcrypt too", "err", err)
			imported = true
		}
	}
	var costs []int
	if imported {
		costs = append(costs, password.SynapseBcryptCost)
	}
	if ctx.Err() != nil {
		return
	}
	if err := s.hasher.Calibrate(costs...); err != nil {
		s.logger.WarnContext(ctx, "password calibration failed", "err", err)
		return
	}
	s.logger.DebugContext(ctx, "password verification padded", "to", s.hasher.PaddedTo())
}

// upgradeHash re-hashes a password with the current scheme after a successful
// login. It is best effort: the login succeeds whatever happens here.
func (s *Service) upgradeHash(ctx context.Context, u *userRow, pw string) {
	hash, err := s.hasher.Hash(pw)
	if err != nil {
		s.logger.WarnContext(ctx, "password hash upgrade failed", "user_id", u.id, "err", err)
		return
	}
	sealed, err := s.sealHash(ctx, u.id, hash)
	if err != nil {
		s.logger.WarnContext(ctx, "password hash upgrade failed", "user_id", u.id, "err", err)
		return
	}
	ref := eventlog.Ref{Type: userAggregate, ID: u.id}
	_, err = s.append(ctx, eventlog.Write{
		Expect: eventlog.ExpectVersion(u.version),
		Event: eventlog.Event{Aggregate: ref, Actor: "system", Payload: &eventsv1.PasswordChanged{
			UserId: u.id, SealedPasswordHash: sealed, Reason: eventsv1.PasswordChangeReason_PASSWORD_CHANGE_REASON_UPGRADE,
		}},
	})
	if err != nil && !eventlog.IsConflict(err) {
		s.logger.WarnContext(ctx, "password hash upgrade not stored", "user_id", u.id, "err", err)
	}
}

// changePassword replaces a password after checking the current one.
func (s *Service) changePassword(ctx context.Context, userID, current, next, actor string) error {
	if err := password.CheckPolicy(next); err != nil {
		return err
	}
	u, err := s.userByID(ctx, userID)
	if err != nil {
		return err
	}
	hash, err := s.passwordHashOf(ctx, u)
	if err != nil {
		return err
	}
	if ok, _, err := s.hasher.Verify(hash, current); hash == "" || err != nil || !ok {
		e := errs.Unauthenticated("The current password is wrong.")
		e.Field = "current_password"
		return e
	}
	return s.setPassword(ctx, userID, next, eventsv1.PasswordChangeReason_PASSWORD_CHANGE_REASON_USER, actor)
}

// setPassword replaces a password for reason.
func (s *Service) setPassword(ctx context.Context, userID, next string, reason eventsv1.PasswordChangeReason, actor string) error {
	if err := password.CheckPolicy(next); err != nil {
		return err
	}
	hash, err := s.hasher.Hash(next)
	if err != nil {
		return errs.Wrap(errs.KindInternal, "", fmt.Errorf("hash password: %w", err))
	}
	if !ids.Valid(userID) {
		return errs.InvalidField("user_id", "user_id must be a user id such as 01HZX3…")
	}
	_, err = s.update(ctx, userID, actor, func(st user.State) ([]proto.Message, error) {
		if !st.Exists() {
			return nil, errs.NotFound("No such user") // not "erased": an unknown user has no key either
		}
		sealed, err := s.sealHash(ctx, userID, hash)
		if err != nil {
			return nil, err
		}
		return user.ChangePassword(st, sealed, reason)
	})
	if err != nil || reason != eventsv1.PasswordChangeReason_PASSWORD_CHANGE_REASON_RECOVERY {
		return err
	}
	// Whoever knew the old password may be signed in somewhere: a recovery
	// signs the account out of every browser.
	if err := s.endBrowserSessions(ctx, userID, "", browser.ReasonPasswordChanged, actor); err != nil {
		return errs.Wrap(errs.KindUnavailable, "The password was changed, but not every browser could be signed out; try again.", err)
	}
	return nil
}

package accounts

// Self-service registrations. The registration page cannot create the user
// at once: the address must be proved first, by a code the notify service
// emails. Between the two steps the registration waits in the event log as
// an aggregate of its own, accounts.registration.<id>:
//
//   - StartRegistration checks the form as Register would, hashes the
//     password (the password itself is never stored or kept anywhere) and
//     appends RegistrationStarted. Nothing is reserved: the username and the
//     address stay free until the registration completes.
//   - CompleteRegistration, given the id of a verification the notify service
//     confirmed for the registration's address after the registration
//     started (verifications.go), appends the username and address claims,
//     UserRegistered and RegistrationCompleted as one atomic batch: the
//     account exists and the registration is spent, or neither.
//
// Any web replica can take either step: the browser only carries the
// registration's id, a ULID with 80 random bits, useless without the emailed
// code. A registration expires after Config.RegistrationTTL, and its
// RegistrationStarted event leaves the log Config.RegistrationKeep later (a
// TTL: anonymous requests cannot fill the durable stream; a completed
// registration is recorded by RegistrationCompleted, which stays, and the
// user's own events). Its address, display
// name and password hash are a stranger's until it completes, so they are
// sealed under the registration's own personal key (personal.Flow), which
// expires after personal.FlowTTL: an abandoned registration's event stays in
// the log, unreadable. Completing it destroys that key, and the key of the
// verification that proved the address, at once: from then on only the new
// user's events (under the user's key) hold them.

import (
	"context"
	"errors"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/ids"
	"gatehouse.dev/platform/personal"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/accounts/internal/password"
	"gatehouse.dev/services/accounts/internal/user"
)

// registrationTTL is how long a registration waits for its address to be
// proved, and registrationKeep how long its start stays in the log after,
// unless configured.
const (
	registrationTTL  = 30 * time.Minute
	registrationKeep = 10 * time.Minute
)

// registrationLife is how long a registration waits, and how long its start
// is kept after that.
func (c Config) registrationLife() (wait, keep time.Duration) {
	wait, keep = c.RegistrationTTL, c.RegistrationKeep
	if wait <= 0 {
		wait = registrationTTL
	}
	switch {
	case keep == 0:
		keep = registrationKeep
	case keep < 0:
		keep = 0
	}
	return wait, keep
}

// pendingRegistration is a registration aggregate's state.
type pendingRegistration struct {
	id, username, email, displayName string
	// password is the hash, sealed for the registration (in clear in
	// events written before sealing).
	password             user.Password
	startedAt, expiresAt time.Time
	userID               string // set once completed
	version              uint64
}

func (r *pendingRegistration) proto() *accountsv1.Registration {
	return &accountsv1.Registration{
		RegistrationId: r.id, Username: r.username, Email: r.email,
		StartedAt: timestamppb.New(r.startedAt), ExpiresAt: timestamppb.New(r.expiresAt), UserId: r.userID,
	}
}

// startRegistration checks a registration form and keeps it until its address is proved.
func (s *Service) startRegistration(ctx context.Context, in registration, actor string) (*pendingRegistration, error) {
	if err := user.ValidateUsername(in.Username, s.cfg.ServerName); err != nil {
		return nil, err
	}
	if in.Email == "" {
		return nil, errs.InvalidField("email", "An email address is required")
	}
	email, err := user.NormalizeEmail(in.Email)
	if err != nil {
		return nil, err
	}
	if err := user.ValidateDisplayName(in.DisplayName); err != nil {
		return nil, err
	}
	if in.Password == "" {
		return nil, errs.InvalidField("password", "A password is required")
	}
	if err := password.CheckPolicy(in.Password); err != nil {
		return nil, err
	}
	// Usernames are public in Matrix: saying one is taken reveals nothing.
	// Whether an address has an account is only said once it is proved.
	nameRef := eventlog.Ref{Type: usernameAggregate, ID: user.UsernameKey(in.Username)}
	if v, err := s.log.Version(ctx, nameRef); err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "The registration cannot be started right now; try again.", err)
	} else if v > 0 {
		e := errs.AlreadyExists("This username is already taken.")
		e.Field = "username"
		return nil, e
	}
	hash, err := s.hasher.Hash(in.Password)
	if err != nil {
		return nil, errs.Wrap(errs.KindInternal, "", err)
	}
	now := s.clock()
	wait, keep := s.cfg.registrationLife()
	r := &pendingRegistration{
		id: ids.New(), username: in.Username, email: email, displayName: in.DisplayName,
		startedAt: now, expiresAt: now.Add(wait),
	}
	if r.password.Sealed, err = s.sealHashFor(ctx, personal.Flow(r.id), registrationPasswordPlace(r.id), hash); err != nil {
		return nil, err
	}
	_, err = s.append(ctx, eventlog.Write{Expect: eventlog.ExpectNew(), TTL: wait + keep, Event: eventlog.Event{
		Aggregate: eventlog.Ref{Type: registrationAggregate, ID: r.id}, Actor: actor,
		Payload: &eventsv1.RegistrationStarted{
			RegistrationId: r.id, Username: r.username, Email: r.email, SealedPasswordHash: r.password.Sealed,
			DisplayName: r.displayName, ExpiresAt: timestamppb.New(r.expiresAt),
		},
	}})
	if err != nil {
		if _, ok := errors.AsType[*errs.Error](err); ok {
			return nil, err
		}
		return nil, errs.Wrap(errs.KindUnavailable, "The registration cannot be started right now; try again.", err)
	}
	return r, nil
}

// loadRegistration folds a registration aggregate. NOT_FOUND when it does not exist.
func (s *Service) loadRegistration(ctx context.Context, id string) (*pendingRegistration, error) {
	if !ids.Valid(id) {
		return nil, errs.InvalidField("registration_id", "registration_id must be a registration id such as 01HZX3…")
	}
	history, version, err := s.load(ctx, eventlog.Ref{Type: registrationAggregate, ID: id})
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "The registration cannot be read right now; try again.", err)
	}
	var r *pendingRegistration
	for _, rec := range history {
		switch ev := rec.Event.(type) {
		case *eventsv1.RegistrationStarted:
			r = &pendingRegistration{
				id: id, username: ev.GetUsername(), email: ev.GetEmail(),
				password:    user.Password{Sealed: ev.GetSealedPasswordHash(), Clear: ev.GetPasswordHash()},
				displayName: ev.GetDisplayName(), startedAt: rec.OccurredAt(), expiresAt: ev.GetExpiresAt().AsTime(),
			}
		case *eventsv1.RegistrationCompleted:
			if r != nil {
				r.userID = ev.GetUserId()
			}
		}
	}
	if r == nil {
		return nil, errs.NotFound("No such registration; start again.")
	}
	r.version = version
	return r, nil
}

// completeRegistration creates the user of a registration whose address the
// notify service confirmed.
func (s *Service) completeRegistration(ctx context.Context, registrationID, verificationID, actor string) (*userRow, error) {
	r, err := s.loadRegistration(ctx, registrationID)
	if err != nil {
		return nil, err
	}
	switch {
	case r.userID != "":
		return nil, errs.FailedPrecondition("This registration is already complete; sign in.")
	case !s.clock().Before(r.expiresAt), r.email == "": // (no address: its personal key expired)
		return nil, errs.FailedPrecondition("This registration has expired; start again.")
	}
	if err := s.checkProof(ctx, proof{
		verificationID: verificationID, email: r.email,
		purpose: eventsv1.VerificationPurpose_VERIFICATION_PURPOSE_REGISTRATION,
		after:   r.startedAt,
	}); err != nil {
		return nil, err
	}
	hash, err := s.openHash(ctx, r.password, registrationPasswordPlace(r.id))
	if err != nil {
		return nil, err
	}
	if hash == "" {
		return nil, errs.FailedPrecondition("This registration has expired; start again.")
	}
	u, err := s.createUser(ctx, user.RegisterCommand{
		Username: r.username, Email: r.email,
		DisplayName: r.displayName, EmailVerificationID: verificationID,
	}, hash, actor, func(userID string) ([]eventlog.Write, error) {
		return []eventlog.Write{{Expect: eventlog.ExpectVersion(r.version), Event: eventlog.Event{
			Aggregate: eventlog.Ref{Type: registrationAggregate, ID: r.id}, Actor: actor,
			Payload: &eventsv1.RegistrationCompleted{RegistrationId: r.id, UserId: userID, VerificationId: verificationID},
		}}}, nil
	})
	if errs.KindOf(err) == errs.KindConflict {
		// Neither claim was lost: the registration itself moved on (completed concurrently).
		if again, lerr := s.loadRegistration(ctx, registrationID); lerr == nil && again.userID != "" {
			return nil, errs.FailedPrecondition("This registration is already complete; sign in.")
		}
	}
	if err != nil {
		return nil, err
	}
	// The stranger's data is the user's now, sealed under the user's key:
	// the registration's and the verification's copies go. They would expire
	// within personal.FlowTTL anyway, so a failure here is only logged.
	for _, owner := range []personal.Owner{personal.Flow(r.id), personal.Flow(verificationID)} {
		if err := s.personal.Destroy(ctx, owner); err != nil {
			s.logger.WarnContext(ctx, "a completed registration's personal key not destroyed; it expires on its own", "owner", owner, "err", err)
		}
	}
	return u, nil
}

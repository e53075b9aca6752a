package accounts

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/caller"
	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/ids"
	"gatehouse.dev/platform/ratelimit"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/accounts/internal/factors"
)

// Second factors (internal/factors): passkeys (passkeys.go), TOTP (totp.go)
// and recovery codes, one aggregate per user, accounts.factors.<user id>.
//
// How the accounts service trusts a second factor: it checks every factor
// itself — the TOTP code against the secret only it can open, the recovery
// code against its keyed hash, the WebAuthn assertion's signature against
// the public key it recorded, with the challenge it sealed — and records the
// use with the aggregate's expected version, so each code, step and
// challenge counts once on any replica. Only then does it extend the
// person's proof (proofs.go). StartBrowserSession and
// ReauthenticateBrowserSession accept a proof only once its methods satisfy
// what the policy asks of the user (factors.NeedOf): the web service carries
// proofs from one page to the next but can make none.

// factorsAggregate is a user's second factors.
var factorsAggregate = eventsv1.AccountsFactors.Type

// loadFactors loads a user's factors, their personal fields opened.
func (s *Service) loadFactors(ctx context.Context, userID string) (factors.State, error) {
	if !ids.Valid(userID) {
		return factors.State{}, errs.InvalidField("user_id", "user_id must be a user id such as 01HZX3…")
	}
	history, _, err := s.load(ctx, eventlog.Ref{Type: factorsAggregate, ID: userID})
	if err != nil {
		return factors.State{}, errs.Wrap(errs.KindUnavailable, "The account's sign-in methods cannot be read right now; try again.", err)
	}
	st := factors.Fold(history)
	st.UserID = userID
	return st, nil
}

// changeFactors decides one event on a user's factors and appends it with
// the version it was decided on (deciding again after a lost race). It
// returns the state after the change; waitPasskeys waits until the passkey
// read model shows it.
func (s *Service) changeFactors(ctx context.Context, userID, actor string, decide func(factors.State) ([]proto.Message, error)) (factors.State, error) {
	if !ids.Valid(userID) {
		return factors.State{}, errs.InvalidField("user_id", "user_id must be a user id such as 01HZX3…")
	}
	ref := eventlog.Ref{Type: factorsAggregate, ID: userID}
	var after factors.State
	appended, err := s.execute(ctx, ref, func(history []eventlog.Record, version uint64) ([]eventlog.Write, error) {
		st := factors.Fold(history)
		st.UserID = userID
		decided, err := decide(st)
		if err != nil || len(decided) == 0 {
			after = st
			return nil, err
		}
		if len(decided) > 1 {
			return nil, errs.Internalf("accounts: a factors command decided %d events", len(decided))
		}
		after = st
		return []eventlog.Write{{
			Expect: eventlog.ExpectVersion(version),
			Event:  eventlog.Event{Aggregate: ref, Actor: actor, Payload: decided[0]},
		}}, nil
	})
	if err != nil {
		if _, ok := errors.AsType[*errs.Error](err); ok {
			return factors.State{}, err
		}
		return factors.State{}, errs.Wrap(errs.KindUnavailable, "The change could not be saved right now; try again.", err)
	}
	if appended.Last() > 0 {
		if err := s.projections.WaitFor(ctx, passkeysProjection, appended.Last()); err != nil {
			return factors.State{}, errs.Wrap(errs.KindUnavailable, "The change was saved but is not visible yet; try again shortly.", err)
		}
		return s.loadFactors(ctx, userID)
	}
	return after, nil
}

// needOf says what a password (or other first-factor) sign-in of the user
// needs now.
func (s *Service) needOf(ctx context.Context, u *userRow) (factors.Need, factors.State, error) {
	st, err := s.loadFactors(ctx, u.id)
	if err != nil {
		return factors.NeedNothing, st, err
	}
	return factors.NeedOf(s.cfg.SecondFactor, u.admin, st), st, nil
}

// requireComplete refuses a proof whose methods do not satisfy what the
// user's sign-in needs: FAILED_PRECONDITION with the fact "second_factor"
// ("needed" or "enrol").
func (s *Service) requireComplete(ctx context.Context, userID string, p authProof) error {
	u, err := s.userByID(ctx, userID)
	if err != nil {
		return err
	}
	need, _, err := s.needOf(ctx, u)
	if err != nil {
		return err
	}
	if need == factors.NeedNothing || factors.Satisfies(p.methods) {
		return nil
	}
	return secondFactorNeeded(need)
}

// secondFactorNeeded is the refusal of a proof that needs a second factor.
func secondFactorNeeded(need factors.Need) error {
	e := errs.FailedPrecondition("A second factor is needed to sign in.")
	e.Facts = map[string]string{errs.FactSecondFactor: "needed"}
	if need == factors.NeedEnrol {
		e.Public = "A second factor must be set up to sign in."
		e.Facts[errs.FactSecondFactor] = "enrol"
	}
	return e
}

// needProto is the wire form of a need.
func needProto(n factors.Need) accountsv1.SecondFactorNeed {
	switch n {
	case factors.NeedVerify:
		return accountsv1.SecondFactorNeed_SECOND_FACTOR_NEED_VERIFY
	case factors.NeedEnrol:
		return accountsv1.SecondFactorNeed_SECOND_FACTOR_NEED_ENROL
	}
	return accountsv1.SecondFactorNeed_SECOND_FACTOR_NEED_UNSPECIFIED
}

// factorsView is the public view of a user's factors.
func (s *Service) factorsView(u *userRow, st factors.State) *accountsv1.SecondFactors {
	v := &accountsv1.SecondFactors{
		TotpEnabled: st.TOTPSecret != "", RecoveryCodesLeft: int32(st.RecoveryCodesLeft()),
		RequiredByUser: st.RequiredByUser, RequiredByAdmin: st.RequiredByAdmin,
		RequiredByPolicy: s.cfg.SecondFactor.RequiredByPolicy(u.admin),
		Need:             needProto(factors.NeedOf(s.cfg.SecondFactor, u.admin, st)),
	}
	if !st.TOTPEnabledAt.IsZero() {
		v.TotpEnabledAt = timestamppb.New(st.TOTPEnabledAt)
	}
	for _, p := range st.Passkeys {
		pk := &accountsv1.Passkey{PasskeyId: p.ID, Name: p.Name, CreatedAt: timestamppb.New(p.CreatedAt), BackedUp: p.BackupState, SignCount: p.SignCount}
		if !p.LastUsedAt.IsZero() {
			pk.LastUsedAt = timestamppb.New(p.LastUsedAt)
		}
		v.Passkeys = append(v.Passkeys, pk)
	}
	return v
}

// factorSubject finds whose factors a call concerns, and with what proof:
// the signed-in person (no proof; a step-up may be required), the user a
// first-factor proof names (during a sign-in), or, for administrators, the
// user named.
type factorSubject struct {
	user  *userRow
	proof *authProof // set during a sign-in
}

func (s *Service) subjectOf(ctx context.Context, userID, proof string) (factorSubject, error) {
	id, _ := caller.From(ctx)
	switch {
	case id.User != nil:
		uid, err := caller.UserFor(ctx, userID)
		if err != nil {
			return factorSubject{}, err
		}
		u, err := s.userByID(ctx, uid)
		return factorSubject{user: u}, err
	case proof != "":
		uid := userID
		if uid == "" {
			uid = proofUser(proof)
		}
		p, err := s.checkFirstFactor(proof, uid)
		if err != nil {
			return factorSubject{}, err
		}
		u, err := s.userByID(ctx, uid)
		if err != nil {
			return factorSubject{}, err
		}
		if u.locked || u.deactivated {
			return factorSubject{}, errs.FailedPrecondition("This account cannot be signed in to.")
		}
		return factorSubject{user: u, proof: &p}, nil
	case id.Is(caller.Admin):
		u, err := s.userByID(ctx, userID)
		return factorSubject{user: u}, err
	}
	return factorSubject{}, errs.PermissionDenied("a proof of the first factor, or a signed-in person, is required")
}

// stepUp requires a recent authentication of the signed-in person
// (account.step_up_window) for a sensitive action.
func (s *Service) stepUp(ctx context.Context) error {
	return caller.RequireRecentAuth(ctx, s.cfg.StepUpWindow, s.clock())
}

// enrollingAs finishes an enrolment begun for owner (a ceremony or ticket
// names whose it is): the subject the proof or session gives must be that
// person, and may enrol (enrolling).
func (s *Service) enrollingAs(ctx context.Context, owner, proof, whose string) (factorSubject, error) {
	sub, err := s.subjectOf(ctx, owner, proof)
	if err != nil {
		return factorSubject{}, err
	}
	if sub.user.id != owner {
		return factorSubject{}, errs.PermissionDenied(whose)
	}
	if err := s.enrolling(ctx, sub); err != nil {
		return factorSubject{}, err
	}
	return sub, nil
}

// enrolling checks that a sign-in may set up a factor before it has a
// session: only when the policy requires one and the user has none (a user
// with factors adds more from the account page, after a step-up).
func (s *Service) enrolling(ctx context.Context, sub factorSubject) error {
	if sub.proof == nil {
		return s.stepUp(ctx)
	}
	need, _, err := s.needOf(ctx, sub.user)
	if err != nil {
		return err
	}
	if need != factors.NeedEnrol {
		return errs.PermissionDenied("Sign in first to set up another sign-in method.")
	}
	return nil
}

// notice is where the email about a factor change goes.
func (s *Service) notice(u *userRow, locale string) factors.Notice {
	if len(locale) > 35 {
		locale = ""
	}
	return factors.Notice{Email: u.email, Locale: locale}
}

// Recovery codes: ten codes of ten base32 characters (50 bits each),
// shown as xxxxx-xxxxx, kept as HMAC-SHA-256 under a key derived from the
// claim key, so the stream holds nothing a guess can be checked against.

const recoveryAlphabet = "abcdefghjkmnpqrstuvwxyz23456789" // no 0/o, 1/l/i

// newRecoveryCodes draws a set of codes and their hashes for a user.
func (s *Service) newRecoveryCodes(userID string) (codes, hashes []string) {
	for range factors.RecoveryCodeCount {
		b := make([]byte, 10)
		for i := range b {
			b[i] = recoveryAlphabet[randIndex(len(recoveryAlphabet))]
		}
		code := string(b[:5]) + "-" + string(b[5:])
		codes = append(codes, code)
		hashes = append(hashes, s.recoveryHash(userID, code))
	}
	return codes, hashes
}

// randIndex is a uniform random index below n.
func randIndex(n int) int {
	var b [1]byte
	limit := 256 - 256%n
	for {
		rand.Read(b[:])
		if int(b[0]) < limit {
			return int(b[0]) % n
		}
	}
}

// normalizeRecoveryCode reads what a person typed: case, spaces and dashes aside.
func normalizeRecoveryCode(typed string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(typed) {
		if strings.ContainsRune(recoveryAlphabet, r) {
			b.WriteRune(r)
		}
	}
	c := b.String()
	if len(c) != 10 {
		return ""
	}
	return c[:5] + "-" + c[5:]
}

func (s *Service) recoveryHash(userID, code string) string {
	m := hmac.New(sha256.New, s.recoveryKey)
	m.Write([]byte(userID + "\x00" + code))
	return hex.EncodeToString(m.Sum(nil))
}

// matchRecoveryCode finds an unused code's index by its hash, comparing every
// hash in constant time; -1 when none matches.
func (s *Service) matchRecoveryCode(st factors.State, code string) int {
	if code == "" {
		return -1
	}
	want := []byte(s.recoveryHash(st.UserID, code))
	found := -1
	for i, c := range st.RecoveryCodes {
		if hmac.Equal([]byte(c.Hash), want) && !c.Used {
			found = i
		}
	}
	return found
}

// deriveFactorKeys derives the keys of recovery codes (from the claim key,
// which never changes) and of sealed ceremonies and enrolment tickets (from
// the proof key: they live minutes).
func (s *Service) deriveFactorKeys() error {
	var err error
	if s.recoveryKey, err = hkdf.Key(sha256.New, s.claimKey, nil, "gatehouse accounts recovery codes v1", 32); err != nil {
		return fmt.Errorf("accounts: derive the recovery code key: %w", err)
	}
	if s.ceremonyKey, err = hkdf.Key(sha256.New, s.proofKey, nil, "gatehouse accounts factor ceremonies v1", chacha20poly1305.KeySize); err != nil {
		return fmt.Errorf("accounts: derive the ceremony key: %w", err)
	}
	return nil
}

// sealState seals v (JSON) for purpose under the ceremony key; it opens
// only for the same purpose (openState), until expires.
func (s *Service) sealState(purpose string, v any) (string, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return "", errs.Internalf("seal %s: %v", purpose, err)
	}
	aead, err := chacha20poly1305.NewX(s.ceremonyKey)
	if err != nil {
		return "", errs.Internalf("seal %s: %v", purpose, err)
	}
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(aead.Seal(nonce, nonce, plain, []byte(purpose))), nil
}

// openState opens what sealState sealed for purpose into v.
func (s *Service) openState(purpose, sealed string, v any) bool {
	raw, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil || len(sealed) > 16384 {
		return false
	}
	aead, err := chacha20poly1305.NewX(s.ceremonyKey)
	if err != nil || len(raw) < aead.NonceSize() {
		return false
	}
	plain, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], []byte(purpose))
	return err == nil && json.Unmarshal(plain, v) == nil
}

// takeSecondFactor takes a token from the account's budget of second-factor
// attempts before a code is checked (rate_limits.second_factor); refund
// gives it back when the code was right.
func (s *Service) takeSecondFactor(ctx context.Context, userID string) (ratelimit.Decision, error) {
	d, err := s.limiter.Take(ctx, ratelimit.Key{Rule: s.cfg.SecondFactorLimit, Subject: userID})
	if err != nil {
		return d, errs.Wrap(errs.KindUnavailable, "Codes cannot be checked right now; try again.", err)
	}
	if !d.Allowed {
		e := errs.RateLimited("Too many wrong codes; wait before trying again.")
		e.RetryAfter = d.RetryAfter
		e.Facts = map[string]string{errs.FactRetryAfterSeconds: fmt.Sprint(int(d.RetryAfter.Seconds() + 1))}
		return d, e
	}
	return d, nil
}

// verifySecondFactor checks a TOTP or recovery code for a sign-in (proof
// set) or the signed-in person's step-up, spends it, and returns the
// extended proof.
func (s *Service) verifySecondFactor(ctx context.Context, req *accountsv1.VerifySecondFactorRequest, actor string) (*accountsv1.VerifySecondFactorResponse, error) {
	sub, err := s.subjectOf(ctx, req.GetUserId(), req.GetAuthProof())
	if err != nil {
		return nil, err
	}
	if id, _ := caller.From(ctx); id.Is(caller.Admin) {
		return nil, errs.PermissionDenied("administrators do not sign in with someone's codes")
	}
	code, recovery := strings.TrimSpace(req.GetTotpCode()), req.GetRecoveryCode()
	if (code == "") == (recovery == "") {
		return nil, errs.Invalid("Give a code from the authenticator app or a recovery code.")
	}
	u := sub.user
	budget, err := s.takeSecondFactor(ctx, u.id)
	if err != nil {
		return nil, err
	}
	now := s.clock()
	method := factors.MethodTOTP
	st, err := s.changeFactors(ctx, u.id, actor, func(st factors.State) ([]proto.Message, error) {
		if recovery != "" {
			i := s.matchRecoveryCode(st, normalizeRecoveryCode(recovery))
			return factors.UseRecoveryCode(st, i, s.notice(u, req.GetLocale()))
		}
		step, ok := factors.CheckTOTP(st.TOTPSecret, code, now)
		if !ok {
			return nil, errs.Unauthenticated("This code is wrong.")
		}
		return factors.UseTOTP(st, step)
	})
	if err != nil {
		return nil, err
	}
	s.limiter.Refund(ctx, budget)
	if recovery != "" {
		method = factors.MethodRecoveryCode
	}
	var proof string
	if sub.proof != nil {
		proof = s.extendProof(u.id, *sub.proof, method)
	} else {
		proof = s.mintAuthProof(u.id, method)
	}
	return &accountsv1.VerifySecondFactorResponse{User: u.proto(), AuthProof: proof, RecoveryCodesLeft: int32(st.RecoveryCodesLeft())}, nil
}

// generateRecoveryCodes replaces a user's recovery codes.
func (s *Service) generateRecoveryCodes(ctx context.Context, u *userRow, locale, actor string) ([]string, error) {
	codes, hashes := s.newRecoveryCodes(u.id)
	_, err := s.changeFactors(ctx, u.id, actor, func(factors.State) ([]proto.Message, error) {
		return factors.GenerateRecoveryCodes(u.id, hashes, s.notice(u, locale))
	})
	if err != nil {
		return nil, err
	}
	return codes, nil
}

// firstCodes gives a user who just set up their first factor recovery codes
// (none when they have some left).
func (s *Service) firstCodes(ctx context.Context, u *userRow, before factors.State, locale, actor string) []string {
	if before.HasSecondFactor() || before.RecoveryCodesLeft() > 0 {
		return nil
	}
	codes, err := s.generateRecoveryCodes(ctx, u, locale, actor)
	if err != nil {
		s.logger.WarnContext(ctx, "recovery codes not generated", "user_id", u.id, "err", err)
		return nil
	}
	return codes
}

// reauthenticate records a fresh authentication in the signed-in person's
// browser session.
func (s *Service) reauthenticate(ctx context.Context, proof string, requireComplete bool) (*sessionRow, error) {
	id, _ := caller.From(ctx)
	if id.User == nil {
		return nil, errs.PermissionDenied("a signed-in person is required")
	}
	p, err := s.checkAuthProof(proof, id.User.ID)
	if err != nil {
		return nil, err
	}
	if requireComplete {
		if err := s.requireComplete(ctx, id.User.ID, p); err != nil {
			return nil, err
		}
	}
	ref := eventlog.Ref{Type: browserAggregate, ID: id.User.SessionID}
	appended, err := s.append(ctx, eventlog.Write{
		Expect: eventlog.ExpectAny(), TTL: s.browserTTL(),
		Event: eventlog.Event{Aggregate: ref, Actor: caller.Actor(ctx), Payload: &eventsv1.BrowserSessionReauthenticated{
			SessionId: id.User.SessionID, UserId: id.User.ID, AuthMethods: p.methods,
		}},
	})
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "The sign-in could not be recorded right now; try again.", err)
	}
	if err := s.waitForSessions(ctx, appended.Last()); err != nil {
		return nil, err
	}
	return s.sessionByID(ctx, id.User.SessionID)
}

package accounts

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/caller"
	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/ids"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	"gatehouse.dev/services/accounts/internal/factors"
)

// Passkeys (WebAuthn, github.com/go-webauthn/webauthn). The relying party
// is Gatehouse's public URL: its host is the RP ID, its origin the only
// origin accepted. Both ceremonies run in two calls:
//
//   - Begin draws the challenge and returns the options for the browser and
//     the ceremony (go-webauthn's session data: challenge, RP ID, user,
//     allowed credentials, user verification) sealed under a key only
//     accounts holds, with its purpose, user and a five-minute expiry. The
//     web service keeps it in a cookie of the browser that asked, so the
//     answer is accepted only from that browser.
//   - Finish opens the ceremony and has go-webauthn verify the browser's
//     answer against it and the stored credential: the client data (type,
//     challenge, origin), the RP ID hash, user presence — and user
//     verification for a passwordless sign-in —, the signature with the
//     recorded public key, the counter. The use is then appended to the
//     user's factors with the version it was decided on, carrying the
//     challenge's hash: a challenge spent once is refused afterwards, on any
//     replica, and counters only move forward.
//
// Only after that does accounts mint a proof (method "passkey"), so a
// passkey sign-in, like any other, gives the web service nothing it could
// have made itself.

// errNoPasskeys refuses passkeys where the public URL's host is an IP address.
var errNoPasskeys = errs.FailedPrecondition("Passkeys need Gatehouse's public URL to name a host (a domain name), not an IP address.")

// ceremonyTTL is how long a browser has to answer.
const ceremonyTTL = factors.ChallengeTTL

// Kinds of ceremonies.
const (
	ceremonyLogin    = "login"
	ceremonyRegister = "register"
)

// ceremony is a WebAuthn ceremony under way, sealed into the opaque value
// the web service carries.
type ceremony struct {
	Kind string `json:"k"`
	// User is the user concerned: the registering one, or the one whose
	// passkey a second-factor or step-up assertion must be; empty for a
	// passwordless sign-in.
	User string `json:"u,omitempty"`
	// Handle is the user handle a registration offers (base64url).
	Handle  string               `json:"h,omitempty"`
	Session webauthn.SessionData `json:"s"`
	Expires int64                `json:"x"`
}

// newWebAuthn makes the relying party of the public URL; nil (passkeys
// unavailable) when its host is an IP address, which WebAuthn does not
// accept as a relying party.
func newWebAuthn(publicURL, name string) (*webauthn.WebAuthn, error) {
	u, err := url.Parse(publicURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("accounts: the public URL %q cannot name a WebAuthn relying party", publicURL)
	}
	if net.ParseIP(u.Hostname()) != nil {
		return nil, nil
	}
	return webauthn.New(&webauthn.Config{
		RPID: u.Hostname(), RPDisplayName: name, RPOrigins: []string{u.Scheme + "://" + u.Host},
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Enforce: true, Timeout: ceremonyTTL, TimeoutUVD: ceremonyTTL},
			Registration: webauthn.TimeoutConfig{Enforce: true, Timeout: ceremonyTTL, TimeoutUVD: ceremonyTTL},
		},
	})
}

// waUser is a user as go-webauthn sees them.
type waUser struct {
	handle      []byte
	name        string
	displayName string
	creds       []webauthn.Credential
}

func (u waUser) WebAuthnID() []byte                         { return u.handle }
func (u waUser) WebAuthnName() string                       { return u.name }
func (u waUser) WebAuthnDisplayName() string                { return u.displayName }
func (u waUser) WebAuthnCredentials() []webauthn.Credential { return u.creds }

// waUserOf is the go-webauthn user of a user row and their factors.
func waUserOf(u *userRow, st factors.State, handle []byte) waUser {
	display := u.displayName
	if display == "" {
		display = u.username
	}
	w := waUser{handle: handle, name: u.username, displayName: display}
	for _, p := range st.Passkeys {
		var transports []protocol.AuthenticatorTransport
		for _, t := range p.Transports {
			transports = append(transports, protocol.AuthenticatorTransport(t))
		}
		w.creds = append(w.creds, webauthn.Credential{
			ID: p.CredentialID, PublicKey: p.PublicKey, Transport: transports, AttestationFormat: p.AttestationFormat,
			Flags:         webauthn.CredentialFlags{UserPresent: true, UserVerified: p.UserVerified, BackupEligible: p.BackupEligible, BackupState: p.BackupState},
			Authenticator: webauthn.Authenticator{AAGUID: p.AAGUID, SignCount: p.SignCount},
		})
	}
	return w
}

// handleOf is a user's handle: the one recorded, or a new random one.
func handleOf(st factors.State) []byte {
	if h, err := base64.RawURLEncoding.DecodeString(st.UserHandle); err == nil && len(h) > 0 {
		return h
	}
	h := make([]byte, 32)
	rand.Read(h)
	return h
}

func challengeHash(c string) string {
	sum := sha256.Sum256([]byte(c))
	return hex.EncodeToString(sum[:])
}

func (s *Service) sealCeremony(c ceremony) (string, error) {
	c.Expires = s.clock().Add(ceremonyTTL).Unix()
	return s.sealState("webauthn ceremony", c)
}

func (s *Service) openCeremony(sealed, kind string) (ceremony, error) {
	var c ceremony
	if !s.openState("webauthn ceremony", sealed, &c) || c.Kind != kind || s.clock().Unix() > c.Expires {
		e := errs.FailedPrecondition("The passkey prompt expired; try again.")
		e.Field = "ceremony"
		return ceremony{}, e
	}
	return c, nil
}

func optionsJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", errs.Internalf("webauthn options: %v", err)
	}
	return string(b), nil
}

// beginPasskeySignIn starts an assertion: passwordless (nobody named) or
// for a known user (a proof, or the signed-in person).
func (s *Service) beginPasskeySignIn(ctx context.Context, req *accountsv1.BeginPasskeySignInRequest) (*accountsv1.BeginPasskeySignInResponse, error) {
	if s.webauthn == nil {
		return nil, errNoPasskeys
	}
	id, _ := caller.From(ctx)
	if req.GetAuthProof() == "" && req.GetUserId() == "" && id.User == nil {
		opts, session, err := s.webauthn.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
		if err != nil {
			return nil, errs.Wrap(errs.KindInternal, "", err)
		}
		return s.ceremonyResponse(ceremony{Kind: ceremonyLogin, Session: *session}, opts.Response)
	}
	sub, err := s.subjectOf(ctx, req.GetUserId(), req.GetAuthProof())
	if err != nil {
		return nil, err
	}
	st, err := s.loadFactors(ctx, sub.user.id)
	if err != nil {
		return nil, err
	}
	if len(st.Passkeys) == 0 {
		return nil, errs.FailedPrecondition("This account has no passkey.")
	}
	opts, session, err := s.webauthn.BeginLogin(waUserOf(sub.user, st, handleOf(st)), webauthn.WithUserVerification(protocol.VerificationPreferred))
	if err != nil {
		return nil, errs.Wrap(errs.KindInternal, "", err)
	}
	return s.ceremonyResponse(ceremony{Kind: ceremonyLogin, User: sub.user.id, Session: *session}, opts.Response)
}

func (s *Service) ceremonyResponse(c ceremony, options any) (*accountsv1.BeginPasskeySignInResponse, error) {
	sealed, err := s.sealCeremony(c)
	if err != nil {
		return nil, err
	}
	js, err := optionsJSON(options)
	if err != nil {
		return nil, err
	}
	return &accountsv1.BeginPasskeySignInResponse{OptionsJson: js, Ceremony: sealed}, nil
}

// passkeyRefused is the one answer to an assertion that does not verify.
func passkeyRefused(cause error) error {
	return errs.Wrap(errs.KindUnauthenticated, "This passkey could not be verified.", cause)
}

// finishPasskeySignIn verifies an assertion and records its use.
func (s *Service) finishPasskeySignIn(ctx context.Context, req *accountsv1.FinishPasskeySignInRequest, actor string) (*accountsv1.FinishPasskeySignInResponse, error) {
	if s.webauthn == nil {
		return nil, errNoPasskeys
	}
	c, err := s.openCeremony(req.GetCeremony(), ceremonyLogin)
	if err != nil {
		return nil, err
	}
	if len(req.GetCredentialJson()) > 64<<10 {
		return nil, errs.InvalidField("credential_json", "the answer is too large")
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes([]byte(req.GetCredentialJson()))
	if err != nil {
		return nil, passkeyRefused(err)
	}
	// Whose passkey: the ceremony's user, or, passwordless, the owner of the
	// credential (the read model), whose handle must be the one returned.
	var (
		u   *userRow
		sub factorSubject
	)
	if c.User != "" {
		if sub, err = s.subjectOf(ctx, c.User, req.GetAuthProof()); err != nil {
			return nil, err
		}
		if sub.user.id != c.User {
			return nil, errs.PermissionDenied("this passkey prompt is another person's")
		}
		u = sub.user
	} else {
		owner, err := s.passkeyOwner(ctx, parsed.RawID)
		if err != nil {
			return nil, err
		}
		if u, err = s.userByID(ctx, owner); err != nil {
			return nil, passkeyRefused(err)
		}
	}
	if u.locked || u.deactivated {
		return nil, errs.FailedPrecondition("This account cannot be signed in to.")
	}
	st, err := s.loadFactors(ctx, u.id)
	if err != nil {
		return nil, err
	}
	wu := waUserOf(u, st, handleOf(st))
	var cred *webauthn.Credential
	if c.User != "" {
		cred, err = s.webauthn.ValidateLogin(wu, c.Session, parsed)
	} else {
		cred, err = s.webauthn.ValidateDiscoverableLogin(func(rawID, userHandle []byte) (webauthn.User, error) {
			if st.UserHandle == "" || base64.RawURLEncoding.EncodeToString(userHandle) != st.UserHandle {
				return nil, errors.New("the user handle is not the credential owner's")
			}
			return wu, nil
		}, c.Session, parsed)
	}
	if err != nil {
		return nil, passkeyRefused(err)
	}
	pk, ok := st.PasskeyByCredential(cred.ID)
	if !ok {
		return nil, passkeyRefused(errors.New("credential not registered"))
	}
	uv := parsed.Response.AuthenticatorData.Flags.HasUserVerified()
	purpose := "second_factor"
	switch {
	case c.User == "":
		purpose = "sign_in"
		if !uv { // go-webauthn checked it already (VerificationRequired); say it twice
			return nil, passkeyRefused(errors.New("no user verification"))
		}
	case sub.proof == nil:
		purpose = "step_up"
	}
	if _, err := s.changeFactors(ctx, u.id, actor, func(st factors.State) ([]proto.Message, error) {
		return factors.UsePasskey(st, factors.Assertion{
			PasskeyID: pk.ID, SignCount: cred.Authenticator.SignCount, BackupState: parsed.Response.AuthenticatorData.Flags.HasBackupState(),
			UV: uv, ChallengeHash: challengeHash(c.Session.Challenge), Purpose: purpose,
		}, s.clock())
	}); err != nil {
		return nil, err
	}
	var proof string
	if sub.proof != nil {
		proof = s.extendProof(u.id, *sub.proof, factors.MethodPasskey)
	} else {
		proof = s.mintAuthProof(u.id, factors.MethodPasskey)
	}
	return &accountsv1.FinishPasskeySignInResponse{User: u.proto(), AuthProof: proof}, nil
}

// beginPasskeyRegistration starts registering a passkey.
func (s *Service) beginPasskeyRegistration(ctx context.Context, req *accountsv1.BeginPasskeyRegistrationRequest) (*accountsv1.BeginPasskeyRegistrationResponse, error) {
	if s.webauthn == nil {
		return nil, errNoPasskeys
	}
	sub, err := s.subjectOf(ctx, req.GetUserId(), req.GetAuthProof())
	if err != nil {
		return nil, err
	}
	if err := s.enrolling(ctx, sub); err != nil {
		return nil, err
	}
	st, err := s.loadFactors(ctx, sub.user.id)
	if err != nil {
		return nil, err
	}
	if len(st.Passkeys) >= factors.MaxPasskeys {
		return nil, errs.FailedPrecondition("This account has as many passkeys as it may have; remove one first.")
	}
	handle := handleOf(st)
	wu := waUserOf(sub.user, st, handle)
	var exclude []protocol.CredentialDescriptor
	for _, c := range wu.creds {
		exclude = append(exclude, c.Descriptor())
	}
	opts, session, err := s.webauthn.BeginRegistration(wu,
		webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirementRequired),
		webauthn.WithAuthenticatorSelection(protocol.AuthenticatorSelection{
			ResidentKey: protocol.ResidentKeyRequirementRequired, RequireResidentKey: protocol.ResidentKeyRequired(),
			UserVerification: protocol.VerificationRequired,
		}),
		webauthn.WithConveyancePreference(protocol.PreferNoAttestation),
		webauthn.WithExclusions(exclude),
	)
	if err != nil {
		return nil, errs.Wrap(errs.KindInternal, "", err)
	}
	sealed, err := s.sealCeremony(ceremony{Kind: ceremonyRegister, User: sub.user.id, Handle: base64.RawURLEncoding.EncodeToString(handle), Session: *session})
	if err != nil {
		return nil, err
	}
	js, err := optionsJSON(opts.Response)
	if err != nil {
		return nil, err
	}
	return &accountsv1.BeginPasskeyRegistrationResponse{OptionsJson: js, Ceremony: sealed}, nil
}

// finishPasskeyRegistration verifies an attestation and adds the passkey.
func (s *Service) finishPasskeyRegistration(ctx context.Context, req *accountsv1.FinishPasskeyRegistrationRequest, actor string) (*accountsv1.FinishPasskeyRegistrationResponse, error) {
	if s.webauthn == nil {
		return nil, errNoPasskeys
	}
	c, err := s.openCeremony(req.GetCeremony(), ceremonyRegister)
	if err != nil {
		return nil, err
	}
	sub, err := s.enrollingAs(ctx, c.User, req.GetAuthProof(), "this passkey registration is another person's")
	if err != nil {
		return nil, err
	}
	name, err := factors.CleanName(req.GetName(), "Passkey")
	if err != nil {
		return nil, err
	}
	if len(req.GetCredentialJson()) > 64<<10 {
		return nil, errs.InvalidField("credential_json", "the answer is too large")
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes([]byte(req.GetCredentialJson()))
	if err != nil {
		return nil, errs.Wrap(errs.KindInvalid, "This passkey could not be registered.", err)
	}
	before, err := s.loadFactors(ctx, sub.user.id)
	if err != nil {
		return nil, err
	}
	handle, _ := base64.RawURLEncoding.DecodeString(c.Handle)
	cred, err := s.webauthn.CreateCredential(waUserOf(sub.user, before, handle), c.Session, parsed)
	if err != nil {
		return nil, errs.Wrap(errs.KindInvalid, "This passkey could not be registered.", err)
	}
	if owner, err := s.passkeyOwner(ctx, cred.ID); err == nil && owner != "" {
		return nil, errs.AlreadyExists("This passkey is already registered.")
	}
	var transports []string
	for _, t := range cred.Transport {
		transports = append(transports, string(t))
	}
	passkeyID := ids.New()
	after, err := s.changeFactors(ctx, sub.user.id, actor, func(st factors.State) ([]proto.Message, error) {
		return factors.AddPasskey(st, factors.NewPasskey{
			UserID: sub.user.id, PasskeyID: passkeyID, CredentialID: cred.ID, PublicKey: cred.PublicKey, AAGUID: cred.Authenticator.AAGUID,
			SignCount: cred.Authenticator.SignCount, BackupEligible: cred.Flags.BackupEligible, BackupState: cred.Flags.BackupState,
			UV: cred.Flags.UserVerified, Transports: transports, AttestationFormat: cred.AttestationFormat, Name: name,
			UserHandle: c.Handle, ChallengeHash: challengeHash(c.Session.Challenge), Notice: s.notice(sub.user, req.GetLocale()),
		}, s.clock())
	})
	if err != nil {
		return nil, err
	}
	resp := &accountsv1.FinishPasskeyRegistrationResponse{RecoveryCodes: s.firstCodes(ctx, sub.user, before, req.GetLocale(), actor)}
	if p, ok := after.Passkey(passkeyID); ok {
		resp.Passkey = &accountsv1.Passkey{PasskeyId: p.ID, Name: p.Name, CreatedAt: timestamppb.New(p.CreatedAt), BackedUp: p.BackupState, SignCount: p.SignCount}
	}
	if sub.proof != nil {
		// Registering needed user verification: the new passkey is the second factor.
		resp.AuthProof = s.extendProof(sub.user.id, *sub.proof, factors.MethodPasskey)
	}
	return resp, nil
}

// passkeyOwner finds the user a credential is registered to (the passkeys
// read model); "" with no error when nobody's.
func (s *Service) passkeyOwner(ctx context.Context, credentialID []byte) (string, error) {
	var owner string
	err := s.pool.QueryRow(ctx, `SELECT user_id FROM passkey_credentials WHERE credential_id = $1 AND NOT removed`, credentialID).Scan(&owner)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", passkeyRefused(errors.New("unknown credential"))
	}
	if err != nil {
		return "", errs.Wrap(errs.KindUnavailable, "Passkeys cannot be checked right now; try again.", err)
	}
	return owner, nil
}

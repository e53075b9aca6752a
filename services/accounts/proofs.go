package accounts

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/sealed"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/accounts/internal/factors"
)

// Authentication proofs. A browser session is a credential: whoever holds its
// cookie acts as the person. So the accounts service starts one only against
// its own word that the person just proved who they are — a proof it made
// when a password was verified, a registration completed or a recovery link
// used. The proof names the user, how they proved it and when, and carries a
// MAC under a key only the accounts service holds (kept in its stream,
// generated on first start), so the web service, or anyone who can reach the
// gRPC API, cannot start a session for somebody else.

// Ways a person proves who they are (package factors names them all). A
// proof names every method used so far, joined by "+": a password sign-in
// that went on with a TOTP code is "password+totp". A second factor extends
// the proof of the first (extendProof); StartBrowserSession accepts a proof
// only once its methods satisfy the user's second-factor policy.
const (
	methodPassword     = factors.MethodPassword
	methodRegistration = factors.MethodRegistration
	methodRecovery     = factors.MethodRecovery
	// methodUpstream: the accounts service itself redeemed an upstream
	// identity provider's code and verified its answer (upstream.go). Such a
	// proof also names the provider and its session (sid), which the browser
	// session records for back-channel logout.
	methodUpstream = factors.MethodUpstream
)

// firstFactorTTL is how long the proof of a first factor may be extended by
// a second one: the time to find a phone or a security key.
const firstFactorTTL = 10 * time.Minute

// proofTTL is how long a proof may be used to start a session.
const proofTTL = 2 * time.Minute

// proofKeyRef is the aggregate holding the proof key.
var proofKeyRef = eventlog.Ref{Type: eventsv1.AccountsKeys.Type, ID: "current"}

// loadProofKey reads the proof key from the stream, sealed with the
// keyring, generating it on first start (see sealed.KeysAggregate). A key an
// earlier version kept in clear is replaced: proofs live two minutes, so a
// new key costs nothing.
func (s *Service) loadProofKey(ctx context.Context) error {
	key, err := sealed.RandomKey[*eventsv1.AuthProofKeyGenerated]{
		Log: s.log, Ref: proofKeyRef, Keyring: s.keyring, Logger: s.logger, Size: 32, ReplaceClear: true,
		Event: func(k *eventsv1.SealedSecret, change eventsv1.SecretChange) *eventsv1.AuthProofKeyGenerated {
			return &eventsv1.AuthProofKeyGenerated{SealedKey: k, Change: change}
		},
	}.Load(ctx)
	if err != nil {
		return fmt.Errorf("accounts: proof key: %w", err)
	}
	s.proofKey = key
	return nil
}

// mintAuthProof states that userID proved who they are by method, now.
func (s *Service) mintAuthProof(userID, method string) string {
	return s.mintProof(userID, method, "")
}

// mintUpstreamProof states that userID signed in with an upstream provider,
// in the provider's session sid (may be empty), now.
func (s *Service) mintUpstreamProof(userID, provider, sid string) string {
	extra := base64.RawURLEncoding.EncodeToString([]byte(provider + "\x00" + sid))
	return s.mintProof(userID, methodUpstream, extra)
}

// mintProof makes "<user>.<methods>.<unix time>[.<extra>].<MAC>": the extra
// part (base64url) carries what a method records with the session.
func (s *Service) mintProof(userID, method, extra string) string {
	body := userID + "." + method + "." + strconv.FormatInt(s.clock().Unix(), 10)
	if extra != "" {
		body += "." + extra
	}
	return body + "." + base64.RawURLEncoding.EncodeToString(s.proofMAC(body))
}

// extendProof states that the person of proof p (for userID) also proved
// who they are by method, now: the methods so far and this one, with the
// upstream session p names, if any.
func (s *Service) extendProof(userID string, p authProof, method string) string {
	methods := append(slices.Clone(p.methods), method)
	extra := ""
	if p.upstreamProvider != "" || p.upstreamSID != "" {
		extra = base64.RawURLEncoding.EncodeToString([]byte(p.upstreamProvider + "\x00" + p.upstreamSID))
	}
	return s.mintProof(userID, strings.Join(methods, "+"), extra)
}

// authProof is what a checked proof says.
type authProof struct {
	// method is the first method; methods all of them, in order.
	method  string
	methods []string
	at      time.Time
	// upstreamProvider and upstreamSID: the upstream session of an upstream proof.
	upstreamProvider, upstreamSID string
}

func (s *Service) proofMAC(body string) []byte {
	m := hmac.New(sha256.New, s.proofKey)
	m.Write([]byte("gatehouse auth proof v1\x00" + body))
	return m.Sum(nil)
}

// has reports whether the proof names method.
func (p authProof) has(method string) bool { return slices.Contains(p.methods, method) }

// checkAuthProof returns how and when userID proved who they are, if proof is
// one of ours for that user and still fresh (proofTTL).
func (s *Service) checkAuthProof(proof, userID string) (authProof, error) {
	return s.checkProofWithin(proof, userID, proofTTL)
}

// checkFirstFactor is checkAuthProof for a proof a second factor extends:
// it may be firstFactorTTL old.
func (s *Service) checkFirstFactor(proof, userID string) (authProof, error) {
	return s.checkProofWithin(proof, userID, firstFactorTTL)
}

// proofUser returns the user a well-formed proof names, without checking it.
func proofUser(proof string) string {
	u, _, _ := strings.Cut(proof, ".")
	return u
}

func (s *Service) checkProofWithin(proof, userID string, ttl time.Duration) (authProof, error) {
	refuse := errs.PermissionDenied("a browser session starts only after the person proves who they are")
	parts := strings.Split(proof, ".")
	if len(parts) != 4 && len(parts) != 5 {
		return authProof{}, refuse
	}
	last := len(parts) - 1
	mac, err := base64.RawURLEncoding.DecodeString(parts[last])
	if err != nil || !hmac.Equal(mac, s.proofMAC(strings.Join(parts[:last], "."))) {
		return authProof{}, refuse
	}
	if parts[0] != userID {
		return authProof{}, refuse
	}
	unix, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		return authProof{}, refuse
	}
	methods := strings.Split(parts[1], "+")
	p := authProof{method: methods[0], methods: methods, at: time.Unix(unix, 0)}
	if age := s.clock().Sub(p.at); age > ttl || age < -time.Minute {
		return authProof{}, errs.PermissionDenied("the sign-in took too long; sign in again")
	}
	if len(parts) == 5 {
		extra, err := base64.RawURLEncoding.DecodeString(parts[3])
		if err != nil || !p.has(methodUpstream) {
			return authProof{}, refuse
		}
		p.upstreamProvider, p.upstreamSID, _ = strings.Cut(string(extra), "\x00")
	}
	return p, nil
}

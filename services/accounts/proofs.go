package accounts

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/sealed"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// Authentication proofs. A browser session is a credential: whoever holds its
// cookie acts as the person. So the accounts service starts one only against
// its own word that the person just proved who they are — a proof it made
// when a password was verified, a registration completed or a recovery link
// used. The proof names the user, how they proved it and when, and carries a
// MAC under a key only the accounts service holds (kept in its stream,
// generated on first start), so the web service, or anyone who can reach the
// gRPC API, cannot start a session for somebody else.

// Ways a person proves who they are.
const (
	methodPassword     = "password"
	methodRegistration = "registration"
	methodRecovery     = "recovery"
	// methodUpstream: the accounts service itself redeemed an upstream
	// identity provider's code and verified its answer (upstream.go). Such a
	// proof also names the provider and its session (sid), which the browser
	// session records for back-channel logout.
	methodUpstream = "upstream"
)

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

// mintProof makes "<user>.<method>.<unix time>[.<extra>].<MAC>": the extra
// part (base64url) carries what a method records with the session.
func (s *Service) mintProof(userID, method, extra string) string {
	body := userID + "." + method + "." + strconv.FormatInt(s.clock().Unix(), 10)
	if extra != "" {
		body += "." + extra
	}
	return body + "." + base64.RawURLEncoding.EncodeToString(s.proofMAC(body))
}

// authProof is what a checked proof says.
type authProof struct {
	method string
	at     time.Time
	// upstreamProvider and upstreamSID: the upstream session of an upstream proof.
	upstreamProvider, upstreamSID string
}

func (s *Service) proofMAC(body string) []byte {
	m := hmac.New(sha256.New, s.proofKey)
	m.Write([]byte("gatehouse auth proof v1\x00" + body))
	return m.Sum(nil)
}

// checkAuthProof returns how and when userID proved who they are, if proof is
// one of ours for that user and still fresh.
func (s *Service) checkAuthProof(proof, userID string) (authProof, error) {
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
	p := authProof{method: parts[1], at: time.Unix(unix, 0)}
	if age := s.clock().Sub(p.at); age > proofTTL || age < -time.Minute {
		return authProof{}, errs.PermissionDenied("the sign-in took too long; sign in again")
	}
	if len(parts) == 5 {
		extra, err := base64.RawURLEncoding.DecodeString(parts[3])
		if err != nil || p.method != methodUpstream {
			return authProof{}, refuse
		}
		p.upstreamProvider, p.upstreamSID, _ = strings.Cut(string(extra), "\x00")
	}
	return p, nil
}

package token

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/go-jose/go-jose/v4"
	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/token/internal/assertion"
)

// assertionSubject reads, without verifying, which client an assertion names.
func assertionSubject(a string) (string, error) { return assertion.ClientIDFromAssertion(a) }

// logReplay records each assertion's jti in the event log with an
// expected-empty subject: on every replica, the second use finds it taken.
type logReplay struct{ log *eventlog.Log }

func (l logReplay) Seen(ctx context.Context, clientID, jti string, until time.Time) (bool, error) {
	sum := sha256.Sum256([]byte(clientID + "\x00" + jti))
	_, err := l.log.Append(ctx, eventlog.Write{Expect: eventlog.ExpectNew(), Event: eventlog.Event{
		Aggregate: eventlog.Ref{Type: eventsv1.TokenAssertion.Type, ID: hex.EncodeToString(sum[:])}, Actor: "client:" + clientID,
		Payload: &eventsv1.ClientAssertionUsed{ClientId: clientID, ExpiresAt: timestamppb.New(until)},
	}})
	if eventlog.IsConflict(err) {
		return true, nil
	}
	return false, err
}

// newAssertionVerifier accepts assertions addressed to the issuer or to the
// endpoints that authenticate clients.
func (s *Service) newAssertionVerifier() (*assertion.Verifier, error) {
	return assertion.NewVerifier(assertion.Config{
		Audiences: []string{s.endpoint("oauth2/token"), s.cfg.Issuer, s.endpoint("oauth2/introspect"), s.endpoint("oauth2/revoke")},
		Replay:    logReplay{log: s.log},
	})
}

// verifyAssertion checks a client assertion (RFC 7523): signed with the
// client's registered keys (private_key_jwt) or keyed with its secret
// (client_secret_jwt).
func (s *Service) verifyAssertion(ctx context.Context, c *client, a string) error {
	var algs []string
	if c.Meta.SigningAlg != "" {
		algs = []string{c.Meta.SigningAlg}
	}
	if c.Meta.AuthMethod == "client_secret_jwt" {
		if c.jwtSecret == "" {
			return errs.Unauthenticated("the client has no secret")
		}
		return s.assertions.Verify(ctx, a, c.ID, assertion.SharedSecret([]byte(c.jwtSecret), algs...))
	}
	var set jose.JSONWebKeySet
	if len(c.Meta.JWKS) == 0 || json.Unmarshal(c.Meta.JWKS, &set) != nil {
		return errs.Unauthenticated("the client has no usable jwks")
	}
	return s.assertions.Verify(ctx, a, c.ID, assertion.PublicKeys(set, algs...))
}

package authorize

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/clientauth"
	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	authorizev1 "gatehouse.dev/proto/gatehouse/authorize/v1"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/authorize/internal/clientmeta"
)

// client is a registered client as the read model holds it.
type client struct {
	ID         string
	Meta       clientmeta.Metadata
	SecretHash string
	// jwtSecret keys the assertions of a client_secret_jwt client, when it
	// is looked up to authenticate.
	jwtSecret []byte
}

// client reads a registered client: from the read model, or from the log
// when the read model has not caught up with a registration yet.
func (s *Service) client(ctx context.Context, id string) (*client, error) {
	if id == "" || len(id) > 256 {
		return nil, errs.NotFound("Unknown client.")
	}
	c := &client{ID: id}
	var raw []byte
	err := s.pool.QueryRow(ctx, `SELECT metadata, secret_hash FROM clients WHERE client_id = $1`, id).Scan(&raw, &c.SecretHash)
	if errors.Is(err, pgx.ErrNoRows) {
		// The read model may lag a registration that just happened (on this or
		// another replica, or from configuration at start): the log decides.
		raw, c.SecretHash, err = s.clientFromLog(ctx, id)
	}
	if errs.KindOf(err) == errs.KindNotFound {
		// Registered dynamically, and no person has approved it yet.
		var p *eventsv1.ClientRegistrationPending
		if p, err = s.pendingClient(ctx, id); err == nil {
			raw, c.SecretHash = p.GetMetadataJson(), p.GetSecretHash()
		}
	}
	if err != nil {
		if errs.KindOf(err) == errs.KindNotFound {
			return nil, err
		}
		return nil, errs.Wrap(errs.KindUnavailable, "Clients cannot be read right now.", err)
	}
	if err := json.Unmarshal(raw, &c.Meta); err != nil {
		return nil, errs.Wrap(errs.KindInternal, "", err)
	}
	return c, nil
}

// clientFromLog reads a client's latest registration from the event log.
func (s *Service) clientFromLog(ctx context.Context, id string) ([]byte, string, error) {
	ref := eventlog.Ref{Type: eventsv1.AuthorizeClient.Type, ID: id}
	if !validClientID(id) {
		return nil, "", errs.NotFound("Unknown client.")
	}
	history, _, err := s.log.Load(ctx, ref)
	if err != nil {
		return nil, "", err
	}
	for i := len(history) - 1; i >= 0; i-- {
		if ev, ok := history[i].Event.(*eventsv1.ClientRegistered); ok {
			return ev.GetMetadataJson(), ev.GetSecretHash(), nil
		}
	}
	return nil, "", errs.NotFound("Unknown client.")
}

// validClientID reports whether id can name a client (and a subject token).
func validClientID(id string) bool {
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return id != "" && len(id) <= 64
}

// Credentials are how the client authenticates (platform/clientauth). The
// secret of a client_secret_jwt client is derived again, never stored.
func (c *client) Credentials() clientauth.Credentials {
	return clientauth.Credentials{
		ID: c.ID, Method: c.Meta.TokenEndpointAuthMethod, SecretHash: c.SecretHash,
		Secret: c.jwtSecret, JWKS: c.Meta.JWKS, SigningAlg: c.Meta.TokenEndpointAuthSigningAlg,
	}
}

// authenticatingClient is the lookup of client authentication: a client with
// the secret its client_secret_jwt assertions are keyed with.
func (s *Service) authenticatingClient(ctx context.Context, id string) (*client, error) {
	c, err := s.client(ctx, id)
	if err == nil && c.Meta.TokenEndpointAuthMethod == clientmeta.AuthClientSecretJWT {
		c.jwtSecret = []byte(s.clientSecret(c.ID))
	}
	return c, err
}

// newClientAuth prepares the authentication of the clients of the device
// authorization endpoint, with the same rules and the same record of used
// assertions as the token service's endpoints.
func (s *Service) newClientAuth() (*clientauth.Authenticator[*client], error) {
	return clientauth.New(clientauth.Config[*client]{
		Lookup: s.authenticatingClient, Replay: assertionClaims{s}, Audiences: clientauth.Audiences(s.cfg.Issuer),
	})
}

// assertionClaims records each client assertion's jti once in the event log,
// on a subject named by its hash with an expected-empty append: the second
// use, on any replica, at any endpoint of any service (the token service
// claims through ClaimClientAssertion), finds it taken. The claim expires
// (a message TTL) once the assertion could no longer be accepted anyway:
// kept for ever, every token request of a client authenticating with
// assertions would leave a subject in AUTHORIZE.
type assertionClaims struct{ s *Service }

// Seen claims (clientID, jti) until until and reports whether it was already
// claimed.
func (a assertionClaims) Seen(ctx context.Context, clientID, jti string, until time.Time) (bool, error) {
	sum := sha256.Sum256([]byte(clientID + "\x00" + jti))
	ttl := max(until.Sub(a.s.now()), 0) + time.Second // JetStream counts whole seconds
	_, err := a.s.log.Append(ctx, eventlog.Write{Expect: eventlog.ExpectNew(), TTL: ttl, Event: eventlog.Event{
		Aggregate: eventlog.Ref{Type: eventsv1.AuthorizeAssertion.Type, ID: hex.EncodeToString(sum[:])}, Actor: "client:" + clientID,
		Payload: &eventsv1.ClientAssertionClaimed{ClientId: clientID, ExpiresAt: timestamppb.New(until)},
	}})
	if eventlog.IsConflict(err) {
		return true, nil
	}
	return false, err
}

// ClaimClientAssertion claims a client assertion's jti for the token service.
func (g *grpcServer) ClaimClientAssertion(ctx context.Context, req *authorizev1.ClaimClientAssertionRequest) (*authorizev1.ClaimClientAssertionResponse, error) {
	switch {
	case !validClientID(req.GetClientId()):
		return nil, errs.InvalidField("client_id", "client_id is not a client id")
	case req.GetJti() == "" || len(req.GetJti()) > clientauth.MaxJTILen:
		return nil, errs.InvalidField("jti", "jti must be 1 to 256 bytes")
	case !req.GetExpiresAt().IsValid():
		return nil, errs.InvalidField("expires_at", "expires_at is required")
	}
	seen, err := assertionClaims{g.svc}.Seen(ctx, req.GetClientId(), req.GetJti(), req.GetExpiresAt().AsTime())
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "The assertion cannot be recorded right now.", err)
	}
	return &authorizev1.ClaimClientAssertionResponse{AlreadyUsed: seen}, nil
}

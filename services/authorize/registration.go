package authorize

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"

	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/httpx"
	"gatehouse.dev/platform/ids"
	"gatehouse.dev/platform/oautherr"
	"gatehouse.dev/platform/sealed"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/authorize/internal/clientmeta"
)

// maxRegistrationBody bounds a registration request: what an anonymous
// caller may make the server store until the registration expires.
const maxRegistrationBody = clientmeta.MaxDocumentBytes

// handleRegister is the dynamic client registration endpoint (RFC 7591, MSC2966).
func (s *Service) handleRegister(w http.ResponseWriter, r *http.Request) (any, error) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	if r.Method != http.MethodPost {
		return nil, httpx.MethodNotAllowed(w, http.MethodPost)
	}
	if err := s.admit(r, s.cfg.Limits.ClientRegistration, tooMany("client registrations")); err != nil {
		return nil, err
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, oautherr.New(oautherr.InvalidClientMetadata, "the body must be JSON (Content-Type: application/json)")
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRegistrationBody+1))
	if err != nil || len(body) > maxRegistrationBody {
		return nil, oautherr.New(oautherr.InvalidClientMetadata, fmt.Sprintf("the body is unreadable or larger than %d KiB", maxRegistrationBody>>10))
	}
	meta, err := clientmeta.Decode(body)
	if err == nil {
		meta, err = clientmeta.Validate(meta, clientmeta.Options{AllowInsecure: s.cfg.AllowInsecureClients})
	}
	if err == nil {
		err = supported(meta)
	}
	if err != nil {
		return nil, oautherr.New(oautherr.Of(err, oautherr.InvalidClientMetadata), errs.PublicMessage(err))
	}
	if err := s.room.check(r.Context(), s.now()); err != nil {
		return nil, err
	}
	resp, err := s.registerClient(r.Context(), meta)
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "the client could not be registered right now", err)
	}
	return httpx.Reply{Status: http.StatusCreated, Body: resp}, nil
}

// supported refuses valid metadata that this server cannot serve: client keys
// must be registered inline (jwks_uri is not fetched).
func supported(m clientmeta.Metadata) error {
	switch {
	case m.TokenEndpointAuthMethod == "private_key_jwt" && len(m.JWKS) == 0:
		return oautherr.Errorf(oautherr.InvalidClientMetadata, "private_key_jwt clients must register their keys inline in jwks (jwks_uri is not supported)")
	}
	return nil
}

// registerClient records a validated client, pending until a person approves
// it (or until it expires unused: Config.ClientTTL), and returns the
// registration response: the metadata with client_id, and a secret for
// confidential clients.
func (s *Service) registerClient(ctx context.Context, meta clientmeta.Metadata) (map[string]any, error) {
	id := ids.New()
	var secret, secretHash string
	if meta.UsesSecret() {
		secret = s.clientSecret(id)
		secretHash = SecretHash(secret)
	}
	raw, err := json.Marshal(meta)
	if err != nil {
		return nil, err
	}
	appended, err := s.pending.Append(ctx, eventlog.Write{Expect: eventlog.ExpectNew(), TTL: s.cfg.ClientTTL, Event: eventlog.Event{
		Aggregate: pendingClientRef(id), Actor: "registration",
		Payload: &eventsv1.ClientRegistrationPending{ClientId: id, MetadataJson: raw, SecretHash: secretHash,
			ExpiresAt: timestamppb.New(s.now().Add(s.cfg.ClientTTL))},
	}})
	if err != nil {
		return nil, err
	}
	if err := s.projections.WaitFor(ctx, pendingClientsProjection, appended.Last()); err != nil {
		return nil, err
	}
	var resp map[string]any
	if err := json.Unmarshal(raw, &resp); err != nil {
		return nil, err
	}
	resp["client_id"] = id
	resp["client_id_issued_at"] = s.now().Unix()
	if secret != "" {
		resp["client_secret"] = secret
		resp["client_secret_expires_at"] = 0
	}
	return resp, nil
}

// clientSecret derives a client's secret from the service's key: 64 bytes of
// HMAC-SHA512, so it is long enough for every HS* algorithm of
// client_secret_jwt. Secrets are not stored; only their hashes are, and the
// secret of a client_secret_jwt client can be derived again when its
// assertions must be checked.
func (s *Service) clientSecret(clientID string) string {
	mac := hmac.New(sha512.New, s.secretKey)
	mac.Write([]byte("gatehouse client secret\x00" + clientID))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// loadSecretKey reads the client-secret key, sealed with the keyring,
// generating it on first start (see sealed.KeysAggregate). A key an earlier
// version kept in clear is kept and sealed: replacing it would change the
// secret of every client_secret_jwt client (see README, "Secrets and keys").
func (s *Service) loadSecretKey(ctx context.Context, ring *sealed.Keyring) error {
	key, err := sealed.RandomKey[*eventsv1.ClientSecretKeyGenerated]{
		Log: s.log, Ref: eventlog.Ref{Type: "keys", ID: "current"}, Keyring: ring, Logger: s.logger, Size: 64,
		Event: func(k *eventsv1.SealedSecret, change eventsv1.SecretChange) *eventsv1.ClientSecretKeyGenerated {
			return &eventsv1.ClientSecretKeyGenerated{SealedKey: k, Change: change}
		},
	}.Load(ctx)
	if err != nil {
		return fmt.Errorf("authorize: client secret key: %w", err)
	}
	s.secretKey = key
	return nil
}

// SecretHash is the stored form of a client secret: secrets are 256 random
// bits, so SHA-256 is as good as a slow hash and keeps client authentication fast.
func SecretHash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

package authorize

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"mime"
	"net/http"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/httpx"
	"gatehouse.dev/platform/ids"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/authorize/internal/clientmeta"
	"gatehouse.dev/services/authorize/internal/oautherr"
)

// maxRegistrationBody bounds a registration request.
const maxRegistrationBody = 64 << 10

// handleRegister is the dynamic client registration endpoint (RFC 7591, MSC2966).
func (s *Service) handleRegister(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		httpx.WriteOAuthError(w, http.StatusMethodNotAllowed, oautherr.InvalidRequest, "use POST")
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		httpx.WriteOAuthError(w, http.StatusBadRequest, oautherr.InvalidClientMetadata, "the body must be JSON (Content-Type: application/json)")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRegistrationBody+1))
	if err != nil || len(body) > maxRegistrationBody {
		httpx.WriteOAuthError(w, http.StatusBadRequest, oautherr.InvalidClientMetadata, "the body is unreadable or larger than 64 KiB")
		return
	}
	meta, err := clientmeta.Decode(body)
	if err == nil {
		meta, err = clientmeta.Validate(meta, clientmeta.Options{AllowInsecure: s.cfg.AllowInsecureClients})
	}
	if err == nil {
		err = supported(meta)
	}
	if err != nil {
		oe := asOAuth(err, oautherr.InvalidClientMetadata)
		httpx.WriteOAuthError(w, http.StatusBadRequest, oe.Code, oe.Description)
		return
	}
	resp, err := s.registerClient(r.Context(), meta, "registration")
	if err != nil {
		s.logger.ErrorContext(r.Context(), "register client", "err", err)
		httpx.WriteOAuthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "the client could not be registered right now")
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, resp)
}

// supported refuses valid metadata that this server cannot serve: secrets are
// stored only as hashes, so client_secret_jwt (which needs the secret itself)
// is not offered, and client keys must be registered inline.
func supported(m clientmeta.Metadata) error {
	switch {
	case m.TokenEndpointAuthMethod == "client_secret_jwt":
		return oautherr.Errorf(oautherr.InvalidClientMetadata, "client_secret_jwt is not supported; use private_key_jwt, client_secret_basic or client_secret_post")
	case m.TokenEndpointAuthMethod == "private_key_jwt" && len(m.JWKS) == 0:
		return oautherr.Errorf(oautherr.InvalidClientMetadata, "private_key_jwt clients must register their keys inline in jwks (jwks_uri is not supported)")
	}
	return nil
}

// registerClient records a validated client and returns the registration
// response: the metadata with client_id, and a secret for confidential clients.
func (s *Service) registerClient(ctx context.Context, meta clientmeta.Metadata, source string) (map[string]any, error) {
	id := ids.New()
	var secret, secretHash string
	if meta.UsesSecret() {
		var b [32]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		secret = base64.RawURLEncoding.EncodeToString(b[:])
		secretHash = SecretHash(secret)
	}
	raw, err := json.Marshal(meta)
	if err != nil {
		return nil, err
	}
	appended, err := s.log.Append(ctx, eventlog.Write{Expect: eventlog.ExpectNew(), Event: eventlog.Event{
		Aggregate: eventlog.Ref{Type: "client", ID: id}, Actor: source,
		Payload: &eventsv1.ClientRegistered{ClientId: id, MetadataJson: raw, SecretHash: secretHash, Source: source},
	}})
	if err != nil {
		return nil, err
	}
	if err := s.projections.WaitFor(ctx, clientsProjection, appended.Last()); err != nil {
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

// SecretHash is the stored form of a client secret: secrets are 256 random
// bits, so SHA-256 is as good as a slow hash and keeps client authentication fast.
func SecretHash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

package token

import (
	"context"
	"encoding/json"
	"time"

	"github.com/go-jose/go-jose/v4"
	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/errs"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
)

// CheckIDTokenHint verifies the id_token_hint of RP-initiated logout (the
// web service's end-session page): an ID token signed by one of the keys this
// service publishes (current ones, and retired ones while they are still
// published) with this issuer. An expired hint is accepted, as RP-Initiated
// Logout 1.0 §2 advises (its exp is returned; the page decides); anything
// else is INVALID_ARGUMENT.
func (g *grpcServer) CheckIDTokenHint(_ context.Context, req *tokenv1.CheckIDTokenHintRequest) (*tokenv1.CheckIDTokenHintResponse, error) {
	s := g.svc
	refuse := errs.InvalidField("id_token_hint", "id_token_hint is not an ID token of this server")
	raw := req.GetIdTokenHint()
	if raw == "" || len(raw) > 16<<10 {
		return nil, refuse
	}
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.ES384, jose.PS256})
	if err != nil || len(jws.Signatures) != 1 {
		return nil, refuse
	}
	kid := jws.Signatures[0].Header.KeyID
	var payload []byte
	published := s.keys.JWKSAt(s.now())
	for _, k := range published.Key(kid) {
		if p, err := jws.Verify(k.Key); err == nil {
			payload = p
			break
		}
	}
	if payload == nil {
		return nil, refuse
	}
	var c struct {
		Iss string          `json:"iss"`
		Sub string          `json:"sub"`
		Aud json.RawMessage `json:"aud"`
		Azp string          `json:"azp"`
		Sid string          `json:"sid"`
		Iat int64           `json:"iat"`
		Exp int64           `json:"exp"`
	}
	if err := json.Unmarshal(payload, &c); err != nil || c.Iss != s.cfg.Issuer || c.Sub == "" {
		return nil, refuse
	}
	client := c.Azp
	var one string
	var many []string
	switch {
	case json.Unmarshal(c.Aud, &one) == nil && one != "":
		if client == "" {
			client = one
		}
	case json.Unmarshal(c.Aud, &many) == nil && len(many) == 1 && client == "":
		client = many[0]
	}
	if client == "" {
		return nil, refuse
	}
	return &tokenv1.CheckIDTokenHintResponse{
		UserId: c.Sub, ClientId: client, Sid: c.Sid,
		IssuedAt: timestamppb.New(time.Unix(c.Iat, 0)), ExpiresAt: timestamppb.New(time.Unix(c.Exp, 0)),
	}, nil
}

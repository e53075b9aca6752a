package token

import (
	"context"
	"net/http"
	"net/url"
	"slices"

	"gatehouse.dev/platform/httpx"
	"gatehouse.dev/platform/oautherr"
)

// The token endpoint (RFC 6749 §3.2): a client authenticates, names a grant
// type, and the grant's own file answers. The grant table below is the one
// list of grant types: it decides what the endpoint accepts and who answers,
// and GrantTypes gives it to discovery's grant_types_supported.

// grant is one grant type of the token endpoint.
type grant struct {
	// typ is the grant_type parameter's value.
	typ string
	// issue answers a token request of this grant type from a client
	// registered for it: the token response, or an error.
	issue func(s *Service, ctx context.Context, req tokenRequest) (map[string]any, error)
}

// tokenRequest is a token request from an authenticated client.
type tokenRequest struct {
	client *client
	form   url.Values
	from   origin
}

// grants are the token endpoint's grant types, each answered in its own file
// (grant_<type>.go).
var grants = []grant{
	{"authorization_code", (*Service).authorizationCode},
	{"refresh_token", (*Service).refreshToken},
	{"client_credentials", (*Service).clientCredentials},
	{deviceCodeGrant, (*Service).deviceCode},
}

// GrantTypes lists the grant types the token endpoint accepts, for
// discovery (grant_types_supported) and client registration.
func GrantTypes() []string {
	out := make([]string, len(grants))
	for i, g := range grants {
		out[i] = g.typ
	}
	return out
}

// handleToken is the token endpoint.
func (s *Service) handleToken(w http.ResponseWriter, r *http.Request) (any, error) {
	form, c, err := s.clientRequest(w, r)
	if err != nil {
		return nil, err
	}
	typ := form.Get("grant_type")
	if typ == "" {
		return nil, oautherr.New(oautherr.InvalidRequest, "grant_type is required")
	}
	i := slices.IndexFunc(grants, func(g grant) bool { return g.typ == typ })
	if i < 0 {
		return nil, oautherr.New(oautherr.UnsupportedGrantType, "unsupported grant_type")
	}
	if !c.Meta.allows(typ) {
		return nil, oautherr.New(oautherr.UnauthorizedClient, "this client is not registered for the "+typ+" grant")
	}
	res, err := grants[i].issue(s, r.Context(), tokenRequest{client: c, form: form, from: originOf(r)})
	s.measures.granted(r.Context(), typ, err)
	return res, err
}

// clientRequest reads the form POST of an endpoint clients call from
// anywhere (browsers included) and authenticates its client.
func (s *Service) clientRequest(w http.ResponseWriter, r *http.Request) (url.Values, *client, error) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	form, err := httpx.ReadForm(w, r)
	if err != nil {
		return nil, nil, err
	}
	c, err := s.clientAuth.Authenticate(r.Context(), r, form)
	if err != nil {
		return nil, nil, err
	}
	return form, c, nil
}

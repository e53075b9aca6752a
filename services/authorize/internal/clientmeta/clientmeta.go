// Package clientmeta provides RFC 7591 dynamic client registration metadata
// and its validation under MSC2966 and the policy of
// matrix-authentication-service: what a Matrix client may register.
//
// Decode reads a registration request body; Validate checks the metadata and
// returns it normalised, with RFC 7591's defaults filled in. Errors are
// *oautherr.Error values with code invalid_redirect_uri for any problem with
// the redirect URIs and invalid_client_metadata for anything else.
package clientmeta

import (
	"bytes"
	"encoding/json"
	"slices"

	"gatehouse.dev/platform/oautherr"
)

// Limits on the size of client metadata.
const (
	// MaxDocumentBytes is the largest registration request body Decode reads:
	// anonymous callers make the server store it until it expires.
	MaxDocumentBytes = 16 << 10
	// MaxStringLength is the longest string field, in bytes.
	MaxStringLength = 2048
	// MaxRedirectURIs is the most redirect URIs a client may register.
	MaxRedirectURIs = 20
	// MaxContacts is the most contacts a client may give.
	MaxContacts = 10
	// MaxListLength is the most grant or response types a client may list.
	MaxListLength = 10
	// MaxJWKSBytes is the largest inline JSON Web Key Set accepted.
	MaxJWKSBytes = 8 << 10
)

// Application types (OpenID Connect Dynamic Client Registration §2).
const (
	// Web is a client running on a web server or in a browser.
	Web = "web"
	// Native is a client installed on the user's device.
	Native = "native"
)

// Token endpoint authentication methods (RFC 7591 §2, OpenID Connect Core §9).
const (
	// AuthNone is a public client, which does not authenticate.
	AuthNone = "none"
	// AuthClientSecretBasic sends the client secret in HTTP Basic authentication.
	AuthClientSecretBasic = "client_secret_basic"
	// AuthClientSecretPost sends the client secret in the request body.
	AuthClientSecretPost = "client_secret_post"
	// AuthClientSecretJWT sends a JWT signed with the client secret (HMAC).
	AuthClientSecretJWT = "client_secret_jwt"
	// AuthPrivateKeyJWT sends a JWT signed with one of the client's private keys.
	AuthPrivateKeyJWT = "private_key_jwt"
)

// Grant types a client may register.
const (
	// GrantAuthorizationCode is RFC 6749's authorization code grant.
	GrantAuthorizationCode = "authorization_code"
	// GrantRefreshToken is RFC 6749's refresh token grant.
	GrantRefreshToken = "refresh_token"
	// GrantClientCredentials is RFC 6749's client credentials grant.
	GrantClientCredentials = "client_credentials"
	// GrantDeviceCode is RFC 8628's device authorization grant.
	GrantDeviceCode = "urn:ietf:params:oauth:grant-type:device_code"
)

// ResponseTypeCode is the only response type supported: the authorization code.
const ResponseTypeCode = "code"

// Metadata is a client's registration metadata (RFC 7591 §2).
type Metadata struct {
	// RedirectURIs are the URIs the authorization endpoint may redirect to.
	RedirectURIs []string `json:"redirect_uris,omitempty"`
	// ResponseTypes are the response types the client will use; only "code".
	// It is always encoded, as an absent list and an empty one differ.
	ResponseTypes []string `json:"response_types"`
	// GrantTypes are the grant types the client will use at the token
	// endpoint. It is always encoded, as an absent list and an empty one differ.
	GrantTypes []string `json:"grant_types"`
	// ApplicationType is "web" or "native".
	ApplicationType string `json:"application_type,omitempty"`
	// ClientName is the name shown to the user.
	ClientName string `json:"client_name,omitempty"`
	// ClientURI is the client's home page; its host anchors the other URIs.
	ClientURI string `json:"client_uri,omitempty"`
	// LogoURI is the client's logo.
	LogoURI string `json:"logo_uri,omitempty"`
	// TOSURI is the client's terms of service.
	TOSURI string `json:"tos_uri,omitempty"`
	// PolicyURI is the client's privacy policy.
	PolicyURI string `json:"policy_uri,omitempty"`
	// Contacts are ways to reach the people responsible for the client.
	Contacts []string `json:"contacts,omitempty"`
	// TokenEndpointAuthMethod is how the client authenticates at the token endpoint.
	TokenEndpointAuthMethod string `json:"token_endpoint_auth_method,omitempty"`
	// TokenEndpointAuthSigningAlg is the JWS algorithm of the *_jwt methods.
	TokenEndpointAuthSigningAlg string `json:"token_endpoint_auth_signing_alg,omitempty"`
	// JWKS is the client's JSON Web Key Set, inline.
	JWKS json.RawMessage `json:"jwks,omitempty"`
	// JWKSURI is where the client's JSON Web Key Set is published.
	JWKSURI string `json:"jwks_uri,omitempty"`
	// IDTokenSignedResponseAlg is the JWS algorithm the client wants ID tokens signed with.
	IDTokenSignedResponseAlg string `json:"id_token_signed_response_alg,omitempty"`
	// UserinfoSignedResponseAlg is the JWS algorithm the client wants userinfo responses signed with.
	UserinfoSignedResponseAlg string `json:"userinfo_signed_response_alg,omitempty"`
	// Scope is the scope the client may ask for acting for itself (RFC 7591
	// §2): the token service's client_credentials grant gives no more.
	Scope string `json:"scope,omitempty"`
	// PostLogoutRedirectURIs are where RP-initiated logout may send the
	// browser back (OpenID Connect RP-Initiated Logout 1.0 §3.1), under the
	// rules of redirect URIs.
	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris,omitempty"`
}

// Decode reads client metadata from a registration request body. Field
// names are matched exactly; unknown fields, including localised ones such as
// client_name#fr, are ignored (RFC 7591 §2). A body that is not a JSON
// object, or a known field of the wrong JSON type, is invalid_client_metadata.
func Decode(data []byte) (Metadata, error) {
	if len(data) > MaxDocumentBytes {
		return Metadata{}, metadataErr("client metadata is larger than %d bytes", MaxDocumentBytes)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil || fields == nil {
		return Metadata{}, metadataErr("client metadata must be a JSON object")
	}
	var m Metadata
	for _, f := range fieldsOf(&m) {
		raw, ok := fields[f.name]
		if !ok {
			continue
		}
		if err := json.Unmarshal(raw, f.target); err != nil {
			return Metadata{}, metadataErr("%s must be %s", f.name, f.kind)
		}
	}
	if bytes.Equal(m.JWKS, []byte("null")) {
		m.JWKS = nil
	}
	return m, nil
}

// field is one known metadata field, for Decode.
type field struct {
	name   string
	target any
	kind   string
}

// fieldsOf returns m's fields by JSON name, in declaration order, pointing
// into m.
func fieldsOf(m *Metadata) []field {
	const str, list = "a string", "an array of strings"
	return []field{
		{"redirect_uris", &m.RedirectURIs, list},
		{"response_types", &m.ResponseTypes, list},
		{"grant_types", &m.GrantTypes, list},
		{"application_type", &m.ApplicationType, str},
		{"client_name", &m.ClientName, str},
		{"client_uri", &m.ClientURI, str},
		{"logo_uri", &m.LogoURI, str},
		{"tos_uri", &m.TOSURI, str},
		{"policy_uri", &m.PolicyURI, str},
		{"contacts", &m.Contacts, list},
		{"token_endpoint_auth_method", &m.TokenEndpointAuthMethod, str},
		{"token_endpoint_auth_signing_alg", &m.TokenEndpointAuthSigningAlg, str},
		{"jwks", &m.JWKS, "a JSON Web Key Set"},
		{"jwks_uri", &m.JWKSURI, str},
		{"id_token_signed_response_alg", &m.IDTokenSignedResponseAlg, str},
		{"userinfo_signed_response_alg", &m.UserinfoSignedResponseAlg, str},
		{"scope", &m.Scope, str},
		{"post_logout_redirect_uris", &m.PostLogoutRedirectURIs, list},
	}
}

// IsPublic reports whether the client does not authenticate at the token
// endpoint (token_endpoint_auth_method "none").
func (m Metadata) IsPublic() bool { return m.authMethod() == AuthNone }

// UsesSecret reports whether the client authenticates with a client secret:
// client_secret_basic (the default), client_secret_post or client_secret_jwt.
func (m Metadata) UsesSecret() bool {
	switch m.authMethod() {
	case AuthClientSecretBasic, AuthClientSecretPost, AuthClientSecretJWT:
		return true
	}
	return false
}

// authMethod returns the token endpoint authentication method, defaulting
// to client_secret_basic.
func (m Metadata) authMethod() string {
	if m.TokenEndpointAuthMethod == "" {
		return AuthClientSecretBasic
	}
	return m.TokenEndpointAuthMethod
}

// hasGrant reports whether m lists the grant type g.
func (m Metadata) hasGrant(g string) bool { return slices.Contains(m.GrantTypes, g) }

// metadataErr returns an invalid_client_metadata error with a formatted
// description.
func metadataErr(format string, args ...any) error {
	return oautherr.Errorf(oautherr.InvalidClientMetadata, format, args...)
}

// redirectErr returns an invalid_redirect_uri error with a formatted
// description.
func redirectErr(format string, args ...any) error {
	return oautherr.Errorf(oautherr.InvalidRedirectURI, format, args...)
}

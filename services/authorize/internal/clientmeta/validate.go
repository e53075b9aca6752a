package clientmeta

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/publicsuffix"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/services/authorize/internal/redirect"
	"gatehouse.dev/services/authorize/internal/scope"
)

// Options adjusts Validate; the zero Options is the production policy.
type Options struct {
	// AllowInsecure, for development, accepts client URIs and web redirect
	// URIs on localhost or loopback addresses, over http (loopback only, as
	// redirect.ParseRegistered requires) or on non-default https ports.
	AllowInsecure bool
}

// GrantTypes are the grant types a client may register and discovery
// announces (grant_types_supported): those of the token service's grant
// table, which a test of e2e/inprocess compares.
func GrantTypes() []string { return slices.Clone(grantTypes) }

// The sets of supported values.
var (
	applicationTypes = []string{Web, Native}
	authMethods      = []string{AuthNone, AuthClientSecretBasic, AuthClientSecretPost, AuthClientSecretJWT, AuthPrivateKeyJWT}
	grantTypes       = []string{GrantAuthorizationCode, GrantRefreshToken, GrantClientCredentials, GrantDeviceCode}
	// hmacAlgs are the JWS algorithms of client_secret_jwt.
	hmacAlgs = []string{"HS256", "HS384", "HS512"}
	// asymmetricAlgs are the JWS algorithms of private_key_jwt and of signed
	// ID tokens and userinfo responses.
	asymmetricAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"}
)

// Validate checks client metadata against RFC 7591, MSC2966 and the rules
// of MAS's registration policy, and returns it normalised: defaults filled
// in (application_type web, token_endpoint_auth_method client_secret_basic,
// grant_types [authorization_code], response_types [code] when the
// authorization_code grant is used and [] otherwise), duplicates removed and
// jwks compacted. Errors are *oautherr.Error values with code
// invalid_redirect_uri or invalid_client_metadata.
func Validate(m Metadata, opts Options) (Metadata, error) {
	if err := checkSizes(m); err != nil {
		return Metadata{}, err
	}
	n, err := normalise(m)
	if err != nil {
		return Metadata{}, err
	}
	if err := checkAuth(n); err != nil {
		return Metadata{}, err
	}
	clientHost, err := checkClientURIs(n, opts)
	if err != nil {
		return Metadata{}, err
	}
	if err := checkRedirectURIs(n, clientHost, opts); err != nil {
		return Metadata{}, err
	}
	return n, nil
}

// checkSizes bounds every field and rejects control characters in the
// free-text fields.
func checkSizes(m Metadata) error {
	switch {
	case len(m.RedirectURIs) > MaxRedirectURIs:
		return redirectErr("redirect_uris has %d entries; at most %d are allowed", len(m.RedirectURIs), MaxRedirectURIs)
	case len(m.PostLogoutRedirectURIs) > MaxRedirectURIs:
		return metadataErr("post_logout_redirect_uris has %d entries; at most %d are allowed", len(m.PostLogoutRedirectURIs), MaxRedirectURIs)
	case len(m.Contacts) > MaxContacts:
		return metadataErr("contacts has %d entries; at most %d are allowed", len(m.Contacts), MaxContacts)
	case len(m.GrantTypes) > MaxListLength:
		return metadataErr("grant_types has %d entries; at most %d are allowed", len(m.GrantTypes), MaxListLength)
	case len(m.ResponseTypes) > MaxListLength:
		return metadataErr("response_types has %d entries; at most %d are allowed", len(m.ResponseTypes), MaxListLength)
	case len(m.JWKS) > MaxJWKSBytes:
		return metadataErr("jwks is larger than %d bytes", MaxJWKSBytes)
	}
	for _, f := range fieldsOf(&m) {
		var values []string
		switch v := f.target.(type) {
		case *string:
			values = []string{*v}
		case *[]string:
			values = *v
		}
		for _, s := range values {
			if len(s) > MaxStringLength {
				return errFor(f.name, "%s has a value longer than %d bytes", f.name, MaxStringLength)
			}
		}
	}
	if !isDisplayable(m.ClientName) {
		return metadataErr("client_name must be UTF-8 text without control or bidirectional formatting characters")
	}
	for _, c := range m.Contacts {
		if c == "" || !isDisplayable(c) {
			return metadataErr("contacts must be non-empty UTF-8 text without control or bidirectional formatting characters")
		}
	}
	return nil
}

// normalise fills in defaults, removes duplicates, checks the enumerated
// fields and the coherence of grant and response types.
func normalise(m Metadata) (Metadata, error) {
	n := m
	if n.ApplicationType == "" {
		n.ApplicationType = Web
	}
	if !slices.Contains(applicationTypes, n.ApplicationType) {
		return Metadata{}, metadataErr("application_type must be %q or %q, not %q", Web, Native, n.ApplicationType)
	}
	if n.TokenEndpointAuthMethod == "" {
		n.TokenEndpointAuthMethod = AuthClientSecretBasic
	}
	if !slices.Contains(authMethods, n.TokenEndpointAuthMethod) {
		return Metadata{}, metadataErr("token_endpoint_auth_method %q is not supported", n.TokenEndpointAuthMethod)
	}

	if n.GrantTypes == nil {
		n.GrantTypes = []string{GrantAuthorizationCode}
	}
	if n.Scope != "" {
		set, err := scope.New(strings.Fields(n.Scope)...)
		if err != nil {
			return Metadata{}, metadataErr("scope: %s", description(err))
		}
		n.Scope = set.String()
	}
	n.GrantTypes = dedupe(n.GrantTypes)
	for _, g := range n.GrantTypes {
		if !slices.Contains(grantTypes, g) {
			return Metadata{}, metadataErr("grant_type %q is not supported", g)
		}
	}
	if n.ResponseTypes == nil {
		n.ResponseTypes = []string{}
		if n.hasGrant(GrantAuthorizationCode) {
			n.ResponseTypes = []string{ResponseTypeCode}
		}
	}
	n.ResponseTypes = dedupe(n.ResponseTypes)
	for _, r := range n.ResponseTypes {
		if r != ResponseTypeCode {
			return Metadata{}, metadataErr("response_type %q is not supported; only %q is", r, ResponseTypeCode)
		}
	}
	switch code := slices.Contains(n.ResponseTypes, ResponseTypeCode); {
	case code && !n.hasGrant(GrantAuthorizationCode):
		return Metadata{}, metadataErr("response_type %q requires the %s grant_type", ResponseTypeCode, GrantAuthorizationCode)
	case !code && n.hasGrant(GrantAuthorizationCode):
		return Metadata{}, metadataErr("the %s grant_type requires the response_type %q", GrantAuthorizationCode, ResponseTypeCode)
	}

	n.RedirectURIs = nilIfEmpty(dedupe(n.RedirectURIs))
	n.PostLogoutRedirectURIs = nilIfEmpty(dedupe(n.PostLogoutRedirectURIs))
	n.Contacts = nilIfEmpty(slices.Clone(n.Contacts))
	if len(n.JWKS) > 0 {
		var buf bytes.Buffer
		if err := json.Compact(&buf, n.JWKS); err != nil {
			return Metadata{}, metadataErr("jwks is not valid JSON")
		}
		n.JWKS = buf.Bytes()
	}
	if bytes.Equal(n.JWKS, []byte("null")) || len(n.JWKS) == 0 {
		n.JWKS = nil
	}
	return n, nil
}

// checkAuth checks the client authentication fields and signing algorithms.
func checkAuth(n Metadata) error {
	if n.IsPublic() && n.hasGrant(GrantClientCredentials) {
		return metadataErr("the %s grant_type requires client authentication, so token_endpoint_auth_method cannot be %q",
			GrantClientCredentials, AuthNone)
	}
	if n.JWKS != nil && n.JWKSURI != "" {
		return metadataErr("jwks and jwks_uri are mutually exclusive")
	}
	if n.JWKS != nil && !isJWKS(n.JWKS) {
		return metadataErr(`jwks must be a JSON Web Key Set: an object with a non-empty "keys" array of objects`)
	}
	alg := n.TokenEndpointAuthSigningAlg
	switch n.TokenEndpointAuthMethod {
	case AuthPrivateKeyJWT:
		if n.JWKS == nil && n.JWKSURI == "" {
			return metadataErr("token_endpoint_auth_method %q requires jwks or jwks_uri", AuthPrivateKeyJWT)
		}
		if alg != "" && !slices.Contains(asymmetricAlgs, alg) {
			return metadataErr("token_endpoint_auth_signing_alg %q is not supported with %s; use one of %s",
				alg, AuthPrivateKeyJWT, strings.Join(asymmetricAlgs, ", "))
		}
	case AuthClientSecretJWT:
		if alg != "" && !slices.Contains(hmacAlgs, alg) {
			return metadataErr("token_endpoint_auth_signing_alg %q is not supported with %s; use one of %s",
				alg, AuthClientSecretJWT, strings.Join(hmacAlgs, ", "))
		}
	default:
		if alg != "" {
			return metadataErr("token_endpoint_auth_signing_alg is only used with %s and %s", AuthClientSecretJWT, AuthPrivateKeyJWT)
		}
	}
	for _, f := range []struct{ name, alg string }{
		{"id_token_signed_response_alg", n.IDTokenSignedResponseAlg},
		{"userinfo_signed_response_alg", n.UserinfoSignedResponseAlg},
	} {
		if f.alg != "" && !slices.Contains(asymmetricAlgs, f.alg) {
			return metadataErr("%s %q is not supported; use one of %s", f.name, f.alg, strings.Join(asymmetricAlgs, ", "))
		}
	}
	return nil
}

// checkClientURIs checks client_uri and the URIs that must share its host,
// and returns the client_uri host.
func checkClientURIs(n Metadata, opts Options) (string, error) {
	if n.ClientURI == "" {
		return "", metadataErr("client_uri is required")
	}
	client, err := webURI("client_uri", n.ClientURI, opts)
	if err != nil {
		return "", err
	}
	host := client.Hostname()
	for _, f := range []struct{ name, raw string }{
		{"logo_uri", n.LogoURI}, {"tos_uri", n.TOSURI}, {"policy_uri", n.PolicyURI},
	} {
		if f.raw == "" {
			continue
		}
		u, err := webURI(f.name, f.raw, opts)
		if err != nil {
			return "", err
		}
		if !hostWithin(u.Hostname(), host) {
			return "", metadataErr("%s %q must be on the client_uri host %q or a subdomain of it", f.name, f.raw, host)
		}
	}
	if n.JWKSURI != "" {
		if _, err := webURI("jwks_uri", n.JWKSURI, opts); err != nil {
			return "", err
		}
	}
	return host, nil
}

// checkRedirectURIs checks each redirect URI against redirect.ParseRegistered
// and the rules of the client's application type.
func checkRedirectURIs(n Metadata, clientHost string, opts Options) error {
	if len(n.RedirectURIs) == 0 && n.hasGrant(GrantAuthorizationCode) {
		return redirectErr("redirect_uris is required for the %s grant_type", GrantAuthorizationCode)
	}
	for i, raw := range n.RedirectURIs {
		u, err := redirect.ParseRegistered(raw)
		if err != nil {
			return redirectErr("redirect_uris[%d]: %s", i, description(err))
		}
		if problem := redirectProblem(n.ApplicationType, u, clientHost, opts); problem != "" {
			return redirectErr("redirect_uris[%d] %q %s", i, raw, problem)
		}
	}
	// Post-logout redirect URIs follow the same rules (MSC2966): the browser
	// goes there after logout, so they must be the client's as much.
	for i, raw := range n.PostLogoutRedirectURIs {
		u, err := redirect.ParseRegistered(raw)
		if err != nil {
			return metadataErr("post_logout_redirect_uris[%d]: %s", i, description(err))
		}
		if problem := redirectProblem(n.ApplicationType, u, clientHost, opts); problem != "" {
			return metadataErr("post_logout_redirect_uris[%d] %q %s", i, raw, problem)
		}
	}
	return nil
}

// redirectProblem returns what is wrong with the redirect URI u for a client
// of the given application type whose client_uri host is clientHost, or "".
// Web clients need https on the client_uri host or a subdomain of it.
// Native clients may also use http on a loopback host (any port) or a
// private-use scheme that starts with the client_uri host reversed.
func redirectProblem(appType string, u *url.URL, clientHost string, opts Options) string {
	if appType == Native {
		switch redirect.Classify(u) {
		case redirect.Loopback:
			return ""
		case redirect.PrivateUseScheme:
			if reverseDNSWithin(u.Scheme, clientHost) {
				return ""
			}
			return fmt.Sprintf("uses the scheme %q, but a native client's private-use scheme must be the client_uri host reversed (%q) or start with it",
				u.Scheme, reverseHost(clientHost))
		}
	}
	problem := webProblem(u, opts)
	if problem == "" && !hostWithin(u.Hostname(), clientHost) {
		problem = fmt.Sprintf("must be on the client_uri host %q or a subdomain of it", clientHost)
	}
	if problem != "" && appType == Native {
		return fmt.Sprintf("is neither http on a loopback host nor a private-use scheme URI such as %q, and as a web redirect URI it %s",
			reverseHost(clientHost)+":/callback", problem)
	}
	return problem
}

// webURI parses a client URI other than a redirect URI (client_uri,
// logo_uri, tos_uri, policy_uri, jwks_uri): it must pass the hygiene rules of
// redirect.ParseRegistered and be a secure web URL.
func webURI(field, raw string, opts Options) (*url.URL, error) {
	u, err := redirect.ParseRegistered(raw)
	if err != nil {
		return nil, metadataErr("%s: %s", field, description(err))
	}
	if problem := webProblem(u, opts); problem != "" {
		return nil, metadataErr("%s %q %s", field, raw, problem)
	}
	return u, nil
}

// webProblem returns why u, which passed redirect.ParseRegistered, is not a
// secure web URL, or "": it must use https on the default port, with a host
// that is not local and not a bare public suffix. AllowInsecure permits
// http, local hosts and other ports.
func webProblem(u *url.URL, opts Options) string {
	host := u.Hostname()
	switch {
	case u.Scheme != "https" && !(opts.AllowInsecure && u.Scheme == "http"):
		return "must use https"
	case u.Host == "":
		return "must have a host"
	case isLocal(host):
		if !opts.AllowInsecure {
			return "must not be on localhost, a loopback address or an unspecified address"
		}
	case isPublicSuffix(host):
		return fmt.Sprintf("has the host %q, which is a public suffix", host)
	}
	if u.Port() != "" && !opts.AllowInsecure {
		return "must use the default https port"
	}
	return ""
}

// isLocal reports whether host names this machine: localhost, a name under
// .localhost (RFC 6761), or a loopback or unspecified IP address.
func isLocal(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	addr, err := netip.ParseAddr(host)
	return err == nil && (addr.IsLoopback() || addr.IsUnspecified())
}

// isPublicSuffix reports whether host is a bare public suffix (co.uk,
// github.io) or a single-label name, on which anyone could register a
// sibling domain. IP addresses are not.
func isPublicSuffix(host string) bool {
	if _, err := netip.ParseAddr(host); err == nil {
		return false
	}
	suffix, _ := publicsuffix.PublicSuffix(host)
	return suffix == host
}

// hostWithin reports whether host is parent or, for a DNS name, a subdomain
// of it. Labels are compared whole: evilexample.com is not within
// example.com.
func hostWithin(host, parent string) bool {
	if host == parent {
		return true
	}
	if _, err := netip.ParseAddr(parent); err == nil {
		return false
	}
	return strings.HasSuffix(host, "."+parent)
}

// reverseDNSWithin reports whether the dotted labels of scheme start with
// the labels of host reversed: com.example and com.example.app are within
// example.com, com.examplehack is not.
func reverseDNSWithin(scheme, host string) bool {
	if _, err := netip.ParseAddr(host); err == nil || host == "" {
		return false
	}
	reversed := reverseHost(host)
	return scheme == reversed || strings.HasPrefix(scheme, reversed+".")
}

// reverseHost returns host with its labels in reverse order.
func reverseHost(host string) string {
	labels := strings.Split(host, ".")
	slices.Reverse(labels)
	return strings.Join(labels, ".")
}

// isJWKS reports whether raw is a JSON object whose "keys" member is a
// non-empty array of objects. The keys themselves are checked where used.
func isJWKS(raw json.RawMessage) bool {
	var set map[string]json.RawMessage
	if err := json.Unmarshal(raw, &set); err != nil || set == nil {
		return false
	}
	var keys []map[string]json.RawMessage
	if err := json.Unmarshal(set["keys"], &keys); err != nil || len(keys) == 0 {
		return false
	}
	return !slices.ContainsFunc(keys, func(k map[string]json.RawMessage) bool { return k == nil })
}

// isDisplayable reports whether s is valid UTF-8 without control or
// bidirectional formatting characters, and so safe to show on a consent page.
func isDisplayable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			return false
		}
	}
	return true
}

// dedupe returns a copy of list without repeated values, in first-seen
// order.
func dedupe(list []string) []string {
	if list == nil {
		return nil
	}
	out := make([]string, 0, len(list))
	for _, s := range list {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// nilIfEmpty returns nil for an empty list, so that absent and empty lists
// normalise alike.
func nilIfEmpty(list []string) []string {
	if len(list) == 0 {
		return nil
	}
	return list
}

// errFor returns an invalid_redirect_uri error for the redirect_uris field
// and an invalid_client_metadata error for any other.
func errFor(field, format string, args ...any) error {
	if field == "redirect_uris" {
		return redirectErr(format, args...)
	}
	return metadataErr(format, args...)
}

// description returns the public message of an *errs.Error, or err's text.
func description(err error) string {
	if oe, ok := errors.AsType[*errs.Error](err); ok {
		return oe.Public
	}
	return err.Error()
}

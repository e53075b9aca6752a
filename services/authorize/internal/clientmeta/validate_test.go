package clientmeta

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/oautherr"
	"gatehouse.dev/services/authorize/internal/redirect"
)

// decodeValidate decodes doc and validates the result.
func decodeValidate(doc string, opts Options) (Metadata, error) {
	m, err := Decode([]byte(doc))
	if err != nil {
		return Metadata{}, err
	}
	return Validate(m, opts)
}

// uris returns a JSON array of n distinct redirect URIs on example.com.
func uris(n int) string {
	list := make([]string, n)
	for i := range list {
		list[i] = fmt.Sprintf("%q", fmt.Sprintf("https://example.com/cb%d", i))
	}
	return "[" + strings.Join(list, ",") + "]"
}

func TestValidateAccepts(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		opts Options
	}{
		{"web client", `{"client_uri":"https://example.com/","redirect_uris":["https://example.com/callback"]}`, Options{}},
		{"web client on subdomains", `{"client_uri":"https://example.com",
			"redirect_uris":["https://app.example.com/cb?x=1","https://example.com/cb"],
			"logo_uri":"https://cdn.example.com/logo.png","tos_uri":"https://example.com/tos",
			"policy_uri":"https://legal.example.com/privacy","client_name":"Example 🐈","contacts":["ops@example.com"]}`, Options{}},
		{"native loopback", `{"application_type":"native","client_uri":"https://example.com/",
			"redirect_uris":["http://127.0.0.1/callback","http://[::1]/cb","http://localhost:8080/cb"],
			"token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"]}`, Options{}},
		{"native private-use scheme", `{"application_type":"native","client_uri":"https://example.com/",
			"redirect_uris":["com.example.app:/callback","com.example:/cb"],"token_endpoint_auth_method":"none"}`, Options{}},
		{"native private-use scheme of a subdomain client_uri", `{"application_type":"native",
			"client_uri":"https://app.example.com/","redirect_uris":["com.example.app:/callback","com.example.app.ios:/"],
			"token_endpoint_auth_method":"none"}`, Options{}},
		{"native with web redirect", `{"application_type":"native","client_uri":"https://example.com/",
			"redirect_uris":["https://example.com/native-cb"],"token_endpoint_auth_method":"none"}`, Options{}},
		{"client credentials without redirect URIs", `{"client_uri":"https://example.com/",
			"grant_types":["client_credentials"],"token_endpoint_auth_method":"client_secret_post"}`, Options{}},
		{"device code public client", `{"client_uri":"https://example.com/","token_endpoint_auth_method":"none",
			"grant_types":["urn:ietf:params:oauth:grant-type:device_code","refresh_token"]}`, Options{}},
		{"private_key_jwt with jwks_uri", `{"client_uri":"https://example.com/","redirect_uris":["https://example.com/cb"],
			"token_endpoint_auth_method":"private_key_jwt","token_endpoint_auth_signing_alg":"ES256",
			"jwks_uri":"https://example.com/jwks.json","id_token_signed_response_alg":"RS256",
			"userinfo_signed_response_alg":"PS256"}`, Options{}},
		{"private_key_jwt with jwks", `{"client_uri":"https://example.com/","redirect_uris":["https://example.com/cb"],
			"token_endpoint_auth_method":"private_key_jwt","jwks":{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b"}]}}`, Options{}},
		{"client_secret_jwt", `{"client_uri":"https://example.com/","redirect_uris":["https://example.com/cb"],
			"token_endpoint_auth_method":"client_secret_jwt","token_endpoint_auth_signing_alg":"HS512"}`, Options{}},
		{"unknown and localised fields ignored", `{"client_uri":"https://example.com/","redirect_uris":["https://example.com/cb"],
			"client_name#fr":"Exemple","software_id":42,"frontchannel_logout_uri":7}`, Options{}},
		{"post-logout redirect URIs", `{"client_uri":"https://example.com/","redirect_uris":["https://example.com/cb"],
			"post_logout_redirect_uris":["https://example.com/bye","https://app.example.com/signed-out?x=1"]}`, Options{}},
		{"native post-logout redirect URIs", `{"application_type":"native","client_uri":"https://example.com/",
			"redirect_uris":["com.example.app:/cb"],"post_logout_redirect_uris":["com.example.app:/bye","http://127.0.0.1/bye"],
			"token_endpoint_auth_method":"none"}`, Options{}},
		{"insecure localhost for development", `{"client_uri":"http://localhost:8080/",
			"redirect_uris":["http://localhost:3000/cb"],"logo_uri":"https://localhost:8443/logo.png"}`, Options{AllowInsecure: true}},
		{"twenty redirect URIs", `{"client_uri":"https://example.com/","redirect_uris":` + uris(MaxRedirectURIs) + `}`, Options{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeValidate(tt.doc, tt.opts)
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			again, err := Validate(got, tt.opts)
			if err != nil {
				t.Fatalf("Validate of normalised metadata: %v", err)
			}
			a, _ := json.Marshal(got)
			b, _ := json.Marshal(again)
			if string(a) != string(b) {
				t.Errorf("Validate is not idempotent:\n%s\n%s", a, b)
			}
		})
	}
}

func TestValidateRejects(t *testing.T) {
	const (
		meta  = oautherr.InvalidClientMetadata
		redir = oautherr.InvalidRedirectURI
		web   = `"client_uri":"https://example.com/","redirect_uris":["https://example.com/cb"]`
	)
	tests := []struct {
		name     string
		doc      string
		wantCode string
		wantDesc string
	}{
		{"scope with a quote", `{` + web + `,"scope":"read\"stats"}`, meta, "scope"},
		{"scope not a string", `{` + web + `,"scope":["read"]}`, meta, "scope must be a string"},
		// Decoding.
		{"not an object", `["https://example.com/cb"]`, meta, "must be a JSON object"},
		{"null body", `null`, meta, "must be a JSON object"},
		{"malformed JSON", `{"client_uri":`, meta, "must be a JSON object"},
		{"redirect_uris not an array", `{"client_uri":"https://example.com/","redirect_uris":"https://example.com/cb"}`,
			meta, "redirect_uris must be an array of strings"},
		{"redirect_uris with a number", `{"client_uri":"https://example.com/","redirect_uris":["https://example.com/cb",1]}`,
			meta, "redirect_uris must be an array of strings"},
		{"client_name a number", `{` + web + `,"client_name":7}`, meta, "client_name must be a string"},
		{"jwks not JSON object", `{` + web + `,"jwks":"keys"}`, meta, "jwks must be a JSON Web Key Set"},

		// client_uri and the URIs on its host.
		{"missing client_uri", `{"redirect_uris":["https://example.com/cb"]}`, meta, "client_uri is required"},
		{"http client_uri", `{"client_uri":"http://example.com/","redirect_uris":["https://example.com/cb"]}`, meta, "client_uri: URI"},
		{"localhost client_uri", `{"client_uri":"https://localhost/","redirect_uris":["https://localhost/cb"]}`, meta, "must not be on localhost"},
		{"loopback client_uri", `{"client_uri":"https://127.0.0.1/","redirect_uris":["https://127.0.0.1/cb"]}`, meta, "must not be on localhost"},
		{"unspecified client_uri", `{"client_uri":"https://0.0.0.0/","redirect_uris":["https://0.0.0.0/cb"]}`, meta, "must not be on localhost"},
		{"IPv6 loopback client_uri", `{"client_uri":"https://[::1]/","redirect_uris":["https://[::1]/cb"]}`, meta, "must not be on localhost"},
		{".localhost client_uri", `{"client_uri":"https://app.localhost/","redirect_uris":["https://app.localhost/cb"]}`, meta, "must not be on localhost"},
		{"public suffix client_uri", `{"client_uri":"https://co.uk/","redirect_uris":["https://co.uk/cb"]}`, meta, "public suffix"},
		{"private public suffix client_uri", `{"client_uri":"https://github.io/","redirect_uris":["https://github.io/cb"]}`, meta, "public suffix"},
		{"single-label client_uri", `{"client_uri":"https://intranet/","redirect_uris":["https://intranet/cb"]}`, meta, "public suffix"},
		{"client_uri port", `{"client_uri":"https://example.com:8443/","redirect_uris":["https://example.com/cb"]}`, meta, "default https port"},
		{"client_uri userinfo", `{"client_uri":"https://example.com@evil.test/","redirect_uris":["https://evil.test/cb"]}`, meta, "userinfo"},
		{"client_uri javascript", `{"client_uri":"JavaScript:alert(1)","redirect_uris":["https://example.com/cb"]}`, meta, "forbidden scheme"},
		{"http logo_uri", `{` + web + `,"logo_uri":"http://example.com/logo.png"}`, meta, "logo_uri: URI"},
		{"logo_uri on another host", `{` + web + `,"logo_uri":"https://cdn.other.test/logo.png"}`, meta, "logo_uri \"https://cdn.other.test/logo.png\" must be on the client_uri host"},
		{"tos_uri on a look-alike host", `{` + web + `,"tos_uri":"https://evilexample.com/tos"}`, meta, "tos_uri \"https://evilexample.com/tos\" must be on the client_uri host"},
		{"policy_uri on the parent host", `{"client_uri":"https://app.example.com/","redirect_uris":["https://app.example.com/cb"],"policy_uri":"https://example.com/p"}`,
			meta, "policy_uri \"https://example.com/p\" must be on the client_uri host"},
		{"jwks_uri over http", `{` + web + `,"jwks_uri":"http://example.com/jwks"}`, meta, "jwks_uri: URI"},

		// Post-logout redirect URIs: the same rules as redirect URIs (MSC2966).
		{"post-logout URI on another host", `{` + web + `,"post_logout_redirect_uris":["https://evil.test/bye"]}`, meta, "post_logout_redirect_uris[0]"},
		{"post-logout URI over http", `{` + web + `,"post_logout_redirect_uris":["http://example.com/bye"]}`, meta, "post_logout_redirect_uris[0]"},
		{"post-logout URI with a fragment", `{` + web + `,"post_logout_redirect_uris":["https://example.com/bye#x"]}`, meta, "post_logout_redirect_uris[0]"},
		{"post-logout URI javascript", `{` + web + `,"post_logout_redirect_uris":["javascript:alert(1)"]}`, meta, "post_logout_redirect_uris[0]"},
		{"post-logout URIs not an array", `{` + web + `,"post_logout_redirect_uris":"https://example.com/bye"}`, meta, "post_logout_redirect_uris must be an array of strings"},
		{"native post-logout URI of another scheme", `{"application_type":"native","client_uri":"https://example.com/","redirect_uris":["com.example.app:/cb"],
			"post_logout_redirect_uris":["com.evil.app:/bye"],"token_endpoint_auth_method":"none"}`, meta, "post_logout_redirect_uris[0]"},

		// Redirect URIs.
		{"missing redirect_uris", `{"client_uri":"https://example.com/"}`, redir, "redirect_uris is required"},
		{"empty redirect_uris", `{"client_uri":"https://example.com/","redirect_uris":[]}`, redir, "redirect_uris is required"},
		{"too many redirect_uris", `{"client_uri":"https://example.com/","redirect_uris":` + uris(MaxRedirectURIs+1) + `}`, redir, "at most 20"},
		{"redirect fragment", `{"client_uri":"https://example.com/","redirect_uris":["https://example.com/cb#x"]}`, redir, "redirect_uris[0]: URI \"https://example.com/cb#x\" has a fragment"},
		{"redirect traversal", `{"client_uri":"https://example.com/","redirect_uris":["https://example.com/cb","https://example.com/cb/..;/x"]}`, redir, "redirect_uris[1]: "},
		{"redirect too long", `{"client_uri":"https://example.com/","redirect_uris":["https://example.com/` + strings.Repeat("a", MaxStringLength) + `"]}`, redir, "longer than 2048"},
		{"web redirect on another host", `{"client_uri":"https://example.com/","redirect_uris":["https://evil.test/cb"]}`, redir, "must be on the client_uri host"},
		{"web redirect on a look-alike host", `{"client_uri":"https://example.com/","redirect_uris":["https://evilexample.com/cb"]}`, redir, "must be on the client_uri host"},
		{"web redirect loopback", `{"client_uri":"https://example.com/","redirect_uris":["http://127.0.0.1/cb"]}`, redir, "must use https"},
		{"web redirect https localhost", `{"client_uri":"https://example.com/","redirect_uris":["https://localhost/cb"]}`, redir, "must not be on localhost"},
		{"web redirect private-use scheme", `{"client_uri":"https://example.com/","redirect_uris":["com.example.app:/cb"]}`, redir, "must use https"},
		{"web redirect port", `{"client_uri":"https://example.com/","redirect_uris":["https://example.com:8443/cb"]}`, redir, "default https port"},
		{"web redirect http non-loopback", `{"client_uri":"https://example.com/","redirect_uris":["http://example.com/cb"]}`, redir, "uses http"},
		{"native scheme of another host", `{"application_type":"native","client_uri":"https://example.com/","redirect_uris":["org.example.app:/cb"]}`,
			redir, `must be the client_uri host reversed ("com.example")`},
		{"native scheme prefix without dot", `{"application_type":"native","client_uri":"https://example.com/","redirect_uris":["com.examplehack:/cb"]}`,
			redir, "private-use scheme must be"},
		{"native scheme of the parent host", `{"application_type":"native","client_uri":"https://app.example.com/","redirect_uris":["com.example:/cb"]}`,
			redir, "private-use scheme must be"},
		{"native undotted scheme", `{"application_type":"native","client_uri":"https://example.com/","redirect_uris":["myapp:/cb"]}`,
			redir, "is neither http on a loopback host nor a private-use scheme URI such as \"com.example:/callback\""},
		{"native scheme with authority", `{"application_type":"native","client_uri":"https://example.com/","redirect_uris":["com.example.app://cb"]}`,
			redir, "is neither"},
		{"native localhost look-alike", `{"application_type":"native","client_uri":"https://example.com/","redirect_uris":["http://localhost.evil.test/cb"]}`,
			redir, "uses http"},
		{"native https on another host", `{"application_type":"native","client_uri":"https://example.com/","redirect_uris":["https://evil.test/cb"]}`,
			redir, "must be on the client_uri host"},

		// Enumerations and coherence.
		{"application_type", `{` + web + `,"application_type":"desktop"}`, meta, `application_type must be "web" or "native", not "desktop"`},
		{"auth method", `{` + web + `,"token_endpoint_auth_method":"tls_client_auth"}`, meta, `token_endpoint_auth_method "tls_client_auth" is not supported`},
		{"implicit grant", `{` + web + `,"grant_types":["authorization_code","implicit"]}`, meta, `grant_type "implicit" is not supported`},
		{"password grant", `{` + web + `,"grant_types":["password"],"response_types":[]}`, meta, `grant_type "password" is not supported`},
		{"token response type", `{` + web + `,"response_types":["code","token"]}`, meta, `response_type "token" is not supported`},
		{"hybrid response type", `{` + web + `,"response_types":["code id_token"]}`, meta, `response_type "code id_token" is not supported`},
		{"code without authorization_code", `{` + web + `,"grant_types":["client_credentials"],"response_types":["code"]}`,
			meta, `response_type "code" requires the authorization_code grant_type`},
		{"authorization_code without code", `{` + web + `,"response_types":[]}`, meta, `the authorization_code grant_type requires the response_type "code"`},
		{"too many grant types", `{` + web + `,"grant_types":[` + strings.Repeat(`"refresh_token",`, MaxListLength) + `"authorization_code"]}`, meta, "grant_types has 11 entries"},

		// Client authentication.
		{"public client_credentials", `{"client_uri":"https://example.com/","grant_types":["client_credentials"],"token_endpoint_auth_method":"none"}`,
			meta, "client_credentials grant_type requires client authentication"},
		{"private_key_jwt without keys", `{` + web + `,"token_endpoint_auth_method":"private_key_jwt"}`, meta, "requires jwks or jwks_uri"},
		{"jwks and jwks_uri", `{` + web + `,"token_endpoint_auth_method":"private_key_jwt","jwks":{"keys":[{}]},"jwks_uri":"https://example.com/jwks"}`,
			meta, "jwks and jwks_uri are mutually exclusive"},
		{"jwks without keys", `{` + web + `,"token_endpoint_auth_method":"private_key_jwt","jwks":{"keys":[]}}`, meta, "jwks must be a JSON Web Key Set"},
		{"jwks with a null key", `{` + web + `,"token_endpoint_auth_method":"private_key_jwt","jwks":{"keys":[null]}}`, meta, "jwks must be a JSON Web Key Set"},
		{"private_key_jwt with HS256", `{` + web + `,"token_endpoint_auth_method":"private_key_jwt","jwks_uri":"https://example.com/j","token_endpoint_auth_signing_alg":"HS256"}`,
			meta, `token_endpoint_auth_signing_alg "HS256" is not supported with private_key_jwt`},
		{"private_key_jwt with none", `{` + web + `,"token_endpoint_auth_method":"private_key_jwt","jwks_uri":"https://example.com/j","token_endpoint_auth_signing_alg":"none"}`,
			meta, `token_endpoint_auth_signing_alg "none" is not supported`},
		{"client_secret_jwt with RS256", `{` + web + `,"token_endpoint_auth_method":"client_secret_jwt","token_endpoint_auth_signing_alg":"RS256"}`,
			meta, `token_endpoint_auth_signing_alg "RS256" is not supported with client_secret_jwt`},
		{"signing alg without a jwt method", `{` + web + `,"token_endpoint_auth_signing_alg":"RS256"}`, meta, "only used with client_secret_jwt and private_key_jwt"},
		{"id token alg none", `{` + web + `,"id_token_signed_response_alg":"none"}`, meta, `id_token_signed_response_alg "none" is not supported`},
		{"userinfo alg HS256", `{` + web + `,"userinfo_signed_response_alg":"HS256"}`, meta, `userinfo_signed_response_alg "HS256" is not supported`},

		// Sizes and text.
		{"client_name too long", `{` + web + `,"client_name":"` + strings.Repeat("n", MaxStringLength+1) + `"}`, meta, "client_name has a value longer than 2048"},
		{"client_name control character", `{` + web + `,"client_name":"Example\u0007"}`, meta, "client_name must be UTF-8 text"},
		{"client_name bidi override", `{` + web + `,"client_name":"Example\u202egnp.exe"}`, meta, "client_name must be UTF-8 text"},
		{"too many contacts", `{` + web + `,"contacts":[` + strings.Repeat(`"a@example.com",`, MaxContacts) + `"b@example.com"]}`, meta, "contacts has 11 entries"},
		{"empty contact", `{` + web + `,"contacts":[""]}`, meta, "contacts must be non-empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeValidate(tt.doc, Options{})
			if err == nil {
				t.Fatalf("Validate succeeded: %+v", got)
			}
			oe, ok := errors.AsType[*errs.Error](err)
			if !ok || oe.Code == "" {
				t.Fatalf("error %v is not an OAuth error", err)
			}
			if oe.Code != tt.wantCode {
				t.Errorf("code = %q, want %q (%s)", oe.Code, tt.wantCode, oe.Public)
			}
			if !strings.Contains(oe.Public, tt.wantDesc) {
				t.Errorf("description = %q, want it to contain %q", oe.Public, tt.wantDesc)
			}
			if errs.KindOf(err) != errs.KindInvalid {
				t.Errorf("kind = %v, want invalid", errs.KindOf(err))
			}
		})
	}
}

// Without AllowInsecure, the development-only URIs are rejected.
func TestAllowInsecure(t *testing.T) {
	tests := []struct {
		name string
		doc  string
	}{
		{"http localhost client", `{"client_uri":"http://localhost:8080/","redirect_uris":["http://localhost:3000/cb"]}`},
		{"https loopback client", `{"client_uri":"https://127.0.0.1/","redirect_uris":["https://127.0.0.1/cb"]}`},
		{"port on client_uri", `{"client_uri":"https://example.com:8443/","redirect_uris":["https://example.com:8443/cb"]}`},
		{"web loopback redirect", `{"client_uri":"https://example.com/","redirect_uris":["http://127.0.0.1:3000/cb"]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := decodeValidate(tt.doc, Options{}); err == nil {
				t.Error("accepted without AllowInsecure")
			}
		})
	}
	// The host rule, public suffixes and URI hygiene still apply.
	for _, doc := range []string{
		`{"client_uri":"http://localhost:8080/","redirect_uris":["http://127.0.0.1:3000/cb"]}`,
		`{"client_uri":"https://co.uk/","redirect_uris":["https://co.uk/cb"]}`,
		`{"client_uri":"http://example.com/","redirect_uris":["https://example.com/cb"]}`,
		`{"client_uri":"https://example.com/","redirect_uris":["https://example.com/cb#x"]}`,
	} {
		if _, err := decodeValidate(doc, Options{AllowInsecure: true}); err == nil {
			t.Errorf("AllowInsecure accepted %s", doc)
		}
	}
}

func TestValidateNormalises(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want Metadata
	}{
		{"defaults", `{"client_uri":"https://example.com/","redirect_uris":["https://example.com/cb"]}`, Metadata{
			RedirectURIs: []string{"https://example.com/cb"}, ResponseTypes: []string{"code"},
			GrantTypes: []string{"authorization_code"}, ApplicationType: "web", ClientURI: "https://example.com/",
			TokenEndpointAuthMethod: "client_secret_basic",
		}},
		{"response types follow grant types", `{"client_uri":"https://example.com/","grant_types":["client_credentials"]}`, Metadata{
			ResponseTypes: []string{}, GrantTypes: []string{"client_credentials"}, ApplicationType: "web",
			ClientURI: "https://example.com/", TokenEndpointAuthMethod: "client_secret_basic",
		}},
		{"duplicates removed and empty lists dropped", `{"client_uri":"https://example.com/",
			"redirect_uris":["https://example.com/b","https://example.com/a","https://example.com/b"],
			"grant_types":["refresh_token","authorization_code","refresh_token"],"response_types":["code","code"],
			"contacts":[],"application_type":"native","token_endpoint_auth_method":"none"}`, Metadata{
			RedirectURIs:  []string{"https://example.com/b", "https://example.com/a"},
			ResponseTypes: []string{"code"}, GrantTypes: []string{"refresh_token", "authorization_code"},
			ApplicationType: "native", ClientURI: "https://example.com/", TokenEndpointAuthMethod: "none",
		}},
		{"jwks compacted", `{"client_uri":"https://example.com/","redirect_uris":["https://example.com/cb"],
			"token_endpoint_auth_method":"private_key_jwt","jwks": { "keys" : [ {"kty": "EC"} ] }}`, Metadata{
			RedirectURIs: []string{"https://example.com/cb"}, ResponseTypes: []string{"code"},
			GrantTypes: []string{"authorization_code"}, ApplicationType: "web", ClientURI: "https://example.com/",
			TokenEndpointAuthMethod: "private_key_jwt", JWKS: json.RawMessage(`{"keys":[{"kty":"EC"}]}`),
		}},
		{"scope sorted, spaces and duplicates removed", `{"client_uri":"https://example.com/","grant_types":["client_credentials"],
			"scope":" write:stats  read:stats write:stats"}`, Metadata{
			ResponseTypes: []string{}, GrantTypes: []string{"client_credentials"}, ApplicationType: "web",
			ClientURI: "https://example.com/", TokenEndpointAuthMethod: "client_secret_basic", Scope: "read:stats write:stats",
		}},
		{"null jwks is absent", `{"client_uri":"https://example.com/","redirect_uris":["https://example.com/cb"],"jwks":null}`, Metadata{
			RedirectURIs: []string{"https://example.com/cb"}, ResponseTypes: []string{"code"},
			GrantTypes: []string{"authorization_code"}, ApplicationType: "web", ClientURI: "https://example.com/",
			TokenEndpointAuthMethod: "client_secret_basic",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeValidate(tt.doc, Options{})
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if !equalMetadata(got, tt.want) {
				t.Errorf("Validate =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

// Validate never shares slices with its argument.
func TestValidateCopies(t *testing.T) {
	m := Metadata{ClientURI: "https://example.com/", RedirectURIs: []string{"https://example.com/cb"}, Contacts: []string{"a@example.com"}}
	got, err := Validate(m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got.RedirectURIs[0], got.Contacts[0] = "changed", "changed"
	if m.RedirectURIs[0] != "https://example.com/cb" || m.Contacts[0] != "a@example.com" {
		t.Error("Validate's result aliases its argument")
	}
}

func TestAuthMethodPredicates(t *testing.T) {
	tests := []struct {
		method             string
		public, usesSecret bool
	}{
		{"", false, true},
		{AuthNone, true, false},
		{AuthClientSecretBasic, false, true},
		{AuthClientSecretPost, false, true},
		{AuthClientSecretJWT, false, true},
		{AuthPrivateKeyJWT, false, false},
	}
	for _, tt := range tests {
		m := Metadata{TokenEndpointAuthMethod: tt.method}
		if m.IsPublic() != tt.public || m.UsesSecret() != tt.usesSecret {
			t.Errorf("%q: IsPublic = %v, UsesSecret = %v; want %v, %v", tt.method, m.IsPublic(), m.UsesSecret(), tt.public, tt.usesSecret)
		}
	}
}

func TestDecodeLimits(t *testing.T) {
	big := `{"client_name":"` + strings.Repeat("x", MaxDocumentBytes) + `"}`
	if _, err := Decode([]byte(big)); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Decode of an oversized document: %v", err)
	}
	// Field names are case-sensitive: a differently cased duplicate cannot
	// override the real field.
	m, err := Decode([]byte(`{"redirect_uris":["https://example.com/cb"],"REDIRECT_URIS":["https://evil.test/cb"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.RedirectURIs, []string{"https://example.com/cb"}) {
		t.Errorf("RedirectURIs = %q", m.RedirectURIs)
	}
}

// equalMetadata compares two Metadata values field by field.
func equalMetadata(a, b Metadata) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y) &&
		(a.ResponseTypes == nil) == (b.ResponseTypes == nil) &&
		(a.RedirectURIs == nil) == (b.RedirectURIs == nil) &&
		(a.Contacts == nil) == (b.Contacts == nil)
}

// FuzzValidate checks that Decode and Validate never panic, that what
// Validate accepts is stable under Validate and a JSON round trip, and that
// every accepted redirect URI stays within the rules.
func FuzzValidate(f *testing.F) {
	for _, s := range []string{
		`{"client_uri":"https://example.com/","redirect_uris":["https://example.com/cb"]}`,
		`{"application_type":"native","client_uri":"https://example.com/","redirect_uris":["com.example.app:/cb","http://127.0.0.1/cb"],"token_endpoint_auth_method":"none"}`,
		`{"client_uri":"https://example.com/","grant_types":["client_credentials"],"token_endpoint_auth_method":"private_key_jwt","jwks":{"keys":[{}]}}`,
		`{"client_uri":"http://localhost:8080/","redirect_uris":["http://localhost:1/cb"],"contacts":["a"],"logo_uri":"https://localhost/x"}`,
		`{"redirect_uris":"x"}`, `[]`, `null`, `{"jwks":[1]}`,
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, insecure bool) {
		opts := Options{AllowInsecure: insecure}
		m, err := Decode(data)
		if err != nil {
			return
		}
		got, err := Validate(m, opts)
		if err != nil {
			oe, ok := errors.AsType[*errs.Error](err)
			if !ok || (oe.Code != oautherr.InvalidClientMetadata && oe.Code != oautherr.InvalidRedirectURI) {
				t.Fatalf("Validate error %v is not an OAuth registration error", err)
			}
			return
		}
		again, err := Validate(got, opts)
		if err != nil || !equalMetadata(got, again) {
			t.Fatalf("Validate is not idempotent: %+v then %+v, %v", got, again, err)
		}
		doc, err := json.Marshal(got)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		round, err := decodeValidate(string(doc), opts)
		if err != nil || !equalMetadata(got, round) {
			t.Fatalf("JSON round trip changed %s: %+v, %v", doc, round, err)
		}
		if got.ClientURI == "" || got.ApplicationType == "" || got.TokenEndpointAuthMethod == "" {
			t.Fatalf("accepted metadata without defaults: %+v", got)
		}
		if len(got.RedirectURIs) == 0 && slices.Contains(got.GrantTypes, GrantAuthorizationCode) {
			t.Fatalf("accepted authorization_code without redirect URIs: %s", doc)
		}
		if got.IsPublic() && slices.Contains(got.GrantTypes, GrantClientCredentials) {
			t.Fatalf("accepted a public client_credentials client: %s", doc)
		}
		for _, r := range got.RedirectURIs {
			u, err := redirect.ParseRegistered(r)
			if err != nil {
				t.Fatalf("accepted redirect URI %q that ParseRegistered rejects: %v", r, err)
			}
			if k := redirect.Classify(u); k == redirect.Other || (k != redirect.HTTPS && got.ApplicationType == Web && !insecure) {
				t.Fatalf("accepted a %v redirect URI %q for a %s client", k, r, got.ApplicationType)
			}
		}
	})
}

package authorize

import (
	"encoding/json"
	"net/http"

	"gatehouse.dev/services/authorize/internal/clientmeta"
)

// metadata is the authorization server metadata (RFC 8414, OpenID Connect
// Discovery, MSC2965). Matrix clients read it to find every endpoint.
func (s *Service) metadata() map[string]any {
	authMethods := []string{"none", "client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt"}
	return map[string]any{
		"issuer":                                           s.cfg.Issuer,
		"authorization_endpoint":                           s.endpoint("authorize"),
		"token_endpoint":                                   s.endpoint("oauth2/token"),
		"device_authorization_endpoint":                    s.endpoint("oauth2/device"),
		"registration_endpoint":                            s.endpoint("oauth2/registration"),
		"introspection_endpoint":                           s.endpoint("oauth2/introspect"),
		"revocation_endpoint":                              s.endpoint("oauth2/revoke"),
		"userinfo_endpoint":                                s.endpoint("oauth2/userinfo"),
		"jwks_uri":                                         s.endpoint("oauth2/keys.json"),
		"account_management_uri":                           s.endpoint("account"),
		"end_session_endpoint":                             s.endpoint("oauth2/logout"),
		"response_types_supported":                         []string{"code"},
		"response_modes_supported":                         []string{"query", "fragment"},
		"grant_types_supported":                            clientmeta.GrantTypes(),
		"code_challenge_methods_supported":                 []string{"S256"},
		"token_endpoint_auth_methods_supported":            authMethods,
		"token_endpoint_auth_signing_alg_values_supported": []string{"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"},
		"revocation_endpoint_auth_methods_supported":       authMethods,
		"introspection_endpoint_auth_methods_supported":    []string{"client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt"},
		"scopes_supported":                                 []string{"openid", "email", "urn:matrix:client:api:*", "urn:matrix:org.matrix.msc2967.client:api:*", "urn:synapse:admin:*"},
		"claims_supported":                                 []string{"iss", "sub", "aud", "azp", "iat", "exp", "auth_time", "nonce", "at_hash", "amr", "acr", "username", "email"},
		"acr_values_supported":                             []string{"urn:gatehouse:acr:mfa", "urn:gatehouse:acr:sfa"},
		"subject_types_supported":                          []string{"public"},
		"id_token_signing_alg_values_supported":            s.cfg.SigningAlgorithms,
		"userinfo_signing_alg_values_supported":            []string{"none"},
		"display_values_supported":                         []string{"page"},
		"prompt_values_supported":                          []string{"none", "login", "consent", "create"},
		"request_parameter_supported":                      false,
		"request_uri_parameter_supported":                  false,
		"claims_parameter_supported":                       false,
		"authorization_response_iss_parameter_supported":   true,
		"account_management_actions_supported": []string{
			"org.matrix.profile", "org.matrix.devices_list", "org.matrix.device_view", "org.matrix.device_delete",
			"org.matrix.account_deactivate", "org.matrix.cross_signing_reset",
			"org.matrix.sessions_list", "org.matrix.session_view", "org.matrix.session_end",
		},
	}
}

func (s *Service) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_ = json.NewEncoder(w).Encode(s.metadata())
}

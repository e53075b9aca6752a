package authorize

import (
	"net/http"

	"gatehouse.dev/platform/httpx"
)

// RegisterHTTP adds the service's public routes. The OAuth endpoints return
// their answers or errors, written by httpx.OAuth.
func (s *Service) RegisterHTTP(mux *http.ServeMux) {
	mux.HandleFunc("/.well-known/openid-configuration", s.handleDiscovery)
	mux.HandleFunc("/.well-known/oauth-authorization-server", s.handleDiscovery)
	mux.HandleFunc("/_matrix/client/v1/auth_metadata", s.handleDiscovery) // MSC2965, for clients asking the homeserver's host
	mux.HandleFunc("/_matrix/client/unstable/org.matrix.msc2965/auth_metadata", s.handleDiscovery)
	mux.Handle("/oauth2/registration", httpx.OAuth(s.logger, s.handleRegister))
	mux.HandleFunc("/authorize", s.handleAuthorize)
	mux.Handle("/oauth2/device", httpx.OAuth(s.logger, s.handleDeviceAuthorization))
}

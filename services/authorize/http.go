package authorize

import "net/http"

// RegisterHTTP adds the service's public routes.
func (s *Service) RegisterHTTP(mux *http.ServeMux) {
	mux.HandleFunc("/.well-known/openid-configuration", s.handleDiscovery)
	mux.HandleFunc("/.well-known/oauth-authorization-server", s.handleDiscovery)
	mux.HandleFunc("/_matrix/client/v1/auth_metadata", s.handleDiscovery) // MSC2965, for clients asking the homeserver's host
	mux.HandleFunc("/_matrix/client/unstable/org.matrix.msc2965/auth_metadata", s.handleDiscovery)
	mux.HandleFunc("/oauth2/registration", s.handleRegister)
	mux.HandleFunc("/authorize", s.handleAuthorize)
	mux.HandleFunc("/oauth2/device", s.handleDeviceAuthorization)
}

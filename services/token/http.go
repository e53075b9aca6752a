package token

import (
	"encoding/json"
	"net/http"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/httpx"
)

// RegisterHTTP adds the service's public routes. The OAuth endpoints return
// their answers or errors, written by httpx.OAuth; the compatibility API's
// by httpx.Matrix.
func (s *Service) RegisterHTTP(mux *http.ServeMux) {
	mux.Handle("/oauth2/token", httpx.OAuth(s.logger, s.handleToken))           // grants.go
	mux.Handle("/oauth2/introspect", httpx.OAuth(s.logger, s.handleIntrospect)) // introspect.go
	mux.Handle("/oauth2/revoke", httpx.OAuth(s.logger, s.handleRevoke))         // revoke.go
	mux.Handle("/oauth2/userinfo", httpx.OAuth(s.logger, s.handleUserinfo))     // userinfo.go
	mux.HandleFunc("GET /oauth2/keys.json", s.handleJWKS)
	s.registerCompat(mux) // /_matrix/client/{version}/login, logout, logout/all, refresh (compat.go)
}

// handleJWKS publishes the public signing keys, including retired ones whose
// tokens may still be in use.
func (s *Service) handleJWKS(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_ = json.NewEncoder(w).Encode(s.keys.JWKS())
}

func timestamp(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

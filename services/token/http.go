package token

import (
	"encoding/json"
	"net/http"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"
)

// RegisterHTTP adds the service's public routes.
func (s *Service) RegisterHTTP(mux *http.ServeMux) {
	mux.HandleFunc("/oauth2/token", s.handleToken)
	mux.HandleFunc("/oauth2/introspect", s.handleIntrospect)
	mux.HandleFunc("/oauth2/revoke", s.handleRevoke)
	mux.HandleFunc("/oauth2/userinfo", s.handleUserinfo)
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

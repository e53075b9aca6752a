package httpx

import (
	"encoding/json"
	"net/http"
)

// WriteJSON writes v as a JSON response with the given status, uncacheable:
// OAuth responses carry tokens and must never be stored (RFC 6749 §5.1).
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// OAuthError is the JSON body of an OAuth 2.0 error response (RFC 6749 §5.2, RFC 7591 §3.2.2).
type OAuthError struct {
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// WriteOAuthError writes an OAuth error response. A 401 carries the
// WWW-Authenticate challenge RFC 6749 §5.2 asks for, unless the handler set
// its own (a Bearer challenge for a protected resource, RFC 6750 §3).
func WriteOAuthError(w http.ResponseWriter, status int, code, description string) {
	if status == http.StatusUnauthorized && w.Header().Get("WWW-Authenticate") == "" {
		w.Header().Set("WWW-Authenticate", `Basic realm="gatehouse", error="`+code+`"`)
	}
	WriteJSON(w, status, OAuthError{Code: code, Description: description})
}

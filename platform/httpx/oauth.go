package httpx

import (
	"encoding/json"
	"net/http"
	"strings"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/oautherr"
)

// WriteJSON writes v as a JSON response with the given status, uncacheable:
// OAuth responses carry tokens and must never be stored (RFC 6749 §5.1).
func WriteJSON(w http.ResponseWriter, status int, v any) {
	setJSONHeaders(w.Header())
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteRawJSON writes body, JSON already encoded (by AppendJSONString and
// its kind, on a hot path), as WriteJSON writes a value: uncacheable.
func WriteRawJSON(w http.ResponseWriter, status int, body []byte) {
	setJSONHeaders(w.Header())
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// setJSONHeaders sets the headers of WriteJSON: canonical keys and values
// shared by every response (see setSecurityHeaders), no allocation.
func setJSONHeaders(h http.Header) {
	h["Content-Type"] = jsonType
	h["Cache-Control"] = noStore
	h["Pragma"] = noCache
}

// The values setJSONHeaders sets.
var (
	jsonType = []string{"application/json"}
	noStore  = []string{"no-store"}
	noCache  = []string{"no-cache"}
)

// AppendJSONString appends s as a JSON string exactly as encoding/json
// writes it (HTML's <, > and & escaped, invalid UTF-8 replaced): printable
// ASCII is copied, anything else encoded by encoding/json.
func AppendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			// A copy: s itself does not escape, so neither does what
			// holds it (a string always encodes).
			b, _ := json.Marshal(strings.Clone(s))
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// OAuthError is the JSON body of an OAuth 2.0 error response (RFC 6749 §5.2, RFC 7591 §3.2.2).
type OAuthError struct {
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// WriteOAuthError answers err as an OAuth 2.0 error (RFC 6749 §5.2, RFC
// 6750 §3.1, RFC 7009 §2.2.1, RFC 7591 §3.2.2, RFC 7662 §2.3, RFC 8628
// §3.5): the error's OAuth code (oautherr.Of) and public message, with the
// status the RFCs give the code — 400 for the client's mistakes, 401 for
// invalid_client and invalid_token — or else its kind's (500 server_error,
// 503 temporarily_unavailable with Retry-After, 429 when rate limited). A
// status set with WithStatus comes first. A 401 carries a challenge in the
// scheme the request authenticated with (Bearer, else Basic) unless the
// handler set its own (RFC 6750 §3).
func WriteOAuthError(w http.ResponseWriter, r *http.Request, err error) {
	code := oautherr.Of(err, "")
	status := statusOf(err)
	if status == 0 {
		status = oautherr.Status(code)
	}
	if status == 0 {
		status = errs.KindOf(err).HTTPStatus()
	}
	h := w.Header()
	if status == http.StatusUnauthorized && h.Get("WWW-Authenticate") == "" {
		h.Set("WWW-Authenticate", challengeScheme(r)+` realm="gatehouse", error="`+code+`"`)
	}
	setRetryAfter(h, status, err)
	WriteJSON(w, status, OAuthError{Code: code, Description: errs.PublicMessage(err)})
}

// challengeScheme is the authentication scheme the request used, Bearer or
// Basic (also when it used none, as RFC 6749 §2.3.1 clients must support it).
func challengeScheme(r *http.Request) string {
	if r != nil {
		if scheme, _, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
			return "Bearer"
		}
	}
	return "Basic"
}

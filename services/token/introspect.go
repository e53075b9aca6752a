package token

import (
	"context"
	"crypto/subtle"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"gatehouse.dev/platform/caller"
	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/httpx"
	"gatehouse.dev/platform/oautherr"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
	"gatehouse.dev/services/token/internal/tokenfmt"
)

// introspection is the answer about one token. Inactive tokens carry nothing.
type introspection struct {
	Active    bool
	Info      tokenInfo
	TokenType string
	// Compat marks a token of a compat session (mct_, mcr_).
	Compat bool
	// Personal marks a personal access token (mpt_).
	Personal bool
}

// introspect looks a token up without writing anything: malformed and forged
// tokens are refused by their MAC before any lookup, known tokens are
// answered from memory. A live token's session is noted as used, in memory
// only (activity.go); the caller is the homeserver, so no address is noted.
// A refresh token is looked up only when refresh is set (a viewer who may
// see one): it costs a read of the database and of its session's event
// (index.lookupRefresh), never done for the homeserver's questions.
func (s *Service) introspect(ctx context.Context, token string, refresh bool) (introspection, error) {
	kind, err := s.parseToken(token)
	if err != nil {
		return introspection{}, nil
	}
	var (
		tokenType string
		info      tokenInfo
		live      bool
	)
	switch kind {
	case tokenfmt.AccessToken, tokenfmt.CompatAccessToken, tokenfmt.PersonalToken:
		// Imported tokens (Synapse's formats) carry no MAC: an unknown one is
		// simply inactive, without a catch-up with the stream (index.lookupImported).
		tokenType = "access_token"
		info, live, err = s.index.lookupKey(ctx, tokenfmt.Hash(token), tokenfmt.Imported(token) == 0)
	case tokenfmt.RefreshToken, tokenfmt.CompatRefreshToken:
		if !refresh {
			return introspection{}, nil
		}
		tokenType = "refresh_token" // not held in memory (index.lookupRefresh)
		info, live, err = s.index.lookupRefresh(ctx, tokenfmt.HashString(token))
	default:
		return introspection{}, nil
	}
	if err != nil || !live {
		return introspection{}, err
	}
	s.activity.Touch(info.SessionID, info.UserID, "", s.now())
	compat := kind == tokenfmt.CompatAccessToken || kind == tokenfmt.CompatRefreshToken
	return introspection{Active: true, Info: info, TokenType: tokenType, Compat: compat, Personal: kind == tokenfmt.PersonalToken}, nil
}

// matrixScopeTwins adds the stable or unstable twin of every Matrix scope, as
// homeservers may check either form: each scope once, in the order first
// seen, a twin right after its scope. Built in one string, as it is on the
// hot path (every active introspection).
func matrixScopeTwins(scope string) string {
	const stable, unstable = "urn:matrix:client:", "urn:matrix:org.matrix.msc2967.client:"
	// A scope is prefix+rest, prefix one of the two or "" for any other
	// scope: one way to write each, so equal parts are equal scopes.
	type part struct{ prefix, rest string }
	var inline [16]part
	out := inline[:0]
	add := func(prefix, rest string) {
		for _, p := range out {
			if p.prefix == prefix && p.rest == rest {
				return
			}
		}
		out = append(out, part{prefix, rest})
	}
	for s := range strings.FieldsSeq(scope) {
		if rest, ok := strings.CutPrefix(s, stable); ok {
			add(stable, rest)
			add(unstable, rest)
		} else if rest, ok := strings.CutPrefix(s, unstable); ok {
			add(unstable, rest)
			add(stable, rest)
		} else {
			add("", s)
		}
	}
	n := 0
	for _, p := range out {
		n += len(p.prefix) + len(p.rest) + 1
	}
	var b strings.Builder
	b.Grow(n)
	for i, p := range out {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(p.prefix)
		b.WriteString(p.rest)
	}
	return b.String()
}

// viewer is who asks about a token. Introspection answers only what the
// viewer may use (issue 9): a homeserver serves requests with access tokens
// and nothing else, so a refresh token is never active to it — else a
// refresh token would pass for an access token that never expires; a client
// may learn of its own refresh tokens; an administrator of everything.
type viewer struct {
	// homeserver: the homeserver (its shared secret, or its gRPC credential).
	homeserver bool
	// clientID: an authenticated client.
	clientID string
	// admin: the admin CLI over gRPC.
	admin bool
}

// viewerOf is the viewer of a gRPC call: the homeserver, an administrator,
// or — for any other caller — as little as the homeserver sees.
func viewerOf(ctx context.Context) viewer {
	if id, ok := caller.From(ctx); ok && id.Is(caller.Admin) {
		return viewer{admin: true}
	}
	return viewer{homeserver: true}
}

// sees reports whether the viewer may learn that a live token is active.
func (v viewer) sees(res introspection) bool {
	switch {
	case !res.Active:
		return false
	case res.TokenType == "access_token" || v.admin:
		return true
	case v.homeserver:
		return false
	default: // a refresh token, asked about by a client: only its own
		return v.clientID != "" && v.clientID == res.Info.ClientID
	}
}

// introspectFor introspects a token for a viewer: {"active": false} for what
// it may not see.
func (s *Service) introspectFor(ctx context.Context, token string, v viewer) (introspection, error) {
	res, err := s.introspect(ctx, token, !v.homeserver)
	if err != nil || !v.sees(res) {
		return introspection{}, err
	}
	return res, nil
}

// handleIntrospect is RFC 7662 introspection, authenticated by a confidential
// client or by the homeserver's shared secret as Synapse sends it. The
// token_type_hint is ignored (§2.1 allows it): the token says what it is.
func (s *Service) handleIntrospect(w http.ResponseWriter, r *http.Request) (any, error) {
	began := time.Now()
	form, err := httpx.ReadParams(w, r)
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	v := viewer{homeserver: true}
	if !s.homeserverAuthorized(r) {
		// A public client proves nothing by naming its client_id (RFC 7662 §2.1).
		c, err := s.clientAuth.Authenticate(ctx, r, form.Values())
		if errs.KindOf(err).ServerFault() && err != nil {
			return nil, err
		}
		if err != nil || c.Meta.AuthMethod == "none" {
			return nil, oautherr.New(oautherr.InvalidClient, "introspection needs client authentication or the homeserver's secret")
		}
		v = viewer{clientID: c.ID}
	}
	token := form.Get("token")
	if token == "" {
		return nil, oautherr.New(oautherr.InvalidRequest, "token is required")
	}
	res, err := s.introspectFor(ctx, token, v)
	s.measures.introspected(ctx, v, "http", res, err, began)
	if err != nil {
		return nil, errs.Classify(err, errs.KindUnavailable, "introspection is unavailable right now")
	}
	if !res.Active {
		httpx.WriteRawJSON(w, http.StatusOK, inactiveJSON)
		return nil, nil
	}
	i := res.Info
	body := introspectionBody{
		Active: true, Scope: matrixScopeTwins(i.Scope), ClientID: i.ClientID, TokenType: res.TokenType,
		IssuedAt: i.IssuedAt.Unix(), Sub: i.UserID,
	}
	if i.UserID != "" {
		body.Username = i.Username
	}
	if !i.ExpiresAt.IsZero() {
		body.tokenExpiry = &tokenExpiry{At: i.ExpiresAt.Unix(), In: int64(time.Until(i.ExpiresAt).Seconds())}
	}
	// MAS's contract: a compat session's device always, an OAuth session's to
	// a homeserver that says it reads the field; a personal token's always
	// too (its device is in its scope as well). The header's name is written
	// in its canonical form, which Get looks up without allocating.
	if i.DeviceID != "" && (res.Compat || res.Personal || r.Header.Get("X-Mas-Supports-Device-Id") == "1") {
		body.DeviceID = i.DeviceID
	}
	buf := answerBuffers.Get().(*[]byte)
	*buf = body.appendJSON((*buf)[:0])
	httpx.WriteRawJSON(w, http.StatusOK, *buf) // copied into the connection's buffer
	answerBuffers.Put(buf)
	return nil, nil
}

// answerBuffers hold the answers of HTTP introspection while they are written.
var answerBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// inactiveJSON is the answer about a token the viewer may not see.
var inactiveJSON = []byte("{\"active\":false}\n")

// introspectionBody is the JSON answer of HTTP introspection (RFC 7662
// §2.2), as encoding/json encodes it; appendJSON writes the same bytes
// without reflection, as this is the hot path. An inactive token's is
// {"active":false}.
type introspectionBody struct {
	Active    bool   `json:"active"`
	Scope     string `json:"scope,omitempty"`
	ClientID  string `json:"client_id,omitempty"`
	TokenType string `json:"token_type,omitempty"`
	IssuedAt  int64  `json:"iat,omitempty"`
	Sub       string `json:"sub,omitempty"`
	Username  string `json:"username,omitempty"`
	*tokenExpiry
	DeviceID string `json:"device_id,omitempty"`
}

// tokenExpiry is when a token that expires does, both ways RFC 7662 and MAS say
// it; expires_in may be 0 in its last second.
type tokenExpiry struct {
	At int64 `json:"exp"`
	In int64 `json:"expires_in"`
}

// appendJSON appends the body as encoding/json's Encoder writes it, the
// same fields in the same order, a newline last.
func (b *introspectionBody) appendJSON(dst []byte) []byte {
	dst = append(dst, `{"active":`...)
	dst = strconv.AppendBool(dst, b.Active)
	dst = appendStringField(dst, "scope", b.Scope)
	dst = appendStringField(dst, "client_id", b.ClientID)
	dst = appendStringField(dst, "token_type", b.TokenType)
	if b.IssuedAt != 0 {
		dst = strconv.AppendInt(append(dst, `,"iat":`...), b.IssuedAt, 10)
	}
	dst = appendStringField(dst, "sub", b.Sub)
	dst = appendStringField(dst, "username", b.Username)
	if b.tokenExpiry != nil {
		dst = strconv.AppendInt(append(dst, `,"exp":`...), b.At, 10)
		dst = strconv.AppendInt(append(dst, `,"expires_in":`...), b.In, 10)
	}
	dst = appendStringField(dst, "device_id", b.DeviceID)
	return append(dst, "}\n"...)
}

// appendStringField appends ,"name":value unless value is empty (omitempty).
func appendStringField(dst []byte, name, value string) []byte {
	if value == "" {
		return dst
	}
	dst = append(append(append(dst, `,"`...), name...), `":`...)
	return httpx.AppendJSONString(dst, value)
}

// homeserverAuthorized reports whether the request carries the homeserver's
// shared secret as a bearer token (compared in constant time).
func (s *Service) homeserverAuthorized(r *http.Request) bool {
	if s.cfg.MatrixSecret == "" {
		return false
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.MatrixSecret)) == 1
}

// toProto is the gRPC form of an introspection.
func (res introspection) toProto() *tokenv1.IntrospectResponse {
	if !res.Active {
		return &tokenv1.IntrospectResponse{}
	}
	i := res.Info
	out := &tokenv1.IntrospectResponse{
		Active: true, Scope: matrixScopeTwins(i.Scope), ClientId: i.ClientID, Sub: i.UserID, Username: i.Username,
		DeviceId: i.DeviceID, TokenType: res.TokenType, Iat: timestamp(i.IssuedAt), SessionId: i.SessionID,
	}
	if !i.ExpiresAt.IsZero() {
		out.Exp = timestamp(i.ExpiresAt)
	}
	return out
}

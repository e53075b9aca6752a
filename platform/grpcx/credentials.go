package grpcx

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	"gatehouse.dev/platform/caller"
)

// Metadata keys Gatehouse's gRPC calls carry.
const (
	// AuthorizationHeader carries "Bearer <credential>": a credential derived
	// from the internal secret, or the homeserver's matrix.secret.
	AuthorizationHeader = "authorization"
	// CallerHeader names which identity of a client certificate that holds
	// several a call is made as (mutual TLS; see peerIdentities).
	CallerHeader = "gatehouse-caller"
	// BrowserSessionHeader carries the browser session (the cookie's secret)
	// of the person the web service acts for; the callee verifies it.
	BrowserSessionHeader = "gatehouse-browser-session"
)

// credentialPrefix starts every credential derived from the internal secret.
const credentialPrefix = "ghs."

// DeriveCredential returns the bearer credential of a named caller ("web",
// "admin", ...) under the internal secret: "ghs.<name>.<mac>", where mac is
// HMAC-SHA256 of the name under the secret. Every holder of the secret can
// derive every credential: the secret is one trust domain (mutual TLS gives
// each service an identity of its own).
func DeriveCredential(secret []byte, name string) string {
	return credentialPrefix + name + "." + base64.RawURLEncoding.EncodeToString(credentialMAC(secret, name))
}

func credentialMAC(secret []byte, name string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("gatehouse grpc credential v1\x00" + name))
	return m.Sum(nil)
}

// checkDerived returns the caller a derived credential stands for, or false
// when it is not one that the secret made.
func checkDerived(secret []byte, credential string) (caller.Kind, bool) {
	rest, ok := strings.CutPrefix(credential, credentialPrefix)
	if !ok || len(secret) == 0 {
		return 0, false
	}
	name, mac64, ok := strings.Cut(rest, ".")
	if !ok {
		return 0, false
	}
	kind, known := caller.ByName(name)
	if !known || kind == caller.Homeserver {
		return 0, false
	}
	mac, err := base64.RawURLEncoding.DecodeString(mac64)
	if err != nil || !hmac.Equal(mac, credentialMAC(secret, name)) {
		return 0, false
	}
	return kind, true
}

// constantEqual compares two secrets in time that depends only on their lengths.
func constantEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// bearer is a per-RPC credential: the caller's bearer token and, when it
// has one, its name for a multi-identity client certificate.
type bearer struct {
	name       string // CallerHeader value; "" to send none
	credential string // without "Bearer "; "" to send none
}

// GetRequestMetadata adds the credential to every call.
func (b bearer) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	md := map[string]string{}
	if b.credential != "" {
		md[AuthorizationHeader] = "Bearer " + b.credential
	}
	if b.name != "" {
		md[CallerHeader] = b.name
	}
	return md, nil
}

// RequireTransportSecurity is false: credentials may cross a private network
// without TLS when the deployment chose so (grpc.tls unset).
func (b bearer) RequireTransportSecurity() bool { return false }

var _ credentials.PerRPCCredentials = bearer{}

// WithBrowserSession returns ctx whose outgoing calls carry the browser
// session of the person the web service acts for.
func WithBrowserSession(ctx context.Context, secret string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, BrowserSessionHeader, secret)
}

// WithBearer returns ctx whose outgoing calls carry a bearer token as their
// credential: the admin API forwards the token it was given, which the
// callee's interceptor verifies (Auth.Tokens). Use it on a connection without
// a credential of its own (host.Runtime.DialForwarding).
func WithBearer(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, AuthorizationHeader, "Bearer "+token)
}

// Credential is how a client authenticates its calls.
type Credential struct {
	// Name is the caller's name ("web", "admin", ...); sent with mutual TLS so
	// a certificate holding several identities says which one acts.
	Name string
	// Bearer is a bearer credential (derived from the internal secret, or the
	// homeserver's secret); empty when the client certificate alone identifies
	// the caller.
	Bearer string
}

// ServiceCredential is the credential of the named caller derived from the
// internal secret; with no secret, only the name (mutual TLS identifies it).
func ServiceCredential(secret []byte, name string) (Credential, error) {
	if _, ok := caller.ByName(name); !ok || name == "homeserver" {
		return Credential{}, fmt.Errorf("grpcx: no such caller %q", name)
	}
	c := Credential{Name: name}
	if len(secret) > 0 {
		c.Bearer = DeriveCredential(secret, name)
	}
	return c, nil
}

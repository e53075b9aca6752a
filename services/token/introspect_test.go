package token

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// What each caller of introspection may learn of a live token.
func TestViewerSees(t *testing.T) {
	access := introspection{Active: true, TokenType: "access_token", Info: tokenInfo{ClientID: "app"}}
	refresh := introspection{Active: true, TokenType: "refresh_token", Info: tokenInfo{ClientID: "app"}}
	compatRefresh := introspection{Active: true, TokenType: "refresh_token", Compat: true, Info: tokenInfo{ClientID: compatClientID}}
	tests := []struct {
		name string
		v    viewer
		res  introspection
		want bool
	}{
		{"homeserver, access token", viewer{homeserver: true}, access, true},
		{"homeserver, refresh token", viewer{homeserver: true}, refresh, false},
		{"homeserver, compat refresh token", viewer{homeserver: true}, compatRefresh, false},
		{"its client, refresh token", viewer{clientID: "app"}, refresh, true},
		{"another client, refresh token", viewer{clientID: "other"}, refresh, false},
		{"a client, compat refresh token", viewer{clientID: "app"}, compatRefresh, false},
		{"another client, access token", viewer{clientID: "other"}, access, true},
		{"nobody, refresh token", viewer{}, refresh, false},
		{"administrator, refresh token", viewer{admin: true}, refresh, true},
		{"administrator, inactive", viewer{admin: true}, introspection{}, false},
		{"homeserver, inactive", viewer{homeserver: true}, introspection{}, false},
	}
	for _, tt := range tests {
		if got := tt.v.sees(tt.res); got != tt.want {
			t.Errorf("%s: sees = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// The HTTP introspection answer is written byte for byte as encoding/json
// writes introspectionBody: the fields the e2e tests and homeservers read.
func TestIntrospectionBodyJSON(t *testing.T) {
	for _, b := range []introspectionBody{
		{},
		{Active: true},
		{Active: true, Scope: "openid urn:matrix:client:api:*", ClientID: "01J0CLIENT", TokenType: "access_token", IssuedAt: 1765000000,
			Sub: "01J0USER", Username: "alice", tokenExpiry: &tokenExpiry{At: 1765000300, In: 300}, DeviceID: "ABCDEF"},
		{Active: true, TokenType: "access_token", IssuedAt: -5, tokenExpiry: &tokenExpiry{At: 0, In: 0}},
		{Active: true, TokenType: "refresh_token", ClientID: "c", Username: `<b>"al\ice"</b> & é`, DeviceID: "\u2028\xff"},
		{Active: true, Scope: "openid", Sub: "u", Username: "bob", tokenExpiry: &tokenExpiry{At: 1765000300, In: -1}},
	} {
		var want bytes.Buffer
		if err := json.NewEncoder(&want).Encode(b); err != nil {
			t.Fatal(err)
		}
		if got := b.appendJSON(nil); string(got) != want.String() {
			t.Errorf("appendJSON = %s\nencoding/json: %s", got, want.String())
		}
	}
	if want, _ := json.Marshal(introspectionBody{}); string(inactiveJSON) != string(want)+"\n" {
		t.Errorf("inactiveJSON = %s, want %s", inactiveJSON, want)
	}
}

// Every Matrix scope comes with its twin, each scope once, in order.
func TestMatrixScopeTwins(t *testing.T) {
	const s, u = "urn:matrix:client:", "urn:matrix:org.matrix.msc2967.client:"
	tests := []struct{ scope, want string }{
		{"", ""},
		{"   ", ""},
		{"openid", "openid"},
		{"openid " + s + "api:*", "openid " + s + "api:* " + u + "api:*"},
		{u + "api:* " + s + "device:ABC", u + "api:* " + s + "api:* " + s + "device:ABC " + u + "device:ABC"},
		{s + "api:* " + u + "api:* openid openid", s + "api:* " + u + "api:* openid"},
		{"  openid\t" + s + "guest  ", "openid " + s + "guest " + u + "guest"},
		{"urn:matrix:client: urn:matrix:clientX", "urn:matrix:client: " + u + " urn:matrix:clientX"},
	}
	for _, tt := range tests {
		if got := matrixScopeTwins(tt.scope); got != tt.want {
			t.Errorf("matrixScopeTwins(%q) = %q, want %q", tt.scope, got, tt.want)
		}
	}
	many := strings.Repeat("a ", 40) + strings.Repeat("x"+s+" ", 3)
	if got := matrixScopeTwins(many); got != "a x"+s {
		t.Errorf("matrixScopeTwins(many) = %q", got)
	}
}

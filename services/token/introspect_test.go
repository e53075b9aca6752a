package token

import "testing"

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

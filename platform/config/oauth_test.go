package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestOAuthSection(t *testing.T) {
	good := StaticClient{ClientID: "synapse", ClientSecret: "0123456789abcdefXYZ", AuthMethod: "client_secret_basic", GrantTypes: []string{"client_credentials"}}
	tests := []struct {
		name string
		edit func(*Config)
		want string // substring of the error; empty: valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"a static client", func(c *Config) { c.OAuth.Clients = []StaticClient{good} }, ""},
		{"TTL too short", func(c *Config) { c.OAuth.AccessTokenTTL = time.Second }, "oauth.access_token_ttl"},
		{"activity flush too short", func(c *Config) { c.OAuth.ActivityFlushInterval = 500 * time.Millisecond }, "oauth.activity_flush_interval"},
		{"activity flush too long", func(c *Config) { c.OAuth.ActivityFlushInterval = 11 * time.Minute }, "oauth.activity_flush_interval"},
		{"activity flush unset", func(c *Config) { c.OAuth.ActivityFlushInterval = 0 }, "oauth.activity_flush_interval"},
		{"activity retention too short", func(c *Config) { c.OAuth.ActivityRetention = 3 * time.Hour }, "oauth.activity_retention"},
		{"activity retention 4h", func(c *Config) { c.OAuth.ActivityRetention = 4 * time.Hour }, ""},
		{"activity outlives ended sessions", func(c *Config) {
			c.OAuth.EndedSessionRetention, c.OAuth.CompactSessions = 12*time.Hour, true
		}, "oauth.activity_retention"},
		{"activity outlives ended sessions, not compacting", func(c *Config) {
			c.OAuth.EndedSessionRetention, c.OAuth.CompactSessions = 12*time.Hour, false
		}, ""},
		{"inactive sessions kept", func(c *Config) { c.OAuth.InactiveSessionExpiry = 0 }, ""},
		{"inactive sessions end after 90 days", func(c *Config) { c.OAuth.InactiveSessionExpiry = 90 * 24 * time.Hour }, ""},
		{"inactive sessions end too soon", func(c *Config) { c.OAuth.InactiveSessionExpiry = 12 * time.Hour }, "oauth.inactive_session_expiry"},
		{"bad client id", func(c *Config) { g := good; g.ClientID = "a.b"; c.OAuth.Clients = []StaticClient{g} }, "oauth.clients[0].client_id"},
		{"duplicate client", func(c *Config) { c.OAuth.Clients = []StaticClient{good, good} }, "defined twice"},
		{"short secret", func(c *Config) { g := good; g.ClientSecret = "short"; c.OAuth.Clients = []StaticClient{g} }, "at least 16"},
		{"public client with secret", func(c *Config) { g := good; g.AuthMethod = "none"; c.OAuth.Clients = []StaticClient{g} }, "no secret"},
		{"unknown method", func(c *Config) { g := good; g.AuthMethod = "magic"; c.OAuth.Clients = []StaticClient{g} }, "token_endpoint_auth_method"},
		{"no grants", func(c *Config) { g := good; g.GrantTypes = nil; c.OAuth.Clients = []StaticClient{g} }, "grant_types"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.edit(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestOAuthFromFileAndEnv(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gatehouse.yaml")
	yaml := `oauth:
  access_token_ttl: 10m
  clients:
    - client_id: synapse
      client_secret: "0123456789abcdefXYZ"
      token_endpoint_auth_method: client_secret_basic
      grant_types: [client_credentials]
`
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.OAuth.AccessTokenTTL != 10*time.Minute || len(c.OAuth.Clients) != 1 || string(c.OAuth.Clients[0].ClientSecret) != "0123456789abcdefXYZ" {
		t.Fatalf("oauth = %+v", c.OAuth)
	}
	if strings.Contains(fmt.Sprint(c), "0123456789abcdefXYZ") {
		t.Fatal("a client secret is printed")
	}
	c, err = Load(path, []string{"GATEHOUSE_ACCESS_TOKEN_TTL=2m"})
	if err != nil || c.OAuth.AccessTokenTTL != 2*time.Minute {
		t.Fatalf("env override: %v, %v", c.OAuth.AccessTokenTTL, err)
	}
	if _, err := Load(path, []string{"GATEHOUSE_ACCESS_TOKEN_TTL=soon"}); err == nil {
		t.Fatal("a bad duration was accepted")
	}
}

// Compaction is on unless turned off, in the file or the environment.
func TestCompactSessionsByDefault(t *testing.T) {
	c, err := Load("", nil)
	if err != nil || !c.OAuth.CompactSessions {
		t.Fatalf("default: %v, %v", c.OAuth.CompactSessions, err)
	}
	path := filepath.Join(t.TempDir(), "gatehouse.yaml")
	if err := os.WriteFile(path, []byte("oauth:\n  compact_sessions: false\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err = Load(path, nil); err != nil || c.OAuth.CompactSessions {
		t.Fatalf("off in the file: %v, %v", c.OAuth.CompactSessions, err)
	}
	if c, err = Load("", []string{"GATEHOUSE_COMPACT_SESSIONS=false"}); err != nil || c.OAuth.CompactSessions {
		t.Fatalf("off in the environment: %v, %v", c.OAuth.CompactSessions, err)
	}
}

func TestActivityFlushInterval(t *testing.T) {
	c, err := Load("", nil)
	if err != nil || c.OAuth.ActivityFlushInterval != 5*time.Minute {
		t.Fatalf("default: %v, %v", c.OAuth.ActivityFlushInterval, err)
	}
	path := filepath.Join(t.TempDir(), "gatehouse.yaml")
	if err := os.WriteFile(path, []byte("oauth:\n  activity_flush_interval: 2m\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err = Load(path, nil); err != nil || c.OAuth.ActivityFlushInterval != 2*time.Minute {
		t.Fatalf("from file: %v, %v", c.OAuth.ActivityFlushInterval, err)
	}
	if c, err = Load(path, []string{"GATEHOUSE_ACTIVITY_FLUSH_INTERVAL=1s"}); err != nil || c.OAuth.ActivityFlushInterval != time.Second {
		t.Fatalf("env override: %v, %v", c.OAuth.ActivityFlushInterval, err)
	}
	for _, bad := range []string{"soon", "100ms", "1h"} {
		if _, err := Load("", []string{"GATEHOUSE_ACTIVITY_FLUSH_INTERVAL=" + bad}); err == nil {
			t.Fatalf("GATEHOUSE_ACTIVITY_FLUSH_INTERVAL=%s was accepted", bad)
		}
	}
}

func TestAccountAndBranding(t *testing.T) {
	c, err := Load("", []string{"GATEHOUSE_REGISTRATION=token", "GATEHOUSE_LOGIN_WITH_EMAIL=true", "GATEHOUSE_BRANDING_TERMS_URI=https://example.org/terms"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Account.Registration != "token" || !c.Account.LoginWithEmail || c.Branding.TermsURI != "https://example.org/terms" {
		t.Fatalf("account %+v branding %+v", c.Account, c.Branding)
	}
	for _, env := range []string{"GATEHOUSE_REGISTRATION=sometimes", "GATEHOUSE_LOGIN_WITH_EMAIL=perhaps", "GATEHOUSE_BRANDING_TERMS_URI=javascript:alert(1)"} {
		if _, err := Load("", []string{env}); err == nil {
			t.Errorf("%s was accepted", env)
		}
	}
}

// The read models following TOKEN keep an ended session as long as the
// stream does: a person's for the retention, a client's own only until no
// activity batch can name it, and for ever when TOKEN is not compacted.
func TestEndedTokenSessionsKept(t *testing.T) {
	for _, tt := range []struct {
		name             string
		env              []string
		kept, clientKept time.Duration
	}{
		{"defaults", nil, 720 * time.Hour, 25 * time.Hour},
		{"shorter activity", []string{"GATEHOUSE_ACTIVITY_RETENTION=4h"}, 720 * time.Hour, 5 * time.Hour},
		{"retention below activity and the margin", []string{"GATEHOUSE_ENDED_SESSION_RETENTION=24h", "GATEHOUSE_ACTIVITY_RETENTION=23h30m"}, 24 * time.Hour, 24 * time.Hour},
		{"not compacted", []string{"GATEHOUSE_COMPACT_SESSIONS=false"}, 0, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load("", tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if got, gotClient := c.OAuth.EndedTokenSessionsKept(), c.OAuth.EndedClientTokenSessionsKept(); got != tt.kept || gotClient != tt.clientKept {
				t.Errorf("kept %s and %s for a client's own, want %s and %s", got, gotClient, tt.kept, tt.clientKept)
			}
		})
	}
}

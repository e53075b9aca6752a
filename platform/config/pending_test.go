package config_test

import (
	"strings"
	"testing"
	"time"

	"gatehouse.dev/platform/config"
)

func TestPendingDefaultsAndOverrides(t *testing.T) {
	d := config.Default().Pending
	want := config.Pending{AuthorizationTTL: 30 * time.Minute, CodeTTL: 10 * time.Minute, DeviceCodeTTL: 20 * time.Minute,
		ClientTTL: 24 * time.Hour, VerificationTTL: 30 * time.Minute, Keep: 10 * time.Minute, MaxBytes: 256 << 20}
	if d != want {
		t.Errorf("defaults %+v, want %+v", d, want)
	}
	path := writeFile(t, "pending:\n  client_ttl: 1h\n  max_bytes: 1048576\n")
	c, err := config.Load(path, []string{"GATEHOUSE_PENDING_AUTHORIZATION_TTL=20s", "GATEHOUSE_PENDING_KEEP=0s", "GATEHOUSE_PENDING_VERIFICATION_TTL=2m"})
	if err != nil {
		t.Fatal(err)
	}
	got := c.Pending
	if got.ClientTTL != time.Hour || got.MaxBytes != 1<<20 || got.AuthorizationTTL != 20*time.Second || got.Keep != 0 || got.CodeTTL != 10*time.Minute || got.VerificationTTL != 2*time.Minute {
		t.Errorf("loaded %+v", got)
	}
	if _, err := config.Load("", []string{"GATEHOUSE_PENDING_MAX_BYTES=lots"}); err == nil || !strings.Contains(err.Error(), "GATEHOUSE_PENDING_MAX_BYTES") {
		t.Errorf("a size that is no number: %v", err)
	}
}

func TestValidatePending(t *testing.T) {
	tests := []struct {
		name string
		edit func(*config.Pending)
		want string
	}{
		{"defaults", func(*config.Pending) {}, ""},
		{"short ages for tests", func(p *config.Pending) {
			*p = config.Pending{time.Second, time.Second, time.Second, time.Second, time.Minute, 0, 64 << 10}
		}, ""},
		{"no time to sign in", func(p *config.Pending) { p.AuthorizationTTL = 0 }, "pending.authorization_ttl: 0s is outside"},
		{"codes beyond RFC 6749's 10 minutes", func(p *config.Pending) { p.CodeTTL = 11 * time.Minute }, "pending.code_ttl: 11m0s is outside"},
		{"devices beyond a day", func(p *config.Pending) { p.DeviceCodeTTL = 25 * time.Hour }, "pending.device_code_ttl"},
		{"clients beyond 30 days", func(p *config.Pending) { p.ClientTTL = 31 * 24 * time.Hour }, "pending.client_ttl"},
		{"verifications shorter than a minute", func(p *config.Pending) { p.VerificationTTL = 30 * time.Second }, "pending.verification_ttl: 30s is outside"},
		{"verifications outliving their personal keys", func(p *config.Pending) { p.VerificationTTL = 61 * time.Minute }, "pending.verification_ttl"},
		{"negative keep", func(p *config.Pending) { p.Keep = -time.Second }, "pending.keep"},
		{"a stream too small", func(p *config.Pending) { p.MaxBytes = 1024 }, "pending.max_bytes: 1024 is not between"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := config.Default()
			tt.edit(&c.Pending)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate() = %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
}

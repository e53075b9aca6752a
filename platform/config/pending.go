package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Pending bounds what anonymous requests leave behind: authorization
// requests waiting for a person, device authorizations waiting for
// approval, dynamically registered clients nobody has approved yet and
// email verifications. They live in streams of their own (AUTHORIZE_PENDING,
// NOTIFY_PENDING), whose events expire when the flow they belong to can no
// longer complete, and whose size is capped, so a flood fills those streams only and never the durable ones (sign-ins,
// refreshes, revocations keep working).
type Pending struct {
	// AuthorizationTTL is how long a person has to sign in and approve an
	// authorization request (GATEHOUSE_PENDING_AUTHORIZATION_TTL, 1s..24h).
	AuthorizationTTL time.Duration `yaml:"authorization_ttl"`
	// CodeTTL is how long an authorization code waits for its exchange
	// (GATEHOUSE_PENDING_CODE_TTL, 1s..10m).
	CodeTTL time.Duration `yaml:"code_ttl"`
	// DeviceCodeTTL is how long a device code and its user code are valid
	// (expires_in; GATEHOUSE_PENDING_DEVICE_CODE_TTL, 1s..24h).
	DeviceCodeTTL time.Duration `yaml:"device_code_ttl"`
	// ClientTTL is how long a dynamically registered client is kept before
	// a person approves it for the first time; approved, it is kept for good
	// (GATEHOUSE_PENDING_CLIENT_TTL, 1s..30 days).
	ClientTTL time.Duration `yaml:"client_ttl"`
	// VerificationTTL is how long an email verification (registration,
	// recovery, adding an address) may be used from its start: codes are
	// sent again and confirmed within it. Its events stay an hour longer,
	// while accounts may use a confirmation, then expire from NOTIFY_PENDING;
	// at most an hour, so the address sealed under the verification's own
	// personal key (2 hours) opens as long as the verification lives
	// (GATEHOUSE_PENDING_VERIFICATION_TTL, 1m..1h).
	VerificationTTL time.Duration `yaml:"verification_ttl"`
	// Keep is how long a flow's events stay after it can no longer complete,
	// to recognise a replayed code and to inspect (GATEHOUSE_PENDING_KEEP, 0..24h).
	Keep time.Duration `yaml:"keep"`
	// MaxBytes caps the pending stream; past all but a tenth of it (at least
	// 128 KiB, at most half) new anonymous
	// requests are refused (503 with Retry-After) until older ones expire;
	// NOTIFY_PENDING has the same bound
	// (GATEHOUSE_PENDING_MAX_BYTES, 64 KiB..1 TiB).
	MaxBytes int64 `yaml:"max_bytes"`
}

// defaultPending is the pending section of the default configuration.
func defaultPending() Pending {
	return Pending{
		AuthorizationTTL: 30 * time.Minute, CodeTTL: 10 * time.Minute, DeviceCodeTTL: 20 * time.Minute,
		ClientTTL: 24 * time.Hour, VerificationTTL: 30 * time.Minute, Keep: 10 * time.Minute, MaxBytes: 256 << 20,
	}
}

// pendingFields are the settings of the pending section.
func pendingFields() []field {
	dur := func(key, env, doc string, at func(*Pending) *time.Duration) field {
		return field{"pending." + key, "GATEHOUSE_PENDING_" + env, doc,
			setDuration(func(c *Config) *time.Duration { return at(&c.Pending) })}
	}
	return []field{
		dur("authorization_ttl", "AUTHORIZATION_TTL", "How long a person has to sign in and approve an authorization request; 1s..24h.",
			func(p *Pending) *time.Duration { return &p.AuthorizationTTL }),
		dur("code_ttl", "CODE_TTL", "How long an authorization code waits for its exchange; 1s..10m.",
			func(p *Pending) *time.Duration { return &p.CodeTTL }),
		dur("device_code_ttl", "DEVICE_CODE_TTL", "How long a device code and its user code are valid (expires_in); 1s..24h.",
			func(p *Pending) *time.Duration { return &p.DeviceCodeTTL }),
		dur("client_ttl", "CLIENT_TTL", "How long a dynamically registered client no person has approved yet is kept; 1s..720h.",
			func(p *Pending) *time.Duration { return &p.ClientTTL }),
		dur("verification_ttl", "VERIFICATION_TTL", "How long an email verification may be used from its start (codes resent and confirmed); its events expire an hour later; 1m..1h.",
			func(p *Pending) *time.Duration { return &p.VerificationTTL }),
		dur("keep", "KEEP", "How long a flow's events stay once it can no longer complete (replayed codes, inspection); 0..24h.",
			func(p *Pending) *time.Duration { return &p.Keep }),
		{"pending.max_bytes", "GATEHOUSE_PENDING_MAX_BYTES",
			"The most the pending stream stores, in bytes; past all but a tenth (at least 128 KiB) new anonymous requests get 503 until older ones expire; 65536..1099511627776.",
			func(c *Config, v string) error {
				n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				if err != nil {
					return fmt.Errorf("%q is not a number of bytes", v)
				}
				c.Pending.MaxBytes = n
				return nil
			}},
	}
}

// pendingDocs annotates the section.
func pendingDocs() map[string]string {
	return map[string]string{
		"pending": "What anonymous requests leave behind (authorization and device requests, unapproved dynamic clients, email verifications): kept in streams of their own (AUTHORIZE_PENDING, NOTIFY_PENDING) until they can no longer complete, each at most max_bytes.",
	}
}

// validatePending adds the problems of the pending section.
func (p *problems) validatePending(c Pending) {
	for _, d := range []struct {
		key      string
		v        time.Duration
		min, max time.Duration
	}{
		{"authorization_ttl", c.AuthorizationTTL, time.Second, 24 * time.Hour},
		{"code_ttl", c.CodeTTL, time.Second, 10 * time.Minute},
		{"device_code_ttl", c.DeviceCodeTTL, time.Second, 24 * time.Hour},
		{"client_ttl", c.ClientTTL, time.Second, 30 * 24 * time.Hour},
		{"verification_ttl", c.VerificationTTL, time.Minute, time.Hour},
		{"keep", c.Keep, 0, 24 * time.Hour},
	} {
		if d.v < d.min || d.v > d.max {
			p.add("pending."+d.key, "%s is outside %s..%s", d.v, d.min, d.max)
		}
	}
	if c.MaxBytes < 64<<10 || c.MaxBytes > 1<<40 {
		p.add("pending.max_bytes", "%d is not between %d and %d", c.MaxBytes, 64<<10, int64(1)<<40)
	}
}

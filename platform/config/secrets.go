package config

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
)

// KeySize is the size in bytes of a key-encryption key.
const KeySize = 32

// Secrets configures the key-encryption keys (KEKs) that seal the secrets
// kept in events (platform/sealed).
type Secrets struct {
	// EncryptionKey is the current key-encryption key, base64 of 32 random
	// bytes (GATEHOUSE_SECRETS_ENCRYPTION_KEY). With EncryptionKeyFile empty
	// too, a process hosting every service it needs generates one under
	// data_dir/secrets.
	EncryptionKey Secret `yaml:"encryption_key"`
	// EncryptionKeyFile holds the current key instead (GATEHOUSE_SECRETS_ENCRYPTION_KEY_FILE).
	EncryptionKeyFile string `yaml:"encryption_key_file"`
	// PreviousKeys are earlier keys, kept during a rotation so that what they
	// sealed still opens until it is sealed again (GATEHOUSE_SECRETS_PREVIOUS_KEYS).
	PreviousKeys []Secret `yaml:"previous_keys,omitempty"`
	// PreviousKeyFiles hold earlier keys (GATEHOUSE_SECRETS_PREVIOUS_KEY_FILES).
	PreviousKeyFiles []string `yaml:"previous_key_files,omitempty"`
}

// Configured reports whether a current key is configured (else one may be
// generated under the data directory).
func (s Secrets) Configured() bool {
	return s.EncryptionKey != "" || s.EncryptionKeyFile != ""
}

// Keys returns the configured keys, decoded: the current one (nil when none
// is configured) and the previous ones, reading the files named.
func (s Secrets) Keys() (current []byte, previous [][]byte, err error) {
	switch {
	case s.EncryptionKey != "":
		if current, err = DecodeKey(string(s.EncryptionKey)); err != nil {
			return nil, nil, fmt.Errorf("secrets.encryption_key: %w", err)
		}
	case s.EncryptionKeyFile != "":
		if current, err = readKeyFile(s.EncryptionKeyFile); err != nil {
			return nil, nil, fmt.Errorf("secrets.encryption_key_file: %w", err)
		}
	}
	for i, k := range s.PreviousKeys {
		b, err := DecodeKey(string(k))
		if err != nil {
			return nil, nil, fmt.Errorf("secrets.previous_keys[%d]: %w", i, err)
		}
		previous = append(previous, b)
	}
	for _, f := range s.PreviousKeyFiles {
		b, err := readKeyFile(f)
		if err != nil {
			return nil, nil, fmt.Errorf("secrets.previous_key_files: %w", err)
		}
		previous = append(previous, b)
	}
	return current, previous, nil
}

// DecodeKey decodes a configured key-encryption key: base64 of 32 bytes,
// standard or URL alphabet, padded or not (`openssl rand -base64 32`).
// Its errors never repeat the text.
func DecodeKey(text string) ([]byte, error) {
	text = strings.TrimSpace(text)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(text); err == nil {
			if len(b) != KeySize {
				return nil, fmt.Errorf("is %d bytes once decoded, want %d (openssl rand -base64 32)", len(b), KeySize)
			}
			return b, nil
		}
	}
	return nil, errors.New("is not base64 of 32 bytes (openssl rand -base64 32)")
}

// readKeyFile reads and decodes a key file.
func readKeyFile(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b, err := DecodeKey(string(raw))
	if err != nil {
		return nil, fmt.Errorf("%s %w", path, err)
	}
	return b, nil
}

// SealsSecrets reports whether the process runs a service that keeps sealed
// secrets in events (every service but web and admin).
func (c Config) SealsSecrets() bool {
	for _, s := range c.Services.Run {
		if s != ServiceWeb && s != ServiceAdmin {
			return true
		}
	}
	return false
}

// validateSecrets adds the problems of the secrets section.
func (p *problems) validateSecrets(c Config) {
	s := c.Secrets
	if s.EncryptionKey != "" && s.EncryptionKeyFile != "" {
		p.add("secrets.encryption_key", "set either secrets.encryption_key or secrets.encryption_key_file, not both")
	}
	var current []byte
	if s.EncryptionKey != "" {
		var err error
		current, err = DecodeKey(string(s.EncryptionKey))
		p.check("secrets.encryption_key", err)
	}
	for i, k := range s.PreviousKeys {
		b, err := DecodeKey(string(k))
		p.check(fmt.Sprintf("secrets.previous_keys[%d]", i), err)
		if err == nil && current != nil && bytes.Equal(b, current) {
			p.add(fmt.Sprintf("secrets.previous_keys[%d]", i), "is the current key (secrets.encryption_key)")
		}
	}
	if !s.Configured() && (len(s.PreviousKeys) > 0 || len(s.PreviousKeyFiles) > 0) {
		p.add("secrets.previous_keys", "need a current key (secrets.encryption_key or secrets.encryption_key_file)")
	}
	if !s.Configured() && c.SealsSecrets() {
		switch {
		case c.Split():
			p.add("secrets.encryption_key", "must be set when services run in several processes (services.endpoints is set, or services.run names only some): every process that seals secrets needs the same key")
		case c.NATS.Replicas > 1:
			p.add("secrets.encryption_key", "must be set with a NATS cluster (nats.replicas > 1): every Gatehouse process needs the same key")
		}
	}
}

// validateNATSAuth adds the problems of the NATS credentials, TLS and listen
// address. The embedded server takes a user and password or an nkey (it
// generates an nkey when given neither); an external one also a .creds file
// and TLS.
func (p *problems) validateNATSAuth(n NATS) {
	embedded := n.URL == ""
	if n.Listen != "" {
		if embedded {
			p.check("nats.listen", checkHostPort(n.Listen))
		} else {
			p.add("nats.listen", "applies to the embedded server only (nats.url is set)")
		}
	}
	switch {
	case n.User != "" && n.Password == "":
		p.add("nats.password", "must be set with nats.user")
	case n.User == "" && n.Password != "":
		p.add("nats.user", "must be set with nats.password")
	}
	var ways []string
	if n.User != "" || n.Password != "" {
		ways = append(ways, "nats.user/nats.password")
	}
	if n.NkeySeedFile != "" {
		ways = append(ways, "nats.nkey_seed_file")
	}
	if n.CredsFile != "" {
		ways = append(ways, "nats.creds_file")
	}
	if !embedded && urlsHaveUser(n.URL) {
		ways = append(ways, "credentials in nats.url")
	}
	if len(ways) > 1 {
		p.add("nats", "authenticate one way, not with %s together", strings.Join(ways, " and "))
	}
	if embedded {
		if n.CredsFile != "" {
			p.add("nats.creds_file", "needs an external NATS (nats.url) run with accounts; the embedded server takes nats.user and nats.password or nats.nkey_seed_file")
		}
		if n.TLS != (NATSTLS{}) {
			p.add("nats.tls", "applies to an external NATS (nats.url); the embedded server listens without TLS, on loopback by default")
		}
	}
	if (n.TLS.CertFile == "") != (n.TLS.KeyFile == "") {
		p.add("nats.tls", "cert_file and key_file go together")
	}
}

// urlsHaveUser reports whether any URL of a comma-separated list carries user info.
func urlsHaveUser(list string) bool {
	for s := range strings.SplitSeq(list, ",") {
		if u, err := url.Parse(strings.TrimSpace(s)); err == nil && u.User != nil {
			return true
		}
	}
	return false
}

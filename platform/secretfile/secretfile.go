// Package secretfile keeps secrets that a single-machine deployment generates
// for itself on first start (the internal gRPC secret, the key-encryption key,
// the embedded NATS server's credentials) in files under the data directory,
// readable only by the process's user.
//
// A deployment of several machines configures these secrets instead; a file
// here is what makes `gatehouse serve` work on a fresh machine with nothing
// configured, and what lets the admin CLI on the same machine find them.
package secretfile

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// LoadOrCreate returns the secret kept in path, creating the file with a new
// random secret of size bytes (base64url, one line, mode 0600) when it does
// not exist. Two processes racing to create it agree on one value.
func LoadOrCreate(path string, size int) ([]byte, error) {
	if size < 16 {
		return nil, fmt.Errorf("secretfile: size %d is too small", size)
	}
	if b, err := Load(path); err == nil {
		return b, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("secretfile: %w", err)
	}
	secret := make([]byte, size)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("secretfile: %w", err)
	}
	// Write to a temporary file and link it into place: the link fails when
	// another process won the race, and then its secret is the one.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".secret-*")
	if err != nil {
		return nil, fmt.Errorf("secretfile: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(base64.RawURLEncoding.EncodeToString(secret) + "\n"); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("secretfile: write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("secretfile: write %s: %w", path, err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return Load(path)
		}
		return nil, fmt.Errorf("secretfile: create %s: %w", path, err)
	}
	return secret, nil
}

// Load reads the secret kept in path (base64url, surrounding space ignored).
// A file that other users may read is refused.
func Load(path string) ([]byte, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("secretfile: %w", err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("secretfile: %s is readable by other users (mode %v); chmod 600 it", path, info.Mode().Perm())
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("secretfile: %w", err)
	}
	secret, err := base64.RawURLEncoding.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil || len(secret) < 16 {
		return nil, fmt.Errorf("secretfile: %s does not hold a base64url secret of at least 16 bytes", path)
	}
	return secret, nil
}

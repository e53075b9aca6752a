package host

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"gatehouse.dev/platform/config"
	"gatehouse.dev/platform/sealed"
	"gatehouse.dev/platform/secretfile"
)

// KEKFile is where a single-machine deployment keeps the key-encryption key
// it generated for itself (under the data dir), when none is configured.
const KEKFile = "secrets/encryption-key"

// openKeyring returns the deployment's key-encryption keys: the configured
// ones, or, when none is configured, one generated on first start and kept in
// data_dir/secrets/encryption-key. Configuration validation makes sure that a
// deployment of several processes configures its key.
func openKeyring(cfg config.Config, logger *slog.Logger) (*sealed.Keyring, error) {
	current, previous, err := cfg.Secrets.Keys()
	if err != nil {
		return nil, err
	}
	generated := filepath.Join(cfg.DataDir, KEKFile)
	if current == nil {
		_, statErr := os.Stat(generated)
		if current, err = secretfile.LoadOrCreate(generated, sealed.KeySize); err != nil {
			return nil, fmt.Errorf("key-encryption key: %w", err)
		}
		if errors.Is(statErr, fs.ErrNotExist) {
			logger.Info("generated the key-encryption key that seals the secrets kept in events; back it up, apart from the NATS store, and configure secrets.encryption_key to run several processes", "file", generated)
		}
	}
	cur, err := sealed.NewKey(current)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	var prev []*sealed.Key
	for _, p := range previous {
		k, err := sealed.NewKey(p)
		if err != nil {
			return nil, fmt.Errorf("previous key-encryption key: %w", err)
		}
		prev = append(prev, k)
	}
	ring, err := sealed.NewKeyring(cur, prev...)
	if err != nil {
		return nil, err
	}
	logger.Info("key-encryption keys", "current", ring.CurrentID(), "previous", ring.IDs()[1:])
	if cfg.Secrets.Configured() {
		warnForgottenKey(generated, ring, logger)
	}
	return ring, nil
}

// warnForgottenKey warns when the data dir holds a generated key that the
// configuration does not name: what it sealed will not open.
func warnForgottenKey(path string, ring *sealed.Keyring, logger *slog.Logger) {
	b, err := secretfile.Load(path)
	if err != nil {
		return
	}
	k, err := sealed.NewKey(b)
	if err != nil || slices.Contains(ring.IDs(), k.ID()) {
		return
	}
	logger.Warn("the data dir holds a generated key-encryption key the configuration does not name: what it sealed does not open; add the file to secrets.previous_key_files until every service has sealed its secrets again",
		"file", path, "key_id", k.ID())
}

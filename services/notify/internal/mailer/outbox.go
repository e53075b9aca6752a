package mailer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// Outbox is the development sender: it writes each message to
// <dir>/<message id>.eml (mode 0600; any mail client opens it), so that a
// server without SMTP still works end to end. It logs only that it did, with
// the file and the recipient's domain: never the code or link, which would
// let anyone who reads the log confirm an address or reset a password.
// Writing a message twice overwrites the same file.
type Outbox struct {
	dir    string
	logger *slog.Logger
}

// NewOutbox returns a sender writing into dir, which is created when needed.
func NewOutbox(dir string, logger *slog.Logger) *Outbox {
	return &Outbox{dir: dir, logger: logger}
}

// Dir is the outbox directory.
func (o *Outbox) Dir() string { return o.dir }

// Send writes the message and logs it.
func (o *Outbox) Send(ctx context.Context, m *Message) error {
	body, err := m.Bytes()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.dir, 0o700); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	path := filepath.Join(o.dir, fileName(m.MessageID)+".eml")
	tmp, err := os.CreateTemp(o.dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	_, werr := tmp.Write(body)
	cerr := tmp.Close()
	if werr != nil || cerr != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("outbox: write %s: %w", path, errors.Join(werr, cerr))
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("outbox: %w", err)
	}
	o.logger.InfoContext(ctx, "email written to the outbox (no smtp.url configured); open the file to read it",
		"file", path, "to_domain", domainOf(m.To))
	return nil
}

// domainOf returns the domain of an address, all a log needs of a recipient.
func domainOf(address string) string {
	if i := strings.LastIndexByte(address, '@'); i >= 0 {
		return address[i+1:]
	}
	return ""
}

// fileName turns a Message-ID into a safe file name.
func fileName(messageID string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_', r == '@':
			return r
		case r == '<' || r == '>':
			return -1
		}
		return '_'
	}, messageID)
}

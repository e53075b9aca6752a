package e2e

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// emailedCode waits for the email the notify service writes to the dev
// outbox (<data_dir>/outbox/*.eml when no SMTP server is configured) for
// address, and returns the 6-digit code in its plain-text part.
func emailedCode(t *testing.T, dataDir, address string) string {
	t.Helper()
	dir := filepath.Join(dataDir, "outbox")
	var code string
	err := waitFor(30*time.Second, func() (bool, error) {
		files, err := filepath.Glob(filepath.Join(dir, "*.eml"))
		if err != nil {
			return false, err
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			msg, err := mail.ReadMessage(bytes.NewReader(data))
			if err != nil || !strings.Contains(msg.Header.Get("To"), address) {
				continue
			}
			if m := codeLine.FindStringSubmatch(plainText(msg)); m != nil {
				code = m[1]
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		files, _ := filepath.Glob(filepath.Join(dir, "*"))
		t.Fatalf("no code emailed to %s in %s (%v): %v", address, dir, files, err)
	}
	return code
}

// codeLine finds a 6-digit code standing alone on its line.
var codeLine = regexp.MustCompile(`(?m)^\s*(\d{6})\s*$`)

// plainText returns the text/plain part of a message (multipart or not),
// decoded.
func plainText(msg *mail.Message) string {
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || !strings.HasPrefix(mt, "multipart/") {
		b, _ := io.ReadAll(msg.Body)
		return string(b)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart() // decodes quoted-printable
		if err != nil {
			return ""
		}
		if strings.HasPrefix(p.Header.Get("Content-Type"), "text/plain") {
			b, _ := io.ReadAll(p)
			return string(b)
		}
	}
}

// recoveryLink finds a recovery link in an email's text.
var recoveryLink = regexp.MustCompile(`https?://\S+/recover/[A-Za-z0-9]{32}`)

// emailedRecoveryLink waits for the recovery email to address in the dev
// outbox and returns its link.
func emailedRecoveryLink(t *testing.T, dataDir, address string) string {
	t.Helper()
	var link string
	err := waitFor(30*time.Second, func() (bool, error) {
		for _, f := range outboxTo(t, dataDir, address) {
			data, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			msg, err := mail.ReadMessage(bytes.NewReader(data))
			if err != nil {
				continue
			}
			if m := recoveryLink.FindString(plainText(msg)); m != "" {
				link = m
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no recovery link emailed to %s: %v", address, err)
	}
	return link
}

// outboxTo lists the emails to address in the dev outbox.
func outboxTo(t *testing.T, dataDir, address string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dataDir, "outbox", "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if msg, err := mail.ReadMessage(bytes.NewReader(data)); err == nil && strings.Contains(msg.Header.Get("To"), address) {
			out = append(out, f)
		}
	}
	return out
}

// emailTo waits for the first email to address in the dev outbox and
// returns its decoded subject and plain text.
func emailTo(t *testing.T, dataDir, address string) (subject, text string) {
	t.Helper()
	err := waitFor(30*time.Second, func() (bool, error) {
		for _, f := range outboxTo(t, dataDir, address) {
			data, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			msg, err := mail.ReadMessage(bytes.NewReader(data))
			if err != nil {
				continue
			}
			subject, err = new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
			if err != nil {
				return false, err
			}
			text = plainText(msg)
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no email to %s: %v", address, err)
	}
	return subject, text
}

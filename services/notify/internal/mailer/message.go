// Package mailer writes and sends the notify service's emails: MIME messages
// (multipart/alternative, plain text and HTML) rendered from embedded
// templates, sent over SMTP with net/smtp (STARTTLS or implicit TLS), or, in
// development, written to an outbox directory.
package mailer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
	"time"
	"unicode"
)

// Message is one email.
type Message struct {
	// From is the sender, "Name <address>" or an address.
	From string
	// ReplyTo is where replies go; empty for none.
	ReplyTo string
	// To is the recipient's bare address.
	To      string
	Subject string
	// Text and HTML are the two renderings of the body.
	Text, HTML string
	// MessageID is the Message-ID header, "<id@domain>".
	MessageID string
	Date      time.Time
}

// Sender delivers messages.
type Sender interface {
	// Send returns nil once the mail server has accepted the message, a
	// *PermanentError when the server refused it for good (retrying would not
	// help), and any other error for failures worth retrying.
	Send(ctx context.Context, m *Message) error
}

// PermanentError is a mail server's permanent refusal (an SMTP 5xx reply) of
// one message, as opposed to failures of the connection or configuration.
type PermanentError struct {
	// Reply is the server's reply, "550 5.1.1 no such user".
	Reply string
}

func (e *PermanentError) Error() string { return "smtp: message refused: " + e.Reply }

// IsPermanent reports whether err is a *PermanentError.
func IsPermanent(err error) bool {
	_, ok := errors.AsType[*PermanentError](err)
	return ok
}

// EnvelopeFrom returns the bare address of a From header value.
func EnvelopeFrom(from string) (string, error) {
	a, err := mail.ParseAddress(from)
	if err != nil {
		return "", fmt.Errorf("mailer: sender %q: %w", from, err)
	}
	return a.Address, nil
}

// Bytes encodes the message as RFC 5322 text with CRLF line endings: headers,
// then a multipart/alternative body with a quoted-printable UTF-8 text/plain
// part and a text/html part.
func (m *Message) Bytes() ([]byte, error) {
	from, err := mail.ParseAddress(m.From)
	if err != nil {
		return nil, fmt.Errorf("mailer: sender %q: %w", m.From, err)
	}
	for name, v := range map[string]string{"To": m.To, "Subject": m.Subject, "Message-ID": m.MessageID, "Reply-To": m.ReplyTo} {
		if strings.ContainsFunc(v, unicode.IsControl) {
			return nil, fmt.Errorf("mailer: %s holds control characters", name)
		}
	}
	if m.To == "" || m.MessageID == "" {
		return nil, errors.New("mailer: a message needs a recipient and a Message-ID")
	}
	var buf bytes.Buffer
	header := func(k, v string) { fmt.Fprintf(&buf, "%s: %s\r\n", k, v) }
	header("From", from.String())
	if m.ReplyTo != "" {
		rt, err := mail.ParseAddress(m.ReplyTo)
		if err != nil {
			return nil, fmt.Errorf("mailer: reply-to %q: %w", m.ReplyTo, err)
		}
		header("Reply-To", rt.String())
	}
	header("To", (&mail.Address{Address: m.To}).String())
	header("Subject", mime.QEncoding.Encode("utf-8", m.Subject))
	header("Date", m.Date.Format(time.RFC1123Z))
	header("Message-ID", m.MessageID)
	// RFC 3834: an automatic message; auto-responders should not answer it.
	header("Auto-Submitted", "auto-generated")
	header("MIME-Version", "1.0")

	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	header("Content-Type", mime.FormatMediaType("multipart/alternative", map[string]string{"boundary": mw.Boundary()}))
	buf.WriteString("\r\n")
	for _, part := range []struct{ typ, text string }{{"text/plain", m.Text}, {"text/html", m.HTML}} {
		w, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {part.typ + "; charset=utf-8"},
			"Content-Transfer-Encoding": {"quoted-printable"},
		})
		if err != nil {
			return nil, err
		}
		qp := quotedprintable.NewWriter(w)
		if _, err := qp.Write([]byte(part.text)); err != nil {
			return nil, err
		}
		if err := qp.Close(); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	buf.Write(body.Bytes())
	return buf.Bytes(), nil
}

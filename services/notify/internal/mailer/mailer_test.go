package mailer

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gatehouse.dev/services/notify/internal/smtptest"
)

func testMessage() *Message {
	return &Message{
		From:      "Portão Auth <noreply@example.org>",
		ReplyTo:   "support@example.org",
		To:        "alice@example.org",
		Subject:   "Your Portão verification code",
		Text:      "Hello,\n\n    123456\n\nA long line " + strings.Repeat("that goes on ", 20) + "\n",
		HTML:      "<p>Hello, <strong>123456</strong> — ünïcode</p>",
		MessageID: "<01JABC.1@example.org>",
		Date:      time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC),
	}
}

// parsed is a message read back with the standard library.
type parsed struct {
	header     mail.Header
	subject    string
	text, html string
}

func parse(t *testing.T, data []byte) parsed {
	t.Helper()
	if bytes.Contains(bytes.ReplaceAll(data, []byte("\r\n"), nil), []byte("\n")) {
		t.Errorf("message has bare LF line endings")
	}
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("ReadMessage: %v", err)
	}
	p := parsed{header: m.Header}
	if p.subject, err = new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject")); err != nil {
		t.Fatalf("subject: %v", err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("Content-Type = %q, %v", m.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		part, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("part: %v", err)
		}
		if enc := part.Header.Get("Content-Transfer-Encoding"); enc != "quoted-printable" {
			t.Errorf("part encoding %q", enc)
		}
		body, err := io.ReadAll(quotedprintable.NewReader(part))
		if err != nil {
			t.Fatalf("part body: %v", err)
		}
		switch part.Header.Get("Content-Type") {
		case "text/plain; charset=utf-8":
			p.text = strings.ReplaceAll(string(body), "\r\n", "\n")
		case "text/html; charset=utf-8":
			p.html = string(body)
		default:
			t.Errorf("unexpected part %q", part.Header.Get("Content-Type"))
		}
	}
	return p
}

func TestMessageBytes(t *testing.T) {
	m := testMessage()
	data, err := m.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	p := parse(t, data)
	from, err := p.header.AddressList("From")
	if err != nil || len(from) != 1 || from[0].Name != "Portão Auth" || from[0].Address != "noreply@example.org" {
		t.Errorf("From = %v, %v", from, err)
	}
	for k, want := range map[string]string{
		"To": "<alice@example.org>", "Reply-To": "<support@example.org>", "Message-Id": "<01JABC.1@example.org>",
		"Auto-Submitted": "auto-generated", "Mime-Version": "1.0", "Date": "Sat, 01 Mar 2025 12:00:00 +0000",
	} {
		if got := p.header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if p.subject != m.Subject || p.text != m.Text || p.html != m.HTML {
		t.Errorf("round trip: subject %q, text %q, html %q", p.subject, p.text, p.html)
	}
	for _, line := range strings.Split(string(data), "\r\n") {
		if len(line) > 998 {
			t.Errorf("line of %d bytes exceeds RFC 5322's limit", len(line))
		}
	}

	bad := []func(*Message){
		func(m *Message) { m.To = "alice@example.org\r\nBcc: eve@example.org" },
		func(m *Message) { m.Subject = "hi\nBcc: eve@example.org" },
		func(m *Message) { m.From = "not an address" },
		func(m *Message) { m.ReplyTo = "nope" },
		func(m *Message) { m.MessageID = "" },
	}
	for i, change := range bad {
		m := testMessage()
		change(m)
		if _, err := m.Bytes(); err == nil {
			t.Errorf("bad message %d encoded", i)
		}
	}
}

func TestTemplates(t *testing.T) {
	tpl, err := LoadTemplates()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		content     Content
		locale      string
		wantSubject string
		wantIn      []string // in both text and HTML
		wantLang    string
	}{
		{"registration", Content{Kind: KindCode, Purpose: "registration", ServiceName: "Example", Email: "a@example.org", Code: "042917", Minutes: 5},
			"en", "Your Example verification code", []string{"042917", "5 minutes", "a@example.org", "new Example account"}, "en"},
		{"add email", Content{Kind: KindCode, Purpose: "add_email", ServiceName: "Example", Email: "a@example.org", Code: "042917", Minutes: 5},
			"", "Confirm your email address for Example", []string{"042917", "To add"}, "en"},
		{"recovery", Content{Kind: KindRecovery, Purpose: "recovery", ServiceName: "Example", Email: "a@example.org", Link: "https://auth.example.org/recover/AbC123", Minutes: 10},
			"pt-BR", "Recover your Example account", []string{"https://auth.example.org/recover/AbC123", "10 minutes"}, "en"},
		{"registration in French", Content{Kind: KindCode, Purpose: "registration", ServiceName: "Example", Email: "a@example.org", Code: "042917", Minutes: 5},
			"fr", "Votre code de vérification Example", []string{"042917", "5 minutes", "a@example.org", "nouveau compte Example", "Bonjour"}, "fr"},
		{"add email in Canadian French", Content{Kind: KindCode, Purpose: "add_email", ServiceName: "Example", Email: "a@example.org", Code: "042917", Minutes: 5},
			"fr-CA", "Confirmez votre adresse e-mail pour Example", []string{"042917", "Pour ajouter", "votre compte Example"}, "fr"},
		{"recovery in French", Content{Kind: KindRecovery, Purpose: "recovery", ServiceName: "Example", Email: "a@example.org", Link: "https://auth.example.org/recover/AbC123", Minutes: 10},
			"FR-fr", "Récupération de votre compte Example", []string{"https://auth.example.org/recover/AbC123", "10 minutes", "récupérer le compte Example"}, "fr"},
		{"unknown language", Content{Kind: KindCode, Purpose: "registration", ServiceName: "Example", Email: "a@example.org", Code: "042917", Minutes: 5},
			"de-CH", "Your Example verification code", []string{"042917", "new Example account"}, "en"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			subject, text, html, err := tpl.Render(tt.content, tt.locale)
			if err != nil {
				t.Fatal(err)
			}
			if subject != tt.wantSubject {
				t.Errorf("subject %q, want %q", subject, tt.wantSubject)
			}
			for _, want := range tt.wantIn {
				if !strings.Contains(text, want) || !strings.Contains(html, want) {
					t.Errorf("%q missing from text or HTML:\n%s\n%s", want, text, html)
				}
			}
			if !strings.Contains(html, `lang="`+tt.wantLang+`"`) {
				t.Errorf("HTML not in %s", tt.wantLang)
			}
			// In every language, the code stands alone on its line of the text.
			if tt.content.Code != "" && !strings.Contains(text, "\n    "+tt.content.Code+"\n") {
				t.Errorf("the code is not on a line of its own:\n%s", text)
			}
		})
	}
	// The service name is text, not markup.
	_, _, html, err := tpl.Render(Content{Kind: KindCode, ServiceName: "<b>Evil</b>", Code: "1"}, "en")
	if err != nil || strings.Contains(html, "<b>Evil</b>") || !strings.Contains(html, "&lt;b&gt;Evil&lt;/b&gt;") {
		t.Errorf("service name not escaped in HTML (%v)", err)
	}
	if _, _, _, err := tpl.Render(Content{Kind: "newsletter"}, "en"); err == nil {
		t.Error("unknown kind rendered")
	}
}

// Every language has every email, text and HTML: a missing one would fall
// back to English without a word.
func TestTemplatesComplete(t *testing.T) {
	langs, err := fs.ReadDir(templateFS, "templates")
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, lang := range langs {
		if !lang.IsDir() {
			continue
		}
		seen = append(seen, lang.Name())
		for _, kind := range Kinds {
			for _, ext := range []string{".txt", ".html"} {
				if _, err := fs.Stat(templateFS, "templates/"+lang.Name()+"/"+string(kind)+ext); err != nil {
					t.Errorf("%s lacks %s%s", lang.Name(), kind, ext)
				}
			}
		}
	}
	if !slices.Contains(seen, "en") || !slices.Contains(seen, "fr") {
		t.Errorf("languages %v, want en and fr at least", seen)
	}
}

// sender returns an SMTP sender for srv, trusting its certificate.
func sender(t *testing.T, url string, srv *smtptest.Server) *SMTP {
	t.Helper()
	s, err := NewSMTP(url, SMTPOptions{RootCAs: srv.RootCAs(), HelloName: "gatehouse.test", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSMTP(t *testing.T) {
	tests := []struct {
		name      string
		opts      smtptest.Options
		url       func(srv *smtptest.Server) string
		untrusted bool   // do not trust the server's certificate
		host      string // name the server by this host in the URL (dialling the real address)
		wantErr   string // "" means delivered
		permanent bool
		wantTLS   bool
		wantCmds  []string // commands the session must include (by prefix)
		denyCmds  []string // commands it must not include (by prefix)
	}{
		{name: "STARTTLS and AUTH PLAIN", opts: smtptest.Options{TLS: true, Username: "mailer", Password: "s3cret"},
			wantTLS: true, wantCmds: []string{"EHLO gatehouse.test", "STARTTLS", "AUTH PLAIN", "MAIL FROM:<noreply@example.org>", "RCPT TO:<alice@example.org>", "DATA", "QUIT"}},
		{name: "implicit TLS", opts: smtptest.Options{TLS: true, Implicit: true, Username: "mailer", Password: "s3cret"},
			wantTLS: true, wantCmds: []string{"AUTH PLAIN"}, denyCmds: []string{"STARTTLS"}},
		{name: "AUTH LOGIN when PLAIN is not offered", opts: smtptest.Options{TLS: true, Username: "mailer", Password: "s3cret", AuthMechanisms: "LOGIN"},
			wantTLS: true, wantCmds: []string{"AUTH LOGIN"}},
		{name: "no TLS, no AUTH", opts: smtptest.Options{}, denyCmds: []string{"STARTTLS"}},
		{name: "STARTTLS without AUTH", opts: smtptest.Options{TLS: true}, wantTLS: true, wantCmds: []string{"STARTTLS"}},
		{name: "plaintext AUTH to loopback", opts: smtptest.Options{Username: "mailer", Password: "s3cret", AuthBeforeTLS: true},
			wantCmds: []string{"AUTH PLAIN"}},
		{name: "plaintext AUTH to another host is refused", opts: smtptest.Options{Username: "mailer", Password: "s3cret", AuthBeforeTLS: true},
			host: "mail.example.org", wantErr: "refusing to send the password", denyCmds: []string{"AUTH PLAIN", "AUTH LOGIN", "MAIL FROM:<noreply@example.org>"}},
		{name: "untrusted certificate", opts: smtptest.Options{TLS: true}, untrusted: true, wantErr: "certificate"},
		{name: "wrong password", opts: smtptest.Options{TLS: true, Username: "mailer", Password: "s3cret"},
			url:     func(srv *smtptest.Server) string { return "smtp://mailer:wrong@" + srv.Addr() },
			wantErr: "535"},
		{name: "no AUTH offered for a URL with a user", opts: smtptest.Options{TLS: true},
			url:     func(srv *smtptest.Server) string { return "smtp://mailer:pw@" + srv.Addr() },
			wantErr: "does not offer AUTH"},
		{name: "recipient refused for good", opts: smtptest.Options{RejectRecipient: func(string) bool { return true }},
			wantErr: "550", permanent: true},
		{name: "temporary failure", opts: smtptest.Options{TempFailures: 1}, wantErr: "451"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := smtptest.Start(t, tt.opts)
			url := srv.URL()
			if tt.url != nil {
				url = tt.url(srv)
			}
			var s *SMTP
			if tt.untrusted {
				var err error
				if s, err = NewSMTP(url, SMTPOptions{Timeout: 5 * time.Second}); err != nil {
					t.Fatal(err)
				}
			} else {
				s = sender(t, url, srv)
			}
			if tt.host != "" {
				s.host, s.addr = tt.host, net.JoinHostPort(tt.host, "25")
				real := srv.Addr()
				s.dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
					return (&net.Dialer{}).DialContext(ctx, network, real)
				}
			}
			err := s.Send(context.Background(), testMessage())
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Send: %v", err)
				}
				msgs := srv.WaitMessages(t, 1, 5*time.Second)
				got := msgs[0]
				if got.From != "noreply@example.org" || !slices.Equal(got.To, []string{"alice@example.org"}) || got.TLS != tt.wantTLS {
					t.Errorf("accepted from %q to %v (TLS %v)", got.From, got.To, got.TLS)
				}
				if p := parse(t, got.Data); p.text != testMessage().Text {
					t.Errorf("text arrived as %q", p.text)
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Send = %v, want an error with %q", err, tt.wantErr)
				}
				if IsPermanent(err) != tt.permanent {
					t.Errorf("permanent = %v, want %v (%v)", IsPermanent(err), tt.permanent, err)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Errorf("error reveals the password: %v", err)
				}
				if n := len(srv.Messages()); n != 0 {
					t.Errorf("%d messages accepted", n)
				}
			}
			sessions := srv.WaitSessions(t, 1, 5*time.Second)
			cmds := sessions[0].Commands
			hasPrefix := func(p string) bool {
				return slices.ContainsFunc(cmds, func(c string) bool { return strings.HasPrefix(c, p) })
			}
			for _, want := range tt.wantCmds {
				if !hasPrefix(want) {
					t.Errorf("session lacks %q: %q", want, cmds)
				}
			}
			for _, deny := range tt.denyCmds {
				if hasPrefix(deny) {
					t.Errorf("session has %q: %q", deny, cmds)
				}
			}
		})
	}
}

func TestSMTPTemporaryFailureThenSuccess(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{TempFailures: 1})
	s := sender(t, srv.URL(), srv)
	if err := s.Send(context.Background(), testMessage()); err == nil || IsPermanent(err) {
		t.Fatalf("first Send = %v, want a temporary error", err)
	}
	if err := s.Send(context.Background(), testMessage()); err != nil {
		t.Fatalf("second Send: %v", err)
	}
	if n := len(srv.WaitMessages(t, 1, 5*time.Second)); n != 1 {
		t.Errorf("%d messages", n)
	}
}

// A server that never answers does not hold a sender beyond its timeout.
func TestSMTPTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	defer close(done)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			<-done
			c.Close()
		}
	}()
	s, err := NewSMTP("smtp://"+ln.Addr().String(), SMTPOptions{Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := s.Send(context.Background(), testMessage()); err == nil {
		t.Fatal("Send to a silent server succeeded")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Send took %v", d)
	}
}

func TestNewSMTP(t *testing.T) {
	for url, want := range map[string]string{
		"smtp://mail.example.org":          "mail.example.org:587",
		"smtps://mail.example.org":         "mail.example.org:465",
		"smtp://u:p@mail.example.org:25":   "mail.example.org:25",
		"smtps://[::1]:2465":               "[::1]:2465",
		"http://mail.example.org":          "",
		"smtp://":                          "",
		"smtp://u:pass word@%zz/not-a-url": "",
	} {
		s, err := NewSMTP(url, SMTPOptions{})
		switch {
		case want == "" && err == nil:
			t.Errorf("%s: accepted", url)
		case want == "" && strings.Contains(err.Error(), "pass"):
			t.Errorf("%s: error repeats the URL: %v", url, err)
		case want != "" && (err != nil || s.Addr() != want):
			t.Errorf("%s: %v, %v; want %s", url, s, err, want)
		}
	}
	for host, want := range map[string]bool{"localhost": true, "127.0.0.1": true, "127.0.0.2": true, "::1": true, "mail.example.org": false, "10.0.0.1": false} {
		if got := isLoopback(host); got != want {
			t.Errorf("isLoopback(%q) = %v", host, got)
		}
	}
}

func TestOutbox(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "outbox")
	var logs bytes.Buffer
	o := NewOutbox(dir, slog.New(slog.NewTextHandler(&logs, nil)))
	m := testMessage()
	for range 2 {
		if err := o.Send(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) != 1 || filepath.Base(files[0]) != "01JABC.1@example.org.eml" {
		t.Fatalf("outbox holds %v", files)
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if p := parse(t, data); p.subject != m.Subject {
		t.Errorf("outbox message subject %q", p.subject)
	}
	// The log says where the email is, and nothing of what it says.
	if !strings.Contains(logs.String(), "level=INFO") || !strings.Contains(logs.String(), files[0]) || !strings.Contains(logs.String(), "to_domain=example.org") {
		t.Errorf("the log does not say where the email is:\n%s", logs.String())
	}
	for _, secret := range []string{"123456", "alice@", m.Subject} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the log shows %q:\n%s", secret, logs.String())
		}
	}
}

package mailer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
	"time"
)

// DefaultTimeout bounds one SMTP session, from connecting to the server's
// acceptance of the message.
const DefaultTimeout = 30 * time.Second

// SMTPOptions configure an SMTP sender beyond its URL.
type SMTPOptions struct {
	// RootCAs verify the server's certificate; nil uses the system's roots.
	RootCAs *x509.CertPool
	// HelloName is the name sent with EHLO; "localhost" when empty.
	HelloName string
	// Timeout bounds one session; DefaultTimeout when zero.
	Timeout time.Duration
}

// SMTP sends messages to one mail server, a session per message.
//
// smtp://user:password@host:port uses STARTTLS whenever the server offers it
// and verifies its certificate; it refuses to authenticate over a plaintext
// connection unless the host is a loopback address. smtps:// uses implicit
// TLS. The user info is optional: without it the server is used as an open
// relay (a local MTA, say).
type SMTP struct {
	addr     string
	host     string
	implicit bool
	user     string
	password string
	opts     SMTPOptions
	// dial connects to addr; tests redirect it.
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// NewSMTP returns a sender for an smtp:// or smtps:// URL. The default ports
// are 587 (submission) and 465 (submissions).
func NewSMTP(rawURL string, opts SMTPOptions) (*SMTP, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, errors.New("mailer: the SMTP URL does not parse") // never repeat it: it holds a password
	}
	s := &SMTP{host: u.Hostname(), opts: opts}
	port := u.Port()
	switch u.Scheme {
	case "smtp":
		port = orDefault(port, "587")
	case "smtps":
		s.implicit, port = true, orDefault(port, "465")
	default:
		return nil, fmt.Errorf("mailer: SMTP URL scheme %q is not smtp or smtps", u.Scheme)
	}
	if s.host == "" {
		return nil, errors.New("mailer: the SMTP URL has no host")
	}
	if u.User != nil {
		s.user = u.User.Username()
		s.password, _ = u.User.Password()
	}
	s.addr = net.JoinHostPort(s.host, port)
	if s.opts.HelloName == "" {
		s.opts.HelloName = "localhost"
	}
	if s.opts.Timeout <= 0 {
		s.opts.Timeout = DefaultTimeout
	}
	d := &net.Dialer{}
	s.dial = d.DialContext
	return s, nil
}

func orDefault(v, dflt string) string {
	if v == "" {
		return dflt
	}
	return v
}

// Addr is the server's host:port.
func (s *SMTP) Addr() string { return s.addr }

func (s *SMTP) tlsConfig() *tls.Config {
	return &tls.Config{ServerName: s.host, RootCAs: s.opts.RootCAs, MinVersion: tls.VersionTLS12}
}

// Send delivers one message in its own session: connect (TLS for smtps),
// EHLO, STARTTLS when offered, AUTH when configured, MAIL FROM, RCPT TO,
// DATA. It returns as soon as the server has accepted the message: QUIT is
// sent without waiting for its reply, so that the caller can record the
// delivery at once (everything between acceptance and that record is the
// window in which a crash sends the message again).
func (s *SMTP) Send(ctx context.Context, m *Message) error {
	body, err := m.Bytes()
	if err != nil {
		return err
	}
	from, err := EnvelopeFrom(m.From)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	conn, err := s.dial(ctx, "tcp", s.addr)
	if err != nil {
		return fmt.Errorf("smtp: connect to %s: %w", s.addr, err)
	}
	if s.implicit {
		tc := tls.Client(conn, s.tlsConfig())
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return fmt.Errorf("smtp: TLS with %s: %w", s.addr, err)
		}
		conn = tc
	}
	// Blocked reads and writes end with the context.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	c, err := smtp.NewClient(conn, s.host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("smtp: %s: greeting: %w", s.addr, err)
	}
	defer c.Close()
	if err := c.Hello(s.opts.HelloName); err != nil {
		return fmt.Errorf("smtp: %s: EHLO: %w", s.addr, err)
	}
	secure := s.implicit
	if !secure {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(s.tlsConfig()); err != nil {
				return fmt.Errorf("smtp: %s: STARTTLS: %w", s.addr, err)
			}
			secure = true
		}
	}
	if s.user != "" {
		if err := s.auth(c, secure); err != nil {
			return err
		}
	}
	if err := c.Mail(from); err != nil {
		return fmt.Errorf("smtp: %s: MAIL FROM: %w", s.addr, err)
	}
	if err := c.Rcpt(m.To); err != nil {
		return refusal(s.addr, "RCPT TO", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("smtp: %s: DATA: %w", s.addr, err)
	}
	if _, err := w.Write(body); err != nil {
		return fmt.Errorf("smtp: %s: message: %w", s.addr, err)
	}
	if err := w.Close(); err != nil {
		return refusal(s.addr, "end of message", err)
	}
	// Accepted. Say goodbye without waiting for the reply; c.Close ends the session.
	c.Text.PrintfLine("QUIT")
	return nil
}

// auth authenticates with PLAIN, or LOGIN when that is all the server offers.
// The password never crosses a plaintext connection to another host.
func (s *SMTP) auth(c *smtp.Client, secure bool) error {
	if !secure && !isLoopback(s.host) {
		return fmt.Errorf("smtp: %s offers no STARTTLS: refusing to send the password in plaintext (use smtps:// or a server with STARTTLS)", s.addr)
	}
	ok, mechs := c.Extension("AUTH")
	if !ok {
		return fmt.Errorf("smtp: %s does not offer AUTH, but the SMTP URL has a user", s.addr)
	}
	var a smtp.Auth
	switch offered := strings.Fields(strings.ToUpper(mechs)); {
	case slices.Contains(offered, "PLAIN"):
		a = plainAuth{user: s.user, password: s.password}
	case slices.Contains(offered, "LOGIN"):
		a = &loginAuth{user: s.user, password: s.password}
	default:
		return fmt.Errorf("smtp: %s offers AUTH %s; PLAIN or LOGIN is needed", s.addr, mechs)
	}
	if err := c.Auth(a); err != nil {
		return fmt.Errorf("smtp: %s: AUTH: %w", s.addr, err)
	}
	return nil
}

// refusal classifies a reply to RCPT TO or to the end of a message: a 5xx
// reply refuses this message for good; anything else may pass on a retry.
func refusal(addr, step string, err error) error {
	if tp, ok := errors.AsType[*textproto.Error](err); ok && tp.Code >= 500 && tp.Code < 600 {
		return &PermanentError{Reply: fmt.Sprintf("%d %s", tp.Code, tp.Msg)}
	}
	return fmt.Errorf("smtp: %s: %s: %w", addr, step, err)
}

// isLoopback reports whether host names this machine: "localhost" or a
// loopback IP address.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// plainAuth is AUTH PLAIN (RFC 4616). net/smtp's PlainAuth would do, but it
// accepts only the literal names "localhost", "127.0.0.1" and "::1" as
// loopback; the decision is made in auth above instead.
type plainAuth struct{ user, password string }

func (a plainAuth) Start(*smtp.ServerInfo) (string, []byte, error) {
	return "PLAIN", []byte("\x00" + a.user + "\x00" + a.password), nil
}

func (a plainAuth) Next(_ []byte, more bool) ([]byte, error) {
	if more {
		return nil, errors.New("unexpected server challenge")
	}
	return nil, nil
}

// loginAuth is the AUTH LOGIN some servers offer instead of PLAIN: the server
// asks for the user name, then the password.
type loginAuth struct {
	user, password string
	step           int
}

func (a *loginAuth) Start(*smtp.ServerInfo) (string, []byte, error) { return "LOGIN", nil, nil }

func (a *loginAuth) Next(_ []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	a.step++
	switch a.step {
	case 1:
		return []byte(a.user), nil
	case 2:
		return []byte(a.password), nil
	}
	return nil, errors.New("unexpected server challenge")
}

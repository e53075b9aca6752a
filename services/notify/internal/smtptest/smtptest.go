// Package smtptest is a small, real SMTP server for tests, in the spirit of
// net/http/httptest: it listens on loopback, speaks the protocol a mail
// client needs (EHLO/HELO, STARTTLS or implicit TLS with a self-signed
// certificate made for the test, AUTH PLAIN and LOGIN, MAIL FROM, RCPT TO,
// DATA with dot-unstuffing, RSET, NOOP, QUIT) and records what it accepts.
// It can refuse recipients for good and fail messages for a while, to test
// how a client handles both.
package smtptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Options configure a Server.
type Options struct {
	// TLS offers STARTTLS, or with Implicit speaks TLS from the first byte.
	TLS      bool
	Implicit bool
	// Username and Password, when set, are required (AUTH) before MAIL FROM.
	Username, Password string
	// AuthMechanisms advertised; "PLAIN LOGIN" when empty.
	AuthMechanisms string
	// AuthBeforeTLS advertises AUTH on plaintext connections too (real
	// servers usually do not).
	AuthBeforeTLS bool
	// RejectRecipient, when it returns true for an address, answers its RCPT TO with 550.
	RejectRecipient func(addr string) bool
	// TempFailures is how many messages are answered 451 at the end of DATA
	// before messages are accepted.
	TempFailures int
}

// Message is a message the server accepted.
type Message struct {
	From string
	To   []string
	// Data is the message as sent, dot-unstuffed, with CRLF line endings.
	Data []byte
	// TLS reports whether the session was encrypted; AuthUser who authenticated.
	TLS      bool
	AuthUser string
}

// Session records the commands of one connection (verbs and arguments, AUTH
// payloads left out), so tests can see what a client did.
type Session struct {
	Commands []string
	TLS      bool
}

// Server is a running test SMTP server.
type Server struct {
	opts    Options
	ln      net.Listener
	cert    tls.Certificate
	roots   *x509.CertPool
	wg      sync.WaitGroup
	mu      sync.Mutex
	msgs    []Message
	conns   map[net.Conn]bool
	tempf   int
	changed chan struct{} // closed and replaced whenever a message or session ends
	ended   []Session
}

// Start starts a server on 127.0.0.1; it stops when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s := &Server{opts: opts, conns: map[net.Conn]bool{}, tempf: opts.TempFailures, changed: make(chan struct{})}
	var err error
	if s.cert, s.roots, err = selfSigned(); err != nil {
		t.Fatalf("smtptest: certificate: %v", err)
	}
	if s.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatalf("smtptest: listen: %v", err)
	}
	s.wg.Go(s.serve)
	t.Cleanup(s.Close)
	return s
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// RootCAs trusts the server's certificate.
func (s *Server) RootCAs() *x509.CertPool { return s.roots }

// URL is the smtp:// (or smtps://) URL of the server, with the credentials.
func (s *Server) URL() string {
	u := url.URL{Scheme: "smtp", Host: s.Addr()}
	if s.opts.Implicit {
		u.Scheme = "smtps"
	}
	if s.opts.Username != "" {
		u.User = url.UserPassword(s.opts.Username, s.opts.Password)
	}
	return u.String()
}

// Messages returns the messages accepted so far.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Sessions returns the sessions that have ended.
func (s *Server) Sessions() []Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Session(nil), s.ended...)
}

// WaitMessages waits until at least n messages were accepted and returns them.
func (s *Server) WaitMessages(t testing.TB, n int, timeout time.Duration) []Message {
	t.Helper()
	deadline := time.After(timeout)
	for {
		s.mu.Lock()
		msgs, changed := append([]Message(nil), s.msgs...), s.changed
		s.mu.Unlock()
		if len(msgs) >= n {
			return msgs
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("smtptest: %d messages after %v, want %d", len(msgs), timeout, n)
			return nil
		}
	}
}

// WaitSessions waits until at least n sessions have ended and returns them.
func (s *Server) WaitSessions(t testing.TB, n int, timeout time.Duration) []Session {
	t.Helper()
	deadline := time.After(timeout)
	for {
		s.mu.Lock()
		sessions, changed := append([]Session(nil), s.ended...), s.changed
		s.mu.Unlock()
		if len(sessions) >= n {
			return sessions
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("smtptest: %d sessions after %v, want %d", len(sessions), timeout, n)
			return nil
		}
	}
}

// Close stops the server and waits for its connections to end.
func (s *Server) Close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Server) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = true
		s.mu.Unlock()
		s.wg.Go(func() {
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
			s.session(c)
		})
	}
}

// announce wakes waiters; call with s.mu held.
func (s *Server) announce() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// session is the conversation on one connection.
type session struct {
	srv    *Server
	conn   net.Conn
	tp     *textproto.Conn
	tls    bool
	helo   bool
	user   string
	from   string
	to     []string
	record Session
}

func (s *Server) session(c net.Conn) {
	c.SetDeadline(time.Now().Add(time.Minute))
	ss := &session{srv: s, conn: c}
	if s.opts.Implicit {
		tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{s.cert}})
		if err := tc.Handshake(); err != nil {
			return
		}
		ss.conn, ss.tls = tc, true
	}
	ss.tp = textproto.NewConn(ss.conn)
	defer func() {
		ss.record.TLS = ss.tls
		s.mu.Lock()
		s.ended = append(s.ended, ss.record)
		s.announce()
		s.mu.Unlock()
	}()
	ss.reply(220, "smtptest ESMTP ready")
	for {
		line, err := ss.tp.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		verb = strings.ToUpper(verb)
		if verb == "AUTH" {
			mech, _, _ := strings.Cut(arg, " ")
			ss.record.Commands = append(ss.record.Commands, "AUTH "+strings.ToUpper(mech))
		} else {
			ss.record.Commands = append(ss.record.Commands, strings.TrimSpace(verb+" "+arg))
		}
		if quit := ss.command(verb, arg); quit {
			return
		}
	}
}

func (ss *session) reply(code int, lines ...string) {
	for i, l := range lines {
		sep := "-"
		if i == len(lines)-1 {
			sep = " "
		}
		ss.tp.PrintfLine("%d%s%s", code, sep, l)
	}
}

// authOffered reports whether AUTH is advertised and accepted now.
func (ss *session) authOffered() bool {
	o := ss.srv.opts
	return o.Username != "" && (ss.tls || o.AuthBeforeTLS)
}

// command handles one command and reports whether the session ends.
func (ss *session) command(verb, arg string) bool {
	o := ss.srv.opts
	switch verb {
	case "EHLO":
		ss.helo, ss.from, ss.to = true, "", nil
		lines := []string{"smtptest greets " + arg, "8BITMIME", "PIPELINING"}
		if o.TLS && !ss.tls {
			lines = append(lines, "STARTTLS")
		}
		if ss.authOffered() {
			mechs := o.AuthMechanisms
			if mechs == "" {
				mechs = "PLAIN LOGIN"
			}
			lines = append(lines, "AUTH "+mechs)
		}
		ss.reply(250, append(lines, "HELP")...)
	case "HELO":
		ss.helo, ss.from, ss.to = true, "", nil
		ss.reply(250, "smtptest")
	case "STARTTLS":
		if !o.TLS || ss.tls {
			ss.reply(502, "5.5.1 STARTTLS not available")
			return false
		}
		ss.reply(220, "2.0.0 Ready to start TLS")
		tc := tls.Server(ss.conn, &tls.Config{Certificates: []tls.Certificate{ss.srv.cert}})
		if err := tc.Handshake(); err != nil {
			return true
		}
		// RFC 3207: the session starts over.
		ss.conn, ss.tls, ss.helo, ss.user, ss.from, ss.to = tc, true, false, "", "", nil
		ss.tp = textproto.NewConn(tc)
	case "AUTH":
		ss.auth(arg)
	case "MAIL":
		addr, ok := path(arg, "FROM:")
		switch {
		case !ss.helo:
			ss.reply(503, "5.5.1 EHLO first")
		case o.Username != "" && ss.user == "":
			ss.reply(530, "5.7.0 Authentication required")
		case !ok:
			ss.reply(501, "5.5.4 Syntax: MAIL FROM:<address>")
		default:
			ss.from, ss.to = addr, nil
			ss.reply(250, "2.1.0 OK")
		}
	case "RCPT":
		addr, ok := path(arg, "TO:")
		switch {
		case ss.from == "":
			ss.reply(503, "5.5.1 MAIL first")
		case !ok || addr == "":
			ss.reply(501, "5.5.4 Syntax: RCPT TO:<address>")
		case o.RejectRecipient != nil && o.RejectRecipient(addr):
			ss.reply(550, "5.1.1 No such user here")
		default:
			ss.to = append(ss.to, addr)
			ss.reply(250, "2.1.5 OK")
		}
	case "DATA":
		if len(ss.to) == 0 {
			ss.reply(503, "5.5.1 RCPT first")
			return false
		}
		ss.reply(354, "End data with <CR><LF>.<CR><LF>")
		data, err := io.ReadAll(ss.tp.DotReader())
		if err != nil {
			return true
		}
		ss.deliver(data)
		ss.from, ss.to = "", nil
	case "RSET":
		ss.from, ss.to = "", nil
		ss.reply(250, "2.0.0 OK")
	case "NOOP":
		ss.reply(250, "2.0.0 OK")
	case "QUIT":
		ss.reply(221, "2.0.0 Bye")
		return true
	default:
		ss.reply(502, "5.5.2 Command not recognized")
	}
	return false
}

// deliver accepts (or, while TempFailures last, defers) a message.
func (ss *session) deliver(data []byte) {
	srv := ss.srv
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.tempf > 0 {
		srv.tempf--
		ss.reply(451, "4.3.0 Try again later")
		return
	}
	// DotReader turns CRLF into LF; put the wire's line endings back.
	data = []byte(strings.ReplaceAll(string(data), "\n", "\r\n"))
	srv.msgs = append(srv.msgs, Message{From: ss.from, To: ss.to, Data: data, TLS: ss.tls, AuthUser: ss.user})
	ss.reply(250, fmt.Sprintf("2.0.0 OK queued as %d", len(srv.msgs)))
	srv.announce()
}

// auth runs AUTH PLAIN or AUTH LOGIN.
func (ss *session) auth(arg string) {
	o := ss.srv.opts
	mech, initial, _ := strings.Cut(arg, " ")
	if !ss.authOffered() {
		ss.reply(503, "5.5.1 AUTH not available")
		return
	}
	if ss.user != "" {
		ss.reply(503, "5.5.1 Already authenticated")
		return
	}
	var user, pass string
	switch strings.ToUpper(mech) {
	case "PLAIN":
		if initial == "" {
			ss.reply(334, "")
			initial, _ = ss.tp.ReadLine()
		}
		b, err := base64.StdEncoding.DecodeString(initial)
		parts := strings.Split(string(b), "\x00")
		if err != nil || len(parts) != 3 {
			ss.reply(501, "5.5.2 Bad PLAIN response")
			return
		}
		user, pass = parts[1], parts[2]
	case "LOGIN":
		var ok bool
		if user, ok = ss.prompt("Username:"); !ok {
			return
		}
		if pass, ok = ss.prompt("Password:"); !ok {
			return
		}
	default:
		ss.reply(504, "5.5.4 Unrecognized authentication type")
		return
	}
	if user != o.Username || pass != o.Password {
		ss.reply(535, "5.7.8 Authentication credentials invalid")
		return
	}
	ss.user = user
	ss.reply(235, "2.7.0 Authentication successful")
}

// prompt sends a base64 challenge and decodes the answer.
func (ss *session) prompt(challenge string) (string, bool) {
	ss.reply(334, base64.StdEncoding.EncodeToString([]byte(challenge)))
	line, err := ss.tp.ReadLine()
	if err != nil {
		return "", false
	}
	b, err := base64.StdEncoding.DecodeString(line)
	if err != nil {
		ss.reply(501, "5.5.2 Bad base64")
		return "", false
	}
	return string(b), true
}

// path parses "FROM:<addr> PARAMS" after its keyword.
func path(arg, keyword string) (string, bool) {
	if len(arg) < len(keyword) || !strings.EqualFold(arg[:len(keyword)], keyword) {
		return "", false
	}
	rest := strings.TrimSpace(arg[len(keyword):])
	if !strings.HasPrefix(rest, "<") {
		return "", false
	}
	end := strings.Index(rest, ">")
	if end < 0 {
		return "", false
	}
	return rest[1:end], true
}

// selfSigned makes a certificate for 127.0.0.1 and localhost, and a pool trusting it.
func selfSigned() (tls.Certificate, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "smtptest"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool, nil
}

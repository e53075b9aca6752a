package notify_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/grpcx"
	"gatehouse.dev/platform/pg"
	"gatehouse.dev/platform/sealed"
	"gatehouse.dev/platform/testkit"
	notifyv1 "gatehouse.dev/proto/gatehouse/notify/v1"
	"gatehouse.dev/services/notify"
	"gatehouse.dev/services/notify/internal/smtptest"
)

const publicURL = "https://auth.example.org/"

// clock is a settable time source shared by every instance of a test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// env is the infrastructure of one test: NATS, a database, a mail server and
// a clock, which service instances come and go on.
type env struct {
	js    jetstream.JetStream
	dbURL string
	smtp  *smtptest.Server
	clock *clock
	logs  *syncBuffer
	// keyring seals the service's key; every instance of the test shares it.
	keyring *sealed.Keyring
}

func newEnv(t *testing.T, smtpOpts smtptest.Options) *env {
	t.Helper()
	e := &env{
		js:    testkit.NATS(t),
		dbURL: testkit.Postgres(t),
		smtp:  smtptest.Start(t, smtpOpts),
		clock: &clock{t: time.Now().UTC().Truncate(time.Second)},
		logs:  &syncBuffer{},

		keyring: sealed.NewRandomKeyring(),
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("service log:\n%s", e.logs.String())
		}
	})
	return e
}

// instance is one running notify service behind a real gRPC server.
type instance struct {
	svc    *notify.Service
	client notifyv1.NotifyServiceClient
	pool   *pgxpool.Pool
	stop   func()
}

// start runs a service on the env; configure may change its configuration.
// It stops when the test ends, or earlier with stop.
func (e *env) start(t *testing.T, configure ...func(*notify.Config)) *instance {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logger := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	pool, err := pg.Connect(ctx, e.dbURL, notify.Schema)
	if err != nil {
		t.Fatal(err)
	}
	cfg := notify.Config{PublicURL: publicURL, ServiceName: "Example Auth", From: "Example Auth <noreply@example.org>",
		ReplyTo: "support@example.org", SMTPURL: e.smtp.URL()}
	for _, f := range configure {
		f(&cfg)
	}
	svc, err := notify.New(ctx, cfg, notify.Deps{Pool: pool, JetStream: e.js, Logger: logger, SMTPRootCAs: e.smtp.RootCAs(), Now: e.clock.Now, Keyring: e.keyring})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { svc.Run(ctx) })
	// Every notify RPC is the web service's to call.
	secret := []byte("a test's internal secret, 32+ bytes long")
	srv := grpcx.NewServer(grpcx.ServerOptions{Logger: logger, Auth: &grpcx.Auth{InternalSecret: secret}})
	svc.RegisterGRPC(srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wg.Go(func() { grpcx.ServeListener(ctx, srv, lis) })
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			ctx, cancel := context.WithTimeout(ctx, 20*time.Second) // a hung call fails the test with the service's log
			defer cancel()
			ctx = metadata.AppendToOutgoingContext(ctx, grpcx.AuthorizationHeader, "Bearer "+grpcx.DeriveCredential(secret, "web"))
			return invoker(ctx, method, req, reply, cc, opts...)
		}))
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			conn.Close()
			cancel()
			wg.Wait()
			pool.Close()
		})
	}
	t.Cleanup(stop)
	return &instance{svc: svc, client: notifyv1.NewNotifyServiceClient(conn), pool: pool, stop: stop}
}

// verify starts a verification and fails the test on error.
func verify(t *testing.T, c notifyv1.NotifyServiceClient, req *notifyv1.StartVerificationRequest) *notifyv1.StartVerificationResponse {
	t.Helper()
	resp, err := c.StartVerification(context.Background(), req)
	if err != nil {
		t.Fatalf("StartVerification(%v): %v", req, err)
	}
	return resp
}

// email is a delivered message, parsed.
type email struct {
	header     mail.Header
	subject    string
	text, html string
	raw        smtptest.Message
}

func parseEmail(t *testing.T, m smtptest.Message) email {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
	if err != nil {
		t.Fatalf("read message: %v", err)
	}
	e := email{header: msg.Header, raw: m}
	if e.subject, err = new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject")); err != nil {
		t.Fatal(err)
	}
	_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		part, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(quotedprintable.NewReader(part))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(part.Header.Get("Content-Type"), "text/html") {
			e.html = string(body)
		} else {
			e.text = string(body)
		}
	}
	return e
}

var (
	codeRE   = regexp.MustCompile(`(?m)^\s+(\d{6})\s*$`)
	ticketRE = regexp.MustCompile(`recover/([A-Za-z0-9]{32})`)
)

// code is the code in an email's text.
func (e email) code(t *testing.T) string {
	t.Helper()
	m := codeRE.FindStringSubmatch(e.text)
	if m == nil {
		t.Fatalf("no code in %q", e.text)
	}
	if !strings.Contains(e.html, m[1]) {
		t.Errorf("code %s missing from the HTML part", m[1])
	}
	return m[1]
}

// ticket is the recovery ticket in an email's link.
func (e email) ticket(t *testing.T) string {
	t.Helper()
	m := ticketRE.FindStringSubmatch(e.text)
	if m == nil {
		t.Fatalf("no recovery link in %q", e.text)
	}
	if !strings.Contains(e.text, publicURL+"recover/"+m[1]) || !strings.Contains(e.html, publicURL+"recover/"+m[1]) {
		t.Errorf("link is not %srecover/<ticket> in both parts", publicURL)
	}
	return m[1]
}

// mails waits for the n-th message and returns all of them, parsed.
func (e *env) mails(t *testing.T, n int) []email {
	t.Helper()
	var out []email
	for _, m := range e.smtp.WaitMessages(t, n, 10*time.Second) {
		out = append(out, parseEmail(t, m))
	}
	return out
}

// settle waits for a short while and checks that exactly n messages arrived.
func (e *env) settle(t *testing.T, n int) {
	t.Helper()
	time.Sleep(300 * time.Millisecond)
	if got := len(e.smtp.Messages()); got != n {
		t.Fatalf("%d messages arrived, want %d", got, n)
	}
}

// wantStatus checks an RPC error's code, and that its message holds msg and
// names field.
func wantStatus(t *testing.T, err error, code codes.Code, msg, field string) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != code {
		t.Fatalf("code = %v (%q), want %v", st.Code(), st.Message(), code)
	}
	if !strings.Contains(st.Message(), msg) {
		t.Errorf("message %q lacks %q", st.Message(), msg)
	}
	if got := errs.FieldOf(errs.FromStatus(err)); got != field {
		t.Errorf("field = %q, want %q", got, field)
	}
}

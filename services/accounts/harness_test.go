package accounts_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/personal"
	"gatehouse.dev/platform/pg"
	"gatehouse.dev/platform/sealed"
	"gatehouse.dev/platform/testkit"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/accounts"
)

// harness is an accounts service like start's, with handles on what tests of
// background work need: the stream, the database, its Run and its clock.
type harness struct {
	c    accountsv1.AccountsServiceClient
	svc  *accounts.Service
	js   jetstream.JetStream
	pool *pgxpool.Pool
	// stopRun ends the service's Run (its projections and activity flushes)
	// and waits until it returned; gRPC keeps serving.
	stopRun func()
	// srv is the gRPC server, for connections as a particular caller.
	srv *testkit.GRPCServer
	// keys are the service's personal keys.
	keys *personal.Store
}

// personal returns the service's personal keys, to open what events seal.
func (h *harness) personal(t *testing.T) *personal.Store {
	t.Helper()
	if h.keys == nil {
		t.Fatal("no personal keys in this harness")
	}
	return h.keys
}

// startHarness starts a service with cfg changed by configure.
func startHarness(t *testing.T, configure func(*accounts.Config)) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	logger := slog.New(slog.DiscardHandler)
	pool, err := pg.Connect(ctx, testkit.Postgres(t), accounts.Schema)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	js := testkit.NATS(t)
	cfg := accounts.Config{ServerName: "example.org", Passwords: cheap}
	if configure != nil {
		configure(&cfg)
	}
	ring := sealed.NewRandomKeyring()
	keys, err := personal.Open(ctx, js, ring, personal.Config{})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := accounts.New(ctx, cfg, accounts.Deps{Pool: pool, JetStream: js, Logger: logger, Keyring: ring, Personal: keys})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		svc.Run(runCtx)
	}()
	var once sync.Once
	stopRun := func() {
		once.Do(func() {
			stop()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("Run did not return after its context ended")
			}
		})
	}
	t.Cleanup(stopRun)

	srv := testkit.ServeGRPC(t, svc.RegisterGRPC, testkit.GRPCOptions{Logger: logger})
	conn := srv.DialAuto(t)
	return &harness{c: accountsv1.NewAccountsServiceClient(conn), svc: svc, js: js, pool: pool, stopRun: stopRun, srv: srv, keys: keys}
}

// events returns the records stored on subjects (which may hold wildcards), oldest first.
func (h *harness) events(t *testing.T, subject string) []eventlog.Record {
	t.Helper()
	ctx := context.Background()
	stream := eventsv1.Accounts.Name
	if strings.HasPrefix(subject, eventsv1.Audit.Prefix+".") {
		stream = eventsv1.Audit.Name
	}
	c, err := h.js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pending := int(info.NumPending)
	var out []eventlog.Record
	for len(out) < pending {
		batch, err := c.Fetch(pending-len(out), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			rec, err := eventlog.DecodeMsg(m)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, rec)
			n++
		}
		if n == 0 {
			t.Fatalf("fetched %d of %d events on %s", len(out), pending, subject)
		}
	}
	return out
}

// fakeClock is a settable clock for session lifetimes.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Now().Truncate(time.Second)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// eventually retries check until it returns nil or 10 seconds pass.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

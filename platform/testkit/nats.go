package testkit

import (
	"net/url"
	"strconv"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/natsserver"
)

// NATSServer is an embedded real nats-server with JetStream for one test.
type NATSServer struct {
	*natsserver.Server
	// Dir is the JetStream store directory; it survives Stop and Start.
	Dir  string
	port int
}

// StartNATS starts a real nats-server with JetStream on a random port with its
// store in a temporary directory; it is shut down when the test ends.
func StartNATS(t testing.TB) *NATSServer {
	t.Helper()
	dir := t.TempDir()
	srv, err := natsserver.Start(natsserver.Options{StoreDir: dir, Anonymous: true})
	if err != nil {
		t.Fatalf("start nats: %v", err)
	}
	u, err := url.Parse(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	ns := &NATSServer{Server: srv, Dir: dir, port: port}
	t.Cleanup(func() { ns.Shutdown() })
	return ns
}

// Stop shuts the server down, as when NATS goes away under its clients.
func (s *NATSServer) Stop() { s.Shutdown() }

// Start starts the server again on the same address with the same store,
// as when NATS comes back.
func (s *NATSServer) Start(t testing.TB) {
	t.Helper()
	srv, err := natsserver.Start(natsserver.Options{StoreDir: s.Dir, Anonymous: true, Port: s.port})
	if err != nil {
		t.Fatalf("start nats again: %v", err)
	}
	s.Server = srv
}

// Connect opens a client connection closed when the test ends.
func (s *NATSServer) Connect(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), eventlog.ConnOptions()...)
	if err != nil {
		t.Fatalf("connect nats: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return nc, js
}

// NATS starts a server and returns a connected JetStream context.
func NATS(t testing.TB) jetstream.JetStream {
	t.Helper()
	_, js := StartNATS(t).Connect(t)
	return js
}

// Package natsserver runs the real nats-server with JetStream inside the process.
//
// It is used by `gatehouse serve` when no external NATS URL is configured, and
// by the test kit. File storage lives under the given directory, so a restart of
// the process keeps every acknowledged event. It listens on loopback unless
// told otherwise and requires credentials (a user and password, or an nkey).
package natsserver

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// Options configures an embedded server.
type Options struct {
	// StoreDir holds JetStream's file storage. Required.
	StoreDir string
	// User and Password, or the public Nkey ("U…") of a client's key pair,
	// are the credentials every client must present. One of them is
	// required unless Anonymous is set.
	User, Password string
	Nkey           string
	// Anonymous lets any client connect without credentials (tests only).
	Anonymous bool
	// Host to listen on; defaults to 127.0.0.1.
	Host string
	// Port to listen on; 0 or -1 picks a free port.
	Port int
	// ServerName names the server in JetStream metadata; defaults to "gatehouse".
	ServerName string
	// Logs enables nats-server's own logging to stderr.
	Logs bool
}

// Server is a running embedded nats-server.
type Server struct {
	srv *server.Server
}

// Start starts a server and waits until it accepts connections.
func Start(opts Options) (*Server, error) {
	if opts.StoreDir == "" {
		return nil, errors.New("natsserver: StoreDir is required")
	}
	host := opts.Host
	if host == "" {
		host = "127.0.0.1"
	}
	port := opts.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	name := opts.ServerName
	if name == "" {
		name = "gatehouse"
	}
	sopts := &server.Options{
		ServerName: name,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   opts.StoreDir,
		NoSigs:     true,
		NoLog:      !opts.Logs,
		// Events are small; a generous payload limit still guards the server.
		MaxPayload: 8 << 20,
	}
	switch {
	case opts.Nkey != "" && opts.User != "":
		return nil, errors.New("natsserver: give a user and password or an nkey, not both")
	case opts.Nkey != "":
		if !nkeys.IsValidPublicUserKey(opts.Nkey) {
			return nil, errors.New("natsserver: Nkey is not a public user nkey")
		}
		sopts.Nkeys = []*server.NkeyUser{{Nkey: opts.Nkey}}
	case opts.User != "" && opts.Password != "":
		sopts.Users = []*server.User{{Username: opts.User, Password: opts.Password}}
	case opts.User != "" || opts.Password != "":
		return nil, errors.New("natsserver: a user needs a password")
	case !opts.Anonymous:
		return nil, errors.New("natsserver: no credentials: give a user and password or an nkey (or Anonymous, for tests)")
	}
	srv, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("natsserver: configure: %w", err)
	}
	if opts.Logs {
		srv.ConfigureLogger()
	}
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("natsserver: not ready for connections after 30s")
	}
	return &Server{srv: srv}, nil
}

// ClientURL is the nats:// URL clients connect to.
func (s *Server) ClientURL() string { return s.srv.ClientURL() }

// InProcessConn is a connection to the server within this process, without
// a socket (nats.InProcessServer): what a process embedding the server
// uses, sparing each publish and delivery two system calls.
func (s *Server) InProcessConn() (net.Conn, error) { return s.srv.InProcessConn() }

// Varz is the server's general state, as its /varz monitoring endpoint
// shows it: memory, connections, JetStream usage.
func (s *Server) Varz() (*server.Varz, error) { return s.srv.Varz(nil) }

// Shutdown stops the server and waits for it to finish, flushing JetStream storage.
func (s *Server) Shutdown() {
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
}

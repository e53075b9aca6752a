package testkit

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net"
	"slices"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"gatehouse.dev/platform/caller"
	"gatehouse.dev/platform/grpcx"
)

// GRPCOptions configures ServeGRPC.
type GRPCOptions struct {
	// Logger logs calls; nil discards.
	Logger *slog.Logger
	// HomeserverSecret, when set, authenticates the homeserver.
	HomeserverSecret string
	// Sessions verifies browser sessions; nil asks the accounts service on
	// the same server (as the accounts caller).
	Sessions grpcx.SessionVerifier
}

// GRPCServer is a real gRPC server on loopback built as Gatehouse's host
// builds it: every call is authenticated (credentials derived from an
// internal secret made for the test) and checked against the access table.
type GRPCServer struct {
	// Addr is the listening address.
	Addr   string
	secret []byte
}

// ServeGRPC registers services on such a server and serves it until the test
// ends.
func ServeGRPC(t testing.TB, register func(grpc.ServiceRegistrar), opts GRPCOptions) *GRPCServer {
	t.Helper()
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &GRPCServer{Addr: lis.Addr().String(), secret: secret}
	auth := &grpcx.Auth{InternalSecret: secret, HomeserverSecret: opts.HomeserverSecret, Sessions: opts.Sessions}
	if auth.Sessions == nil {
		conn := s.Dial(t, "accounts")
		auth.Sessions = grpcx.AccountsSessions(conn)
	}
	srv := grpcx.NewServer(grpcx.ServerOptions{Logger: logger, Auth: auth})
	register(srv)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); grpcx.ServeListener(ctx, srv, lis) }()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

// Secret is the internal secret the server's credentials derive from.
func (s *GRPCServer) Secret() []byte { return s.secret }

// Dial returns a plain gRPC connection (statuses unconverted) calling as the
// named caller ("admin", "web", "token", ...), closed when the test ends.
func (s *GRPCServer) Dial(t testing.TB, as string) *grpc.ClientConn {
	t.Helper()
	cred, err := grpcx.ServiceCredential(s.secret, as)
	if err != nil {
		t.Fatal(err)
	}
	return dialWith(t, s.Addr, grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		return invoker(metadata.AppendToOutgoingContext(ctx, grpcx.AuthorizationHeader, "Bearer "+cred.Bearer), method, req, reply, cc, opts...)
	}))
}

// DialAuto returns a connection that calls every method as a caller its
// access option allows, for tests of a service's behaviour rather than of
// who may call it: as the web service acting for a signed-in person when the
// context carries a browser session (grpcx.WithBrowserSession), else as an
// administrator, a service, or the web service, in that order.
func (s *GRPCServer) DialAuto(t testing.TB) *grpc.ClientConn {
	t.Helper()
	return dialWith(t, s.Addr, grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		name := s.pick(ctx, method)
		return invoker(metadata.AppendToOutgoingContext(ctx, grpcx.AuthorizationHeader, "Bearer "+grpcx.DeriveCredential(s.secret, name)), method, req, reply, cc, opts...)
	}))
}

// DialAutoTo is DialAuto for a gRPC server built elsewhere — a gatehouse
// process, or services composed by hand — whose internal secret is known.
func DialAutoTo(t testing.TB, addr string, secret []byte) *grpc.ClientConn {
	t.Helper()
	return (&GRPCServer{Addr: addr, secret: secret}).DialAuto(t)
}

// pick chooses the caller DialAuto calls method as.
func (s *GRPCServer) pick(ctx context.Context, method string) string {
	allowed, _ := grpcx.AccessOf(method)
	md, _ := metadata.FromOutgoingContext(ctx)
	withSession := len(md.Get(grpcx.BrowserSessionHeader)) > 0
	if withSession && (slices.Contains(allowed, caller.WebUser) || slices.Contains(allowed, caller.Web)) {
		return "web"
	}
	for _, k := range []caller.Kind{caller.Admin, caller.Token, caller.Authorize, caller.Accounts, caller.Notify, caller.Web, caller.WebUser} {
		if slices.Contains(allowed, k) {
			if k == caller.WebUser {
				return "web"
			}
			return caller.Name(k)
		}
	}
	return "admin"
}

func dialWith(t testing.TB, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

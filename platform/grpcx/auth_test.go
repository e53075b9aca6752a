package grpcx_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"gatehouse.dev/platform/caller"
	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/grpcx"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	authorizev1 "gatehouse.dev/proto/gatehouse/authorize/v1"
	notifyv1 "gatehouse.dev/proto/gatehouse/notify/v1"
	projectionsv1 "gatehouse.dev/proto/gatehouse/projections/v1"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
)

// Every RPC of every Gatehouse service names who may call it: a new RPC
// without an access option fails here (and would be refused to everyone).
func TestEveryRPCHasAnAccessEntry(t *testing.T) {
	// The imports register these services' descriptors.
	services := []string{
		accountsv1.AccountsService_ServiceDesc.ServiceName, authorizev1.AuthorizeService_ServiceDesc.ServiceName,
		tokenv1.TokenService_ServiceDesc.ServiceName, notifyv1.NotifyService_ServiceDesc.ServiceName,
		projectionsv1.ProjectionsService_ServiceDesc.ServiceName,
	}
	found := 0
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		if !strings.HasPrefix(string(fd.Package()), "gatehouse.") {
			return true
		}
		for i := range fd.Services().Len() {
			sd := fd.Services().Get(i)
			found++
			for j := range sd.Methods().Len() {
				m := sd.Methods().Get(j)
				full := "/" + string(sd.FullName()) + "/" + string(m.Name())
				if callers, err := grpcx.AccessOf(full); err != nil || len(callers) == 0 {
					t.Errorf("%s has no access entry: %v", full, err)
				}
			}
		}
		return true
	})
	if found < len(services) {
		t.Fatalf("found %d Gatehouse services in the registry, want at least %d", found, len(services))
	}
	// The check itself sees a method without an entry.
	if _, err := grpcx.AccessOf("/grpc.health.v1.Health/Check"); err == nil {
		t.Error("AccessOf found an entry on a method that has none")
	}
	if _, err := grpcx.AccessOf("/gatehouse.token.v1.TokenService/NoSuchMethod"); err == nil {
		t.Error("AccessOf found an entry for a method that does not exist")
	}
}

// fakeToken answers CreateLoginToken with who the interceptor said called.
type fakeToken struct {
	tokenv1.UnimplementedTokenServiceServer
}

func (fakeToken) CreateLoginToken(ctx context.Context, _ *tokenv1.CreateLoginTokenRequest) (*tokenv1.CreateLoginTokenResponse, error) {
	user, err := caller.SignedIn(ctx)
	if err != nil {
		return nil, err
	}
	return &tokenv1.CreateLoginTokenResponse{LoginToken: user.ID + " " + caller.Actor(ctx)}, nil
}

func (fakeToken) Introspect(ctx context.Context, _ *tokenv1.IntrospectRequest) (*tokenv1.IntrospectResponse, error) {
	return &tokenv1.IntrospectResponse{Active: true, Username: caller.Actor(ctx)}, nil
}

const homeserverSecret = "the homeserver's shared secret"

var internalSecret = []byte("the deployment's internal secret, 32+ bytes")

// authServer serves the fake token service and the projections API with
// authentication on, with "good-session" a valid browser session of user U1.
func authServer(t *testing.T, tlsCfg *tls.Config) string {
	t.Helper()
	auth := &grpcx.Auth{
		InternalSecret:   internalSecret,
		HomeserverSecret: homeserverSecret,
		Sessions: func(_ context.Context, secret string) (*caller.User, error) {
			if secret == "good-session" {
				return &caller.User{ID: "U1", Username: "alice"}, nil
			}
			return nil, errs.Unauthenticated("no such session")
		},
		Tokens: func(_ context.Context, token string) (*caller.TokenSubject, error) {
			if strings.HasPrefix(token, "ghs.") {
				panic("a derived credential reached the token verifier")
			}
			switch token {
			case "mat_client_admin":
				return &caller.TokenSubject{ClientID: "tool", SessionID: "S1"}, nil
			case "mpt_user_admin":
				return &caller.TokenSubject{UserID: "U2", SessionID: "S2"}, nil
			case "mat_no_admin_scope":
				return nil, errs.PermissionDenied("no admin scope")
			case "mat_verifier_down":
				return nil, errs.Unavailable("the token service is down")
			}
			return nil, errs.Unauthenticated("not a live token")
		},
	}
	srv := grpcx.NewServer(grpcx.ServerOptions{Logger: slog.New(slog.DiscardHandler), Health: health.NewServer(), Auth: auth, TLS: tlsCfg})
	tokenv1.RegisterTokenServiceServer(srv, fakeToken{})
	projectionsv1.RegisterProjectionsServiceServer(srv, projectionsv1.UnimplementedProjectionsServiceServer{})
	return serve(t, srv)
}

func TestAuthentication(t *testing.T) {
	addr := authServer(t, nil)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	token := tokenv1.NewTokenServiceClient(conn)
	projections := projectionsv1.NewProjectionsServiceClient(conn)
	bearer := func(cred string, kv ...string) context.Context {
		ctx := context.Background()
		if cred != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", cred)
		}
		return metadata.AppendToOutgoingContext(ctx, kv...)
	}
	derived := func(name string) string { return "Bearer " + grpcx.DeriveCredential(internalSecret, name) }
	otherSecret := "Bearer " + grpcx.DeriveCredential([]byte("another deployment's secret, 32 bytes"), "admin")
	introspect := func(ctx context.Context) error {
		_, err := token.Introspect(ctx, &tokenv1.IntrospectRequest{Token: "t"})
		return err
	}
	loginToken := func(ctx context.Context) error {
		_, err := token.CreateLoginToken(ctx, &tokenv1.CreateLoginTokenRequest{})
		return err
	}
	rebuild := func(ctx context.Context) error {
		_, err := projections.RebuildProjection(ctx, &projectionsv1.RebuildProjectionRequest{Name: "accounts.users"})
		return err
	}
	cases := []struct {
		name string
		call func(context.Context) error
		ctx  context.Context
		want codes.Code
	}{
		{"no credential", introspect, bearer(""), codes.Unauthenticated},
		{"not a bearer", introspect, bearer("Basic " + homeserverSecret), codes.Unauthenticated},
		{"empty bearer", introspect, bearer("Bearer "), codes.Unauthenticated},
		{"wrong homeserver secret", introspect, bearer("Bearer not the secret"), codes.Unauthenticated},
		{"forged derived credential", introspect, bearer("Bearer ghs.admin.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), codes.Unauthenticated},
		{"another deployment's credential", introspect, bearer(otherSecret), codes.Unauthenticated},
		{"derived credential of an unknown caller", introspect, bearer("Bearer " + grpcx.DeriveCredential(internalSecret, "root")), codes.Unauthenticated},
		{"the homeserver's name is not a derived credential", introspect, bearer("Bearer " + grpcx.DeriveCredential(internalSecret, "homeserver")), codes.Unauthenticated},
		{"a caller header grants nothing", introspect, bearer("", "gatehouse-caller", "admin"), codes.Unauthenticated},
		{"homeserver introspects", introspect, bearer("Bearer " + homeserverSecret), codes.OK},
		{"admin introspects", introspect, bearer(derived("admin")), codes.OK},
		{"web may not introspect", introspect, bearer(derived("web")), codes.PermissionDenied},
		{"homeserver may not rebuild projections", rebuild, bearer("Bearer " + homeserverSecret), codes.PermissionDenied},
		{"token may not rebuild projections", rebuild, bearer(derived("token")), codes.PermissionDenied},
		{"admin may rebuild projections", rebuild, bearer(derived("admin")), codes.Unimplemented},
		{"login token without a session", loginToken, bearer(derived("web")), codes.PermissionDenied},
		{"login token with a bad session", loginToken, bearer(derived("web"), grpcx.BrowserSessionHeader, "bad-session"), codes.PermissionDenied},
		{"login token with a session, but as token", loginToken, bearer(derived("token"), grpcx.BrowserSessionHeader, "good-session"), codes.PermissionDenied},
		{"login token with a session, as admin", loginToken, bearer(derived("admin"), grpcx.BrowserSessionHeader, "good-session"), codes.PermissionDenied},
		{"login token for the signed-in user", loginToken, bearer(derived("web"), grpcx.BrowserSessionHeader, "good-session"), codes.OK},
		{"an admin's client token introspects", introspect, bearer("Bearer mat_client_admin"), codes.OK},
		{"an admin's personal token may rebuild projections", rebuild, bearer("Bearer mpt_user_admin"), codes.Unimplemented},
		{"a token without an admin scope", introspect, bearer("Bearer mat_no_admin_scope"), codes.PermissionDenied},
		{"a token that is not live", introspect, bearer("Bearer mat_expired"), codes.Unauthenticated},
		{"the token verifier unavailable", introspect, bearer("Bearer mat_verifier_down"), codes.Unavailable},
		{"an admin token acts for nobody signed in", loginToken, bearer("Bearer mat_client_admin", grpcx.BrowserSessionHeader, "good-session"), codes.PermissionDenied},
		{"two sessions", loginToken, bearer(derived("web"), grpcx.BrowserSessionHeader, "good-session", grpcx.BrowserSessionHeader, "good-session"), codes.PermissionDenied},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := status.Code(tc.call(tc.ctx)); got != tc.want {
				t.Fatalf("code = %v, want %v", got, tc.want)
			}
		})
	}

	// Handlers see the authenticated identity, never a claimed one.
	resp, err := token.Introspect(bearer("Bearer "+homeserverSecret, "gatehouse-actor", "admin:cli"), &tokenv1.IntrospectRequest{Token: "t"})
	if err != nil || resp.GetUsername() != "homeserver" {
		t.Errorf("actor of the homeserver's call = %q, %v", resp.GetUsername(), err)
	}
	for tok, want := range map[string]string{"mat_client_admin": "admin:client:tool", "mpt_user_admin": "admin:user:U2", strings.TrimPrefix(derived("admin"), "Bearer "): "admin:cli"} {
		resp, err := token.Introspect(bearer("Bearer "+tok), &tokenv1.IntrospectRequest{Token: "t"})
		if err != nil || resp.GetUsername() != want {
			t.Errorf("actor of a call with %.8s… = %q, %v; want %q", tok, resp.GetUsername(), err, want)
		}
	}
	lt, err := token.CreateLoginToken(bearer(derived("web"), grpcx.BrowserSessionHeader, "good-session"), &tokenv1.CreateLoginTokenRequest{})
	if err != nil || lt.GetLoginToken() != "U1 user:U1" {
		t.Errorf("login token = %q, %v; want the session's user as actor", lt.GetLoginToken(), err)
	}

	// Health stays open; reflection needs a credential, any will do.
	if _, err := healthgrpc.NewHealthClient(conn).Check(context.Background(), &healthgrpc.HealthCheckRequest{}); err != nil {
		t.Errorf("health without credentials: %v", err)
	}
	for _, tc := range []struct {
		ctx  context.Context
		want codes.Code
	}{{bearer(""), codes.Unauthenticated}, {bearer("Bearer " + homeserverSecret), codes.OK}} {
		stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(tc.ctx)
		if err == nil {
			// A refused stream may end before the request is sent (Send then
			// says io.EOF); its status comes with Recv either way.
			_ = stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
			_, err = stream.Recv()
		}
		if got := status.Code(err); got != tc.want {
			t.Errorf("reflection: code %v, want %v", got, tc.want)
		}
	}
}

// A session verifier that cannot reach accounts makes the call unavailable,
// not a permission error that would sign the person out.
func TestSessionVerifierOutage(t *testing.T) {
	auth := &grpcx.Auth{InternalSecret: internalSecret, Sessions: func(context.Context, string) (*caller.User, error) {
		return nil, errs.Unavailable("accounts is down")
	}}
	srv := grpcx.NewServer(grpcx.ServerOptions{Logger: slog.New(slog.DiscardHandler), Auth: auth})
	tokenv1.RegisterTokenServiceServer(srv, fakeToken{})
	conn, err := grpcx.Dial(serve(t, srv), grpcx.DialOptions{Credential: grpcx.Credential{Name: "web", Bearer: grpcx.DeriveCredential(internalSecret, "web")}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_, err = tokenv1.NewTokenServiceClient(conn).CreateLoginToken(grpcx.WithBrowserSession(context.Background(), "s"), &tokenv1.CreateLoginTokenRequest{})
	if errs.KindOf(err) != errs.KindUnavailable {
		t.Fatalf("err = %v, want unavailable", err)
	}
}

// With mutual TLS a client certificate names the callers it may act as.
func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := newCA(t)
	writePEM(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", ca.Raw)
	issue := func(name string, uris ...string) grpcx.TLSFiles {
		files := grpcx.TLSFiles{CertFile: filepath.Join(dir, name+".pem"), KeyFile: filepath.Join(dir, name+"-key.pem"), CAFile: filepath.Join(dir, "ca.pem")}
		der, key := issueCert(t, ca, caKey, name, uris)
		writePEM(t, files.CertFile, "CERTIFICATE", der)
		writePEM(t, files.KeyFile, "EC PRIVATE KEY", key)
		return files
	}
	serverTLS, err := grpcx.ServerTLS(issue("server", "urn:gatehouse:caller:token"))
	if err != nil {
		t.Fatal(err)
	}
	addr := authServer(t, serverTLS)
	call := func(files grpcx.TLSFiles, cred grpcx.Credential) error {
		cfg, err := grpcx.ClientTLS(files)
		if err != nil {
			t.Fatal(err)
		}
		cfg.ServerName = "server"
		conn, err := grpcx.Dial(addr, grpcx.DialOptions{TLS: cfg, Credential: cred})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, err = projectionsv1.NewProjectionsServiceClient(conn).ListProjections(context.Background(), &projectionsv1.ListProjectionsRequest{})
		return err
	}
	cases := []struct {
		name  string
		files grpcx.TLSFiles
		cred  grpcx.Credential
		want  errs.Kind
		ok    bool
	}{
		{"no client certificate", grpcx.TLSFiles{CAFile: filepath.Join(dir, "ca.pem")}, grpcx.Credential{}, errs.KindUnauthenticated, false},
		{"admin certificate", issue("admin", "urn:gatehouse:caller:admin"), grpcx.Credential{}, 0, true},
		{"web certificate", issue("web", "urn:gatehouse:caller:web"), grpcx.Credential{}, errs.KindPermissionDenied, false},
		{"certificate naming nobody", issue("nobody", "https://example.org/"), grpcx.Credential{}, errs.KindUnauthenticated, false},
		{"several callers, none chosen", issue("multi", "urn:gatehouse:caller:web", "urn:gatehouse:caller:admin"), grpcx.Credential{}, errs.KindUnauthenticated, false},
		{"several callers, admin chosen", issue("multi2", "urn:gatehouse:caller:web", "urn:gatehouse:caller:admin"), grpcx.Credential{Name: "admin"}, 0, true},
		{"several callers, one not in the certificate chosen", issue("multi3", "urn:gatehouse:caller:web", "urn:gatehouse:caller:token"), grpcx.Credential{Name: "admin"}, errs.KindUnauthenticated, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := call(tc.files, tc.cred)
			if tc.ok {
				// Authorized: the stub answers Unimplemented.
				if errs.KindOf(err) == errs.KindUnauthenticated || errs.KindOf(err) == errs.KindPermissionDenied {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if errs.KindOf(err) != tc.want {
				t.Fatalf("err = %v (kind %v), want %v", err, errs.KindOf(err), tc.want)
			}
		})
	}
	// A certificate from another CA is refused at the handshake.
	other, otherKey := newCA(t)
	der, key := issueCert(t, other, otherKey, "stranger", []string{"urn:gatehouse:caller:admin"})
	strangerFiles := grpcx.TLSFiles{CertFile: filepath.Join(dir, "stranger.pem"), KeyFile: filepath.Join(dir, "stranger-key.pem"), CAFile: filepath.Join(dir, "ca.pem")}
	writePEM(t, strangerFiles.CertFile, "CERTIFICATE", der)
	writePEM(t, strangerFiles.KeyFile, "EC PRIVATE KEY", key)
	if err := call(strangerFiles, grpcx.Credential{}); err == nil || errors.Is(err, context.Canceled) {
		t.Fatalf("a certificate of another CA was accepted: %v", err)
	}
}

func newCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func issueCert(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string, uris []string) (der, keyDER []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{name}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, u := range uris {
		parsed, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, parsed)
	}
	der, err = x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err = x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return der, keyDER
}

func writePEM(t *testing.T, path, kind string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// ARCHITECTURE.md shows the access table as the proto options define it;
// this test fails when they disagree (GATEHOUSE_UPDATE_DOCS=1 rewrites it).
func TestArchitectureShowsTheAccessTable(t *testing.T) {
	const begin, end = "<!-- access table: generated by platform/grpcx TestArchitectureShowsTheAccessTable -->", "<!-- end of access table -->"
	var b strings.Builder
	b.WriteString("| service | method | who may call it |\n|---|---|---|\n")
	for _, desc := range []grpc.ServiceDesc{
		accountsv1.AccountsService_ServiceDesc, authorizev1.AuthorizeService_ServiceDesc,
		tokenv1.TokenService_ServiceDesc, notifyv1.NotifyService_ServiceDesc, projectionsv1.ProjectionsService_ServiceDesc,
	} {
		short := desc.ServiceName[strings.LastIndex(desc.ServiceName, ".")+1:]
		for _, m := range desc.Methods {
			callers, err := grpcx.AccessOf("/" + desc.ServiceName + "/" + m.MethodName)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, c := range callers {
				if c == caller.WebUser {
					names = append(names, "web for the signed-in user")
				} else {
					names = append(names, caller.Name(c))
				}
			}
			b.WriteString("| " + short + " | `" + m.MethodName + "` | " + strings.Join(names, ", ") + " |\n")
		}
	}
	table := b.String()
	path := filepath.Join("..", "..", "ARCHITECTURE.md")
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	i, j := strings.Index(text, begin), strings.Index(text, end)
	if i < 0 || j < i {
		t.Fatalf("ARCHITECTURE.md has no %q ... %q block", begin, end)
	}
	want := text[:i+len(begin)] + "\n" + table + text[j:]
	if want == text {
		return
	}
	if os.Getenv("GATEHOUSE_UPDATE_DOCS") != "" {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatal("ARCHITECTURE.md's access table differs from the proto access options; run GATEHOUSE_UPDATE_DOCS=1 go test -run TestArchitectureShowsTheAccessTable ./platform/grpcx/")
}

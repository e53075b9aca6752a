package e2e

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"gatehouse.dev/platform/caller"
	"gatehouse.dev/platform/grpcx"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	authorizev1 "gatehouse.dev/proto/gatehouse/authorize/v1"
	_ "gatehouse.dev/proto/gatehouse/notify/v1"
	projectionsv1 "gatehouse.dev/proto/gatehouse/projections/v1"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
)

// The messages the interceptor refuses with, as opposed to a handler's own
// refusal of a request it was allowed to receive.
const (
	refusedCaller = "may not be called by"
	refusedNoUser = "needs a signed-in user"
)

// refusedByInterceptor reports whether err is the interceptor's refusal
// (not a handler's answer to an empty request).
func refusedByInterceptor(err error) bool {
	st := status.Convert(err)
	switch st.Code() {
	case codes.Unauthenticated:
		return strings.Contains(st.Message(), "credential") || strings.Contains(st.Message(), "authorization")
	case codes.PermissionDenied:
		return strings.Contains(st.Message(), refusedCaller) || strings.Contains(st.Message(), refusedNoUser) ||
			strings.Contains(st.Message(), "browser session is not valid")
	}
	return false
}

// rawConn is a gRPC connection that adds nothing to calls: each test says
// which credential a call carries.
func rawConn(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// as returns a context whose calls carry the bearer credential (none for "").
func as(credential string, kv ...string) context.Context {
	ctx := context.Background()
	if credential != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, grpcx.AuthorizationHeader, "Bearer "+credential)
	}
	return metadata.AppendToOutgoingContext(ctx, kv...)
}

// TestGRPCAccessMatrix calls every RPC of every service of a running
// `gatehouse serve` with no credential, with the homeserver's, with the admin
// CLI's and with each service's (and the web service's acting for a signed-in
// person), and checks the outcome against the access table: unauthenticated
// calls get UNAUTHENTICATED, callers the table does not name
// PERMISSION_DENIED, and callers it names reach the handler.
func TestGRPCAccessMatrix(t *testing.T) {
	e := newOAuthEnv(t)
	conn := rawConn(t, e.s.grpc)
	// A call as a signed-in person may change that person (an empty
	// DeactivateUser deactivates them): each such call is made by a new one.
	users := 0
	freshSession := func() string {
		users++
		name := "person" + strconv.Itoa(users)
		if _, err := accountsv1.NewAccountsServiceClient(e.conn).Register(context.Background(), &accountsv1.RegisterRequest{Username: name, Password: name + "'s password"}); err != nil {
			t.Fatal(err)
		}
		return browserSession(t, e.conn, name, name+"'s password", nil).GetSecret()
	}

	type credential struct {
		name    string
		kind    caller.Kind // 0: none
		ctx     func() context.Context
		session bool
		// noAdmin: a live token that grants no administration, refused
		// everywhere as such.
		noAdmin bool
	}
	creds := []credential{
		{name: "none", ctx: func() context.Context { return as("") }},
		{name: "forged", ctx: func() context.Context { return as("ghs.admin.bm90IGEgcmVhbCBjcmVkZW50aWFsIGF0IGFsbCEhISEhISEhISE") }},
		{name: "homeserver", kind: caller.Homeserver, ctx: func() context.Context { return as(homeserverSecret) }},
	}
	for _, name := range []string{"admin", "accounts", "authorize", "token", "notify", "web"} {
		k, _ := caller.ByName(name)
		cred := grpcx.DeriveCredential(e.s.secret, name)
		creds = append(creds, credential{name: name, kind: k, ctx: func() context.Context { return as(cred) }})
	}
	web := grpcx.DeriveCredential(e.s.secret, "web")
	creds = append(creds, credential{name: "web for a signed-in person", kind: caller.Web, session: true,
		ctx: func() context.Context { return as(web, grpcx.BrowserSessionHeader, freshSession()) }})
	// Issue 14: an administrator's personal access token is an admin
	// credential (the admin API forwards it); a person's OAuth token is none.
	root, err := accountsv1.NewAccountsServiceClient(e.conn).Register(context.Background(), &accountsv1.RegisterRequest{Username: "root", Admin: true})
	if err != nil {
		t.Fatal(err)
	}
	pat, err := tokenv1.NewTokenServiceClient(e.conn).CreatePersonalSession(context.Background(), &tokenv1.CreatePersonalSessionRequest{
		ActorUserId: root.GetUser().GetId(), Name: "matrix", Scope: "urn:gatehouse:admin"})
	if err != nil {
		t.Fatal(err)
	}
	creds = append(creds, credential{name: "an administrator's personal token", kind: caller.Admin, ctx: func() context.Context { return as(pat.GetAccessToken()) }})
	personToken := oauthAccessToken(t, e)
	creds = append(creds, credential{name: "a person's OAuth token", noAdmin: true, ctx: func() context.Context { return as(personToken) }})

	methods := 0
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		if !strings.HasPrefix(string(fd.Package()), "gatehouse.") {
			return true
		}
		for i := range fd.Services().Len() {
			sd := fd.Services().Get(i)
			for j := range sd.Methods().Len() {
				md := sd.Methods().Get(j)
				full := "/" + string(sd.FullName()) + "/" + string(md.Name())
				allowed, err := grpcx.AccessOf(full)
				if err != nil {
					t.Errorf("%s: %v", full, err)
					continue
				}
				methods++
				for _, c := range creds {
					ctx, cancel := context.WithTimeout(c.ctx(), 20*time.Second)
					err := conn.Invoke(ctx, full, dynamicpb.NewMessage(md.Input()), dynamicpb.NewMessage(md.Output()))
					cancel()
					st := status.Convert(err)
					mayCall := c.kind != 0 && (slices.Contains(allowed, c.kind) ||
						(c.kind == caller.Web && c.session && slices.Contains(allowed, caller.WebUser)))
					switch {
					case c.noAdmin:
						if st.Code() != codes.PermissionDenied || !strings.Contains(st.Message(), "does not grant administration") {
							t.Errorf("%s with %s: %v, want PermissionDenied (no administration)", full, c.name, err)
						}
					case c.kind == 0:
						if st.Code() != codes.Unauthenticated {
							t.Errorf("%s with %s credential: %v, want Unauthenticated", full, c.name, err)
						}
					case mayCall:
						if refusedByInterceptor(err) {
							t.Errorf("%s as %s (allowed: %v): refused: %v", full, c.name, allowed, err)
						}
					case c.kind == caller.Web && slices.Contains(allowed, caller.WebUser):
						if st.Code() != codes.PermissionDenied || !strings.Contains(st.Message(), refusedNoUser) {
							t.Errorf("%s as web without a session: %v, want PermissionDenied (needs a signed-in user)", full, err)
						}
					default:
						if st.Code() != codes.PermissionDenied || !strings.Contains(st.Message(), refusedCaller) {
							t.Errorf("%s as %s (allowed: %v): %v, want PermissionDenied", full, c.name, allowed, err)
						}
					}
				}
			}
		}
		return true
	})
	if methods < 50 {
		t.Fatalf("checked %d methods; the registry should hold every Gatehouse RPC", methods)
	}
}

// Each finding of the attack on an unauthenticated gRPC API (issue 9), one
// regression test each, on a running `gatehouse serve`.
func TestGRPCFindings(t *testing.T) {
	e := newOAuthEnv(t)
	conn := rawConn(t, e.s.grpc)
	accounts := accountsv1.NewAccountsServiceClient(conn)
	authz := authorizev1.NewAuthorizeServiceClient(conn)
	token := tokenv1.NewTokenServiceClient(conn)
	web := grpcx.DeriveCredential(e.s.secret, "web")
	admin := grpcx.DeriveCredential(e.s.secret, "admin")

	t.Run("user add --admin without a credential", func(t *testing.T) {
		_, err := accounts.Register(as(""), &accountsv1.RegisterRequest{Username: "mallory", Password: "mallory's password", Admin: true})
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("Register without credentials: %v", err)
		}
		_, err = accounts.Register(as(homeserverSecret), &accountsv1.RegisterRequest{Username: "mallory", Password: "mallory's password", Admin: true})
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("Register as the homeserver: %v", err)
		}
		// The CLI without the deployment's secret has no credential.
		code, _, stderr := runCLI(t, []string{"GATEHOUSE_DATA_DIR=" + t.TempDir()}, "user", "add", "--grpc", e.s.grpc, "--username", "mallory", "--password", "mallory's password", "--admin")
		if code == 0 || !strings.Contains(stderr, "no admin credential") {
			t.Fatalf("CLI without a credential: exit %d, %s", code, stderr)
		}
		if _, err := accountsv1.NewAccountsServiceClient(e.conn).GetUserByUsername(context.Background(), &accountsv1.GetUserByUsernameRequest{Username: "mallory"}); status.Code(err) != codes.NotFound {
			t.Fatalf("mallory exists: %v", err)
		}
	})

	t.Run("StartBrowserSession for somebody else", func(t *testing.T) {
		for _, req := range []*accountsv1.StartBrowserSessionRequest{
			{UserId: e.user.GetId()},
			{UserId: e.user.GetId(), AuthProof: e.user.GetId() + ".password.1700000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
		} {
			_, err := accounts.StartBrowserSession(as(web), req)
			if status.Code(err) != codes.PermissionDenied {
				t.Fatalf("a session for alice without her proof: %v", err)
			}
		}
		// Even the administrator cannot start one: that would be impersonation.
		_, err := accounts.StartBrowserSession(as(admin), &accountsv1.StartBrowserSessionRequest{UserId: e.user.GetId()})
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("a session for alice as admin: %v", err)
		}
	})

	t.Run("ApproveGrant with an admin scope for a non-admin", func(t *testing.T) {
		cfg := e.client
		cfg.Scopes = []string{"openid", "urn:matrix:client:api:*", "urn:synapse:admin:*"}
		resp, err := plainHTTP.Get(cfg.AuthCodeURL("state-1", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, _ := url.Parse(resp.Header.Get("Location"))
		grantID := loc.Query().Get("grant")
		if grantID == "" {
			t.Fatalf("no grant id in the sign-in redirect: %d %s", resp.StatusCode, loc)
		}
		for _, ctx := range []context.Context{as(web), as(admin), as(homeserverSecret)} {
			_, err := authz.ApproveGrant(ctx, &authorizev1.ApproveGrantRequest{GrantId: grantID})
			if status.Code(err) != codes.PermissionDenied {
				t.Fatalf("approval without alice's session: %v", err)
			}
		}
		alice := as(web, grpcx.BrowserSessionHeader, browserSession(t, e.conn, "alice", "alice's password", nil).GetSecret())
		_, err = authz.ApproveGrant(alice, &authorizev1.ApproveGrantRequest{GrantId: grantID})
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("alice (no administrator) approved urn:synapse:admin:*: %v", err)
		}
	})

	t.Run("CreateLoginToken for somebody else", func(t *testing.T) {
		for _, ctx := range []context.Context{as(web), as(admin), as(homeserverSecret), as(web, grpcx.BrowserSessionHeader, "not-a-session")} {
			if _, err := token.CreateLoginToken(ctx, &tokenv1.CreateLoginTokenRequest{}); status.Code(err) != codes.PermissionDenied {
				t.Fatalf("login token without a session: %v", err)
			}
		}
		// With alice's session the token logs in alice, nobody else.
		alice := as(web, grpcx.BrowserSessionHeader, browserSession(t, e.conn, "alice", "alice's password", nil).GetSecret())
		lt, err := token.CreateLoginToken(alice, &tokenv1.CreateLoginTokenRequest{})
		if err != nil {
			t.Fatal(err)
		}
		body := compatLogin(t, e, map[string]any{"type": "m.login.token", "token": lt.GetLoginToken()})
		if body["user_id"] != "@alice:example.org" {
			t.Fatalf("m.login.token logged in %v", body["user_id"])
		}
	})

	t.Run("GetClient reveals a secret only to the token service", func(t *testing.T) {
		reg := e.register(t, map[string]any{
			"client_name": "JWT Client", "client_uri": "https://jwt.example.com/",
			"redirect_uris": []string{"https://jwt.example.com/cb"}, "token_endpoint_auth_method": "client_secret_jwt",
			"grant_types": []string{"client_credentials"}, "response_types": []string{},
		}, http.StatusCreated)
		id := reg["client_id"].(string)
		for name, ctx := range map[string]context.Context{"web": as(web), "admin": as(admin)} {
			c, err := authz.GetClient(ctx, &authorizev1.GetClientRequest{ClientId: id})
			if err != nil || c.GetJwtSecret() != "" {
				t.Fatalf("GetClient as %s: secret %q, %v", name, c.GetJwtSecret(), err)
			}
		}
		if _, err := authz.GetClient(as(homeserverSecret), &authorizev1.GetClientRequest{ClientId: id}); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("GetClient as the homeserver: %v", err)
		}
		c, err := authz.GetClient(as(grpcx.DeriveCredential(e.s.secret, "token")), &authorizev1.GetClientRequest{ClientId: id})
		if err != nil || c.GetJwtSecret() != reg["client_secret"] {
			t.Fatalf("GetClient as token: %v", err)
		}
	})

	t.Run("RebuildProjection needs an administrator", func(t *testing.T) {
		projections := projectionsv1.NewProjectionsServiceClient(conn)
		for name, want := range map[string]codes.Code{"": codes.Unauthenticated, homeserverSecret: codes.PermissionDenied, web: codes.PermissionDenied} {
			if _, err := projections.RebuildProjection(as(name), &projectionsv1.RebuildProjectionRequest{Name: "accounts.users"}); status.Code(err) != want {
				t.Fatalf("rebuild: %v, want %v", err, want)
			}
		}
	})

	t.Run("the gatehouse-actor header forges nothing", func(t *testing.T) {
		ctx := as(admin, "gatehouse-actor", "user:"+e.user.GetId())
		if _, err := accounts.LockUser(ctx, &accountsv1.LockUserRequest{UserId: e.user.GetId(), Reason: "test"}); err != nil {
			t.Fatal(err)
		}
		if _, err := accounts.UnlockUser(as(admin), &accountsv1.UnlockUserRequest{UserId: e.user.GetId()}); err != nil {
			t.Fatal(err)
		}
		err := waitFor(10*time.Second, func() (bool, error) {
			resp, err := accounts.ListAuditEntries(as(admin), &accountsv1.ListAuditEntriesRequest{UserId: e.user.GetId()})
			if err != nil {
				return false, err
			}
			for _, en := range resp.GetEntries() {
				if strings.HasPrefix(en.GetSummary(), "locked") {
					if en.GetActor() != "admin:cli" {
						t.Fatalf("the lock is recorded as made by %q", en.GetActor())
					}
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("the homeserver may only introspect", func(t *testing.T) {
		if _, err := token.Introspect(as(homeserverSecret), &tokenv1.IntrospectRequest{Token: "mat_nothing"}); err != nil {
			t.Fatalf("introspection as the homeserver: %v", err)
		}
		calls := map[string]func() error{
			"ListSessions": func() error {
				_, err := token.ListSessions(as(homeserverSecret), &tokenv1.ListSessionsRequest{UserId: e.user.GetId()})
				return err
			},
			"CreateLoginToken": func() error {
				_, err := token.CreateLoginToken(as(homeserverSecret), &tokenv1.CreateLoginTokenRequest{})
				return err
			},
			"GetUser": func() error {
				_, err := accounts.GetUser(as(homeserverSecret), &accountsv1.GetUserRequest{UserId: e.user.GetId()})
				return err
			},
		}
		for name, call := range calls {
			if err := call(); status.Code(err) != codes.PermissionDenied {
				t.Errorf("%s as the homeserver: %v", name, err)
			}
		}
	})
}

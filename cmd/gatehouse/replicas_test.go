package main

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"gatehouse.dev/platform/testkit"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
)

// splitDeployment runs services in separate processes that share a NATS
// server and a PostgreSQL database, as a scaled deployment does.
type splitDeployment struct {
	natsURL, dbURL string
}

// splitKEK is the key-encryption key every process of a split deployment is
// configured with (base64 of 32 bytes).
const splitKEK = "c3BsaXQgZGVwbG95bWVudCBrZXkgZm9yIHRlc3RzISE="

func newSplitDeployment(t *testing.T) *splitDeployment {
	t.Helper()
	return &splitDeployment{natsURL: testkit.StartNATS(t).ClientURL(), dbURL: testkit.Postgres(t)}
}

// process starts `gatehouse serve` running only the named services; the
// others are reached at the gRPC address of `peer` (when given).
func (d *splitDeployment) process(t *testing.T, services string, peer *server, publicURL string, extra ...string) *server {
	t.Helper()
	env := append([]string{
		"GATEHOUSE_NATS_URL=" + d.natsURL,
		"GATEHOUSE_DATABASE_URL=" + d.dbURL,
		"GATEHOUSE_SERVICES=" + services,
		"GATEHOUSE_MATRIX_SECRET=" + homeserverSecret,
		"GATEHOUSE_SECRETS_ENCRYPTION_KEY=" + splitKEK,
	}, extra...)
	if publicURL != "" {
		env = append(env, "GATEHOUSE_PUBLIC_URL="+publicURL)
	}
	if peer != nil {
		for _, svc := range []string{"accounts", "authorize", "token", "notify", "web"} {
			if !strings.Contains(services, svc) {
				env = append(env, "GATEHOUSE_ENDPOINT_"+strings.ToUpper(svc)+"="+peer.grpc)
			}
		}
	}
	return startServe(t, dataDir(t), env...)
}

// restart kills the process without warning and starts it again on the same
// addresses and data.
func (s *server) restart(t *testing.T) *server {
	t.Helper()
	s.crash()
	next := &server{grpc: s.grpc, http: s.http, ops: s.ops, dataDir: s.dataDir}
	return startServeOn(t, next, s.cmd.Env)
}

// clientFor registers a public client and returns its configuration with the
// token endpoint at tokenBase.
func clientFor(t *testing.T, e *oauthEnv, tokenBase string) oauth2.Config {
	t.Helper()
	reg := e.register(t, map[string]any{
		"client_uri": "https://client.example.com/", "redirect_uris": []string{"http://127.0.0.1/callback"},
		"application_type": "native", "token_endpoint_auth_method": "none",
		"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
	}, http.StatusCreated)
	return oauth2.Config{
		ClientID:    reg["client_id"].(string),
		Endpoint:    oauth2.Endpoint{AuthURL: e.issuer + "authorize", TokenURL: tokenBase + "oauth2/token"},
		RedirectURL: "http://127.0.0.1:41234/callback",
		Scopes:      []string{"urn:matrix:client:api:*"},
	}
}

// envOn builds an oauthEnv around a running process.
func envOn(t *testing.T, s *server) *oauthEnv {
	t.Helper()
	e := &oauthEnv{s: s, issuer: "http://" + s.http + "/"}
	var err error
	e.conn, err = grpc.NewClient(s.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.conn.Close() })
	resp, err := accountsv1.NewAccountsServiceClient(e.conn).Register(context.Background(), &accountsv1.RegisterRequest{Username: "alice", Password: "alice's password"})
	if err != nil {
		t.Fatal(err)
	}
	e.user = resp.GetUser()
	return e
}

func introspectAt(t *testing.T, base, token string) map[string]any {
	t.Helper()
	e := &oauthEnv{issuer: base}
	return e.introspect(t, token)
}

// A session revoked through one token service replica is inactive on another
// within a second: every replica follows the event stream.
func TestRevocationReachesEveryReplica(t *testing.T) {
	d := newSplitDeployment(t)
	a := d.process(t, "accounts,authorize,token,notify,web", nil, "")
	e := envOn(t, a)
	b := d.process(t, "token", a, e.issuer)
	bBase := "http://" + b.http + "/"

	cfg := clientFor(t, e, bBase) // tokens come from replica B
	verifier := oauth2.GenerateVerifier()
	back := e.authorize(t, cfg, oauth2.S256ChallengeOption(verifier))
	tok, err := cfg.Exchange(context.Background(), back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange on replica B: %v", err)
	}
	if got := introspectAt(t, e.issuer, tok.AccessToken); got["active"] != true {
		t.Fatalf("replica A does not know B's token: %v", got)
	}
	resp, err := http.PostForm(bBase+"oauth2/revoke", url.Values{"token": {tok.AccessToken}, "client_id": {cfg.ClientID}})
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke on B: %v %v", resp, err)
	}
	resp.Body.Close()
	revoked := time.Now()
	for introspectAt(t, e.issuer, tok.AccessToken)["active"] != false {
		if time.Since(revoked) > time.Second {
			t.Fatal("replica A still reports the token active a second after B revoked it")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Kill the token service in the middle of a login storm and restart it: no
// issued token is lost and no code is used twice.
func TestTokenServiceCrashDuringLoginStorm(t *testing.T) {
	d := newSplitDeployment(t)
	front := d.process(t, "accounts,authorize,notify,web", nil, "")
	e := envOn(t, front)
	tokenSrv := d.process(t, "token", front, e.issuer)
	tokenBase := "http://" + tokenSrv.http + "/"
	cfg := clientFor(t, e, tokenBase)

	type login struct {
		code, verifier string
		tok            *oauth2.Token
		err            error
	}
	const workers, perWorker = 4, 6
	var (
		mu      sync.Mutex
		logins  []*login
		retries int // exchanges that met the outage and were retried
		wg      sync.WaitGroup
	)
	crashAfter := make(chan struct{})
	var once sync.Once
	for range workers {
		wg.Go(func() {
			for range perWorker {
				l := &login{verifier: oauth2.GenerateVerifier()}
				back := e.authorize(t, cfg, oauth2.S256ChallengeOption(l.verifier))
				l.code = back.Query().Get("code")
				// Retry through the outage, as a client would, for up to a minute.
				deadline := time.Now().Add(time.Minute)
				for {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					l.tok, l.err = cfg.Exchange(ctx, l.code, oauth2.VerifierOption(l.verifier))
					cancel()
					var re *oauth2.RetrieveError
					if l.err == nil || errors.As(l.err, &re) && re.Response.StatusCode < 500 || time.Now().After(deadline) {
						break
					}
					mu.Lock()
					retries++
					mu.Unlock()
					time.Sleep(100 * time.Millisecond)
				}
				mu.Lock()
				logins = append(logins, l)
				if len(logins) == workers*perWorker/3 {
					once.Do(func() { close(crashAfter) })
				}
				mu.Unlock()
			}
		})
	}
	<-crashAfter
	tokenSrv = tokenSrv.restart(t)
	wg.Wait()

	issued := 0
	for _, l := range logins {
		if l.err != nil {
			var re *oauth2.RetrieveError
			if !errors.As(l.err, &re) || re.ErrorCode != "invalid_grant" {
				t.Errorf("a login failed with something other than invalid_grant: %v", l.err)
			}
			continue
		}
		issued++
		if got := introspectAt(t, tokenBase, l.tok.AccessToken); got["active"] != true {
			t.Errorf("an issued access token was lost: %v", got)
		}
		// The code cannot be used again.
		_, err := cfg.Exchange(context.Background(), l.code, oauth2.VerifierOption(l.verifier))
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
			t.Errorf("a code was accepted twice: %v", err)
		}
	}
	if issued < workers*perWorker/2 {
		t.Fatalf("only %d of %d logins got tokens", issued, len(logins))
	}
	if retries == 0 {
		t.Fatal("no token request met the outage: the crash did not happen during the storm")
	}
	t.Logf("%d logins, %d got tokens, %d requests retried through the outage", len(logins), issued, retries)
}

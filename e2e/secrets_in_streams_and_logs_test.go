package e2e

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/host"
	"gatehouse.dev/platform/sealed"
	"gatehouse.dev/platform/secretfile"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
)

// issued is every secret one run handed out or was given, by what it is.
type issued map[string]string

// add records a secret; empty values are a test bug.
func (s issued) add(t *testing.T, what, value string) {
	t.Helper()
	if value == "" {
		t.Fatalf("no %s was issued", what)
	}
	s[what] = value
}

// The secrets of a running Gatehouse stay secret: after a run through every
// flow that issues one (registration with an emailed code, recovery by link,
// the OAuth code flow with refresh, client credentials, the device flow, the
// compatibility login, registration tokens, failed attempts with wrong
// secrets), a raw NATS client reading every message of every stream finds no
// private key material, MAC key, password hash or issued secret in clear;
// the embedded NATS server refuses that client without Gatehouse's
// credentials; and the process's output — its log at debug level and its
// traces, exported to stdout — holds none of them. The same dump finds a TTL
// on every message of what happens once (a sign-in, a registration
// started, ...).
func TestNoSecretInStreamsOrLogs(t *testing.T) {
	natsAddr := freeAddr(t)
	e := newOAuthEnv(t, "GATEHOUSE_LOG_LEVEL=debug", "GATEHOUSE_TRACES=stdout", "GATEHOUSE_NATS_LISTEN="+natsAddr)
	secrets := everyFlow(t, e)

	t.Run("NATS refuses strangers", func(t *testing.T) {
		nc, err := nats.Connect("nats://"+natsAddr, nats.NoReconnect())
		if err == nil {
			nc.Close()
			t.Fatal("a client without credentials connected to the embedded NATS server")
		}
		if !errors.Is(err, nats.ErrAuthorization) {
			t.Fatalf("a client without credentials: %v, want an authorization violation", err)
		}
	})

	t.Run("streams", func(t *testing.T) {
		msgs := dumpStreams(t, e.s.dataDir, "nats://"+natsAddr)
		keys := openServiceKeys(t, e, msgs)
		for what, v := range keys {
			secrets[what] = v
		}
		forbidden := map[string][]byte{
			"a PEM block":             []byte("-----BEGIN"),
			"an argon2 hash":          []byte("$argon2"),
			"a bcrypt hash ($2a$)":    []byte("$2a$"),
			"a bcrypt hash ($2b$)":    []byte("$2b$"),
			"a bcrypt hash ($2y$)":    []byte("$2y$"),
			`a JWK private part "d"`:  []byte(`"d":"`),
			`a JWK private part "p"`:  []byte(`"p":"`),
			`a JWK private part "q"`:  []byte(`"q":"`),
			`a JWK private part "dp"`: []byte(`"dp":"`),
		}
		for what, v := range secrets {
			if what == "verification code" {
				continue // 6 digits turn up by chance in binary data; events record no code (see notify's tests)
			}
			for enc, b := range encodings(v) {
				forbidden[what+" ("+enc+")"] = b
			}
		}
		found := 0
		for _, m := range msgs {
			for what, b := range forbidden {
				if bytes.Contains(m.data, b) || bytes.Contains(m.headers, b) {
					t.Errorf("%s seq %d (%s) holds %s", m.stream, m.seq, m.subject, what)
					found++
				}
			}
		}
		t.Logf("checked %d messages of %d streams for %d forbidden byte strings; %d found", len(msgs), len(streamsOf(msgs)), len(forbidden), found)
	})

	// What happens once per sign-in, activity flush, registration started,
	// back-channel logout, client assertion or login token, and every
	// session's end, expires:
	// storage follows live state (issue 16), and a message of these without
	// a TTL would stay for ever. (A completed registration stays, one per
	// user, as the user's own events do.)
	t.Run("what happens once expires", func(t *testing.T) {
		msgs := dumpStreams(t, e.s.dataDir, "nats://"+natsAddr)
		seen := map[string]int{}
		for _, m := range msgs {
			what := ""
			for _, prefix := range []string{"accounts.browser.", "accounts.activity.", "accounts.bclogout.", "authorize.assertion.", "token.activity.", "token.logintoken."} {
				if strings.HasPrefix(m.subject, prefix) {
					what = prefix
				}
			}
			if strings.HasPrefix(m.subject, "accounts.registration.") && bytes.Contains(m.headers, []byte("RegistrationStarted")) {
				what = "a registration started"
			}
			if strings.HasPrefix(m.subject, "token.session.") && bytes.Contains(m.headers, []byte("SessionEnded")) {
				what = "an ended session"
			}
			if what == "" {
				continue
			}
			seen[what]++
			if !bytes.Contains(m.headers, []byte(jetstream.MsgTTLHeader+": ")) {
				t.Errorf("%s seq %d (%s) has no TTL:\n%s", m.stream, m.seq, m.subject, m.headers)
			}
		}
		for _, want := range []string{"accounts.browser.", "a registration started"} {
			if seen[want] == 0 {
				t.Errorf("no message of %s to check (saw %v)", want, seen)
			}
		}
		t.Logf("messages that must expire, by kind: %v", seen)
	})

	t.Run("logs", func(t *testing.T) {
		e.s.stop(t)
		logs := e.s.log.String()
		if !strings.Contains(logs, "level=DEBUG") && !strings.Contains(logs, "level=INFO") {
			t.Fatalf("the log is empty or not at debug level:\n%s", tail(logs))
		}
		for what, v := range secrets {
			if what == "verification code" {
				// Digits only: found as a whole number, not inside another one.
				if regexp.MustCompile(`(^|[^0-9.])` + v + `([^0-9.]|$)`).MatchString(logs) {
					t.Errorf("the log holds the %s", what)
				}
				continue
			}
			for enc, b := range encodings(v) {
				if len(b) >= 8 && strings.Contains(logs, string(b)) {
					t.Errorf("the log holds the %s (%s)", what, enc)
				}
			}
		}
		for _, marker := range []string{"$argon2", "-----BEGIN"} {
			if strings.Contains(logs, marker) {
				t.Errorf("the log holds %q", marker)
			}
		}
		t.Logf("checked %d bytes of log for %d secrets", len(logs), len(secrets))
	})
}

// encodings returns a secret as it might be written: as it is, and, for
// binary keys, base64 (four forms) and hex of its bytes.
func encodings(v string) map[string][]byte {
	b := []byte(v)
	return map[string][]byte{
		"raw":         b,
		"base64":      []byte(base64.StdEncoding.EncodeToString(b)),
		"base64 raw":  []byte(base64.RawStdEncoding.EncodeToString(b)),
		"base64url":   []byte(base64.URLEncoding.EncodeToString(b)),
		"base64url r": []byte(base64.RawURLEncoding.EncodeToString(b)),
		"hex":         []byte(hex.EncodeToString(b)),
	}
}

// everyFlow runs every flow that issues a secret against e and returns the
// secrets.
func everyFlow(t *testing.T, e *oauthEnv) issued {
	t.Helper()
	ctx := context.Background()
	s := issued{}
	s.add(t, "alice's password", "alice's password")
	base := e.issuer

	// An administrator adds a user and a registration token.
	const bobPassword = "bob's administrator-set passphrase 3"
	mustCLI(t, e.s, "user", "add", "--username", "bob", "--password", bobPassword, "--email", "bob@example.org")
	s.add(t, "bob's password", bobPassword)
	s.add(t, "registration token", strings.Fields(mustCLI(t, e.s, "registration-token", "add", "--uses", "3"))[0])

	// Registration with an emailed code, in a browser without JavaScript.
	const carolPassword = "carol's registration passphrase 9"
	carol := newForm(t, base)
	resp, body := carol.post(t, "register", url.Values{"username": {"carol"}, "email": {"carol@example.org"},
		"password": {carolPassword}, "password_confirm": {carolPassword}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("registration form: %d\n%s", resp.StatusCode, body)
	}
	s.add(t, "carol's password", carolPassword)
	code := emailedCode(t, e.s.dataDir, "carol@example.org")
	s.add(t, "verification code", code)
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	carol.post(t, "register/verify", url.Values{"code": {wrong}})
	if resp, body := carol.post(t, "register/verify", url.Values{"code": {code}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("registration code: %d\n%s", resp.StatusCode, body)
	}
	s.add(t, "carol's browser session", sessionCookie(t, carol))

	// Recovery by an emailed link, then the new password signs in.
	const carolNewPassword = "carol's recovered passphrase 11"
	stranger := newForm(t, base)
	if resp, _ := stranger.post(t, "recover", url.Values{"email": {"carol@example.org"}}); resp.StatusCode >= 400 {
		t.Fatalf("recovery request: %d", resp.StatusCode)
	}
	link := emailedRecoveryLink(t, e.s.dataDir, "carol@example.org")
	s.add(t, "recovery link", link)
	s.add(t, "recovery ticket", link[strings.LastIndex(link, "/")+1:])
	path := strings.TrimPrefix(link, base)
	if resp, body := stranger.post(t, path, url.Values{"password": {carolNewPassword}, "password_confirm": {carolNewPassword}}); resp.StatusCode >= 400 {
		t.Fatalf("recovery: %d\n%s", resp.StatusCode, body)
	}
	s.add(t, "carol's new password", carolNewPassword)

	// The OAuth code flow through the sign-in and consent pages, then a refresh.
	alice := newForm(t, base)
	verifier := oauth2.GenerateVerifier()
	authCode := approveInPages(t, alice, e.client.AuthCodeURL("state-secrets", oauth2.S256ChallengeOption(verifier)), "alice", "alice's password")
	s.add(t, "authorization code", authCode)
	s.add(t, "PKCE verifier", verifier)
	s.add(t, "alice's browser session", sessionCookie(t, alice))
	tok, err := e.client.Exchange(ctx, authCode, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	s.add(t, "OAuth access token", tok.AccessToken)
	s.add(t, "OAuth refresh token", tok.RefreshToken)
	idToken, _ := tok.Extra("id_token").(string)
	s.add(t, "ID token", idToken)
	refreshed, err := e.client.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	s.add(t, "refreshed access token", refreshed.AccessToken)
	s.add(t, "rotated refresh token", refreshed.RefreshToken)

	// A confidential client: client credentials, a wrong secret, introspection.
	reg := e.register(t, map[string]any{
		"client_uri": "https://service.example.com/", "application_type": "web",
		"token_endpoint_auth_method": "client_secret_basic", "grant_types": []string{"client_credentials"},
	}, http.StatusCreated)
	clientID, _ := reg["client_id"].(string)
	clientSecret, _ := reg["client_secret"].(string)
	s.add(t, "client secret", clientSecret)
	cc := clientcredentials.Config{ClientID: clientID, ClientSecret: clientSecret, TokenURL: base + "oauth2/token"}
	ccTok, err := cc.Token(ctx)
	if err != nil {
		t.Fatalf("client credentials: %v", err)
	}
	s.add(t, "client credentials token", ccTok.AccessToken)
	const wrongSecret = "not-the-client-secret-but-a-guess-7f3a9c"
	bad := clientcredentials.Config{ClientID: clientID, ClientSecret: wrongSecret, TokenURL: base + "oauth2/token"}
	if _, err := bad.Token(ctx); err == nil {
		t.Fatal("a wrong client secret was accepted")
	}
	s.add(t, "a wrong client secret", wrongSecret)
	if got := e.introspect(t, tok.AccessToken); got["active"] != false {
		t.Fatalf("a refreshed-away access token introspects %v", got)
	}
	s.add(t, "homeserver secret", homeserverSecret)

	// The device flow, approved on the /link page by alice's browser.
	devCfg := e.deviceClient(t)
	da, err := devCfg.DeviceAuth(ctx)
	if err != nil {
		t.Fatalf("device authorization: %v", err)
	}
	s.add(t, "device code", da.DeviceCode)
	s.add(t, "user code", da.UserCode)
	if resp, body := alice.post(t, "link?code="+url.QueryEscape(da.UserCode), url.Values{"action": {"allow"}}); resp.StatusCode >= 400 {
		t.Fatalf("link page: %d\n%s", resp.StatusCode, body)
	}
	devTok, err := devCfg.DeviceAccessToken(ctx, da)
	if err != nil {
		t.Fatalf("device token: %v", err)
	}
	s.add(t, "device access token", devTok.AccessToken)
	s.add(t, "device refresh token", devTok.RefreshToken)

	// The compatibility login, and a wrong password there.
	compat := compatLogin(t, e, alicePassword(nil))
	s.add(t, "compat access token", fmt.Sprint(compat["access_token"]))
	s.add(t, "compat refresh token", fmt.Sprint(compat["refresh_token"]))
	const wrongPassword = "alice's mistyped password 42"
	if r := newMatrixClient(e).post(t, "/_matrix/client/v3/login", "", map[string]any{
		"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "alice"}, "password": wrongPassword,
	}); r.status != http.StatusForbidden {
		t.Fatalf("a wrong compat password: %d %s", r.status, r.raw)
	}
	s.add(t, "a wrong password", wrongPassword)

	// Personal access tokens (issue 14), made, used and regenerated; a
	// registration token an administrator chose.
	tokens := tokenv1.NewTokenServiceClient(e.conn)
	pat, err := tokens.CreatePersonalSession(ctx, &tokenv1.CreatePersonalSessionRequest{ActorUserId: e.user.GetId(), Name: "bot",
		Scope: "urn:matrix:client:api:* urn:matrix:client:device:SECRETSBOT"})
	if err != nil {
		t.Fatal(err)
	}
	s.add(t, "personal access token", pat.GetAccessToken())
	if got := e.introspect(t, pat.GetAccessToken()); got["active"] != true {
		t.Fatalf("personal access token: %v", got)
	}
	regen, err := tokens.RegeneratePersonalSession(ctx, &tokenv1.RegeneratePersonalSessionRequest{SessionId: pat.GetSession().GetSessionId()})
	if err != nil {
		t.Fatal(err)
	}
	s.add(t, "regenerated personal access token", regen.GetAccessToken())
	const chosen = "a-chosen-invite-2026"
	if _, err := accountsv1.NewAccountsServiceClient(e.conn).CreateRegistrationToken(ctx, &accountsv1.CreateRegistrationTokenRequest{Token: chosen}); err != nil {
		t.Fatal(err)
	}
	s.add(t, "chosen registration token", chosen)
	return s
}

// approveInPages signs in on the pages the authorization request leads to
// and consents, returning the code given back to the client.
func approveInPages(t *testing.T, f *form, authURL, username, pw string) string {
	t.Helper()
	resp, err := f.c.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	login := strings.TrimPrefix(resp.Header.Get("Location"), f.base)
	login = strings.TrimPrefix(login, "/")
	if !strings.HasPrefix(login, "login?") {
		t.Fatalf("authorize led to %q", resp.Header.Get("Location"))
	}
	resp, body := f.post(t, login, url.Values{"username": {username}, "password": {pw}})
	consent := strings.TrimPrefix(strings.TrimPrefix(resp.Header.Get("Location"), f.base), "/")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(consent, "consent?") {
		t.Fatalf("sign-in: %d %q\n%s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	resp, body = f.post(t, consent, url.Values{"action": {"allow"}})
	back, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || back.Query().Get("code") == "" {
		t.Fatalf("consent: %d %q\n%s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	return back.Query().Get("code")
}

// sessionCookie returns the value of the form's browser session cookie.
func sessionCookie(t *testing.T, f *form) string {
	t.Helper()
	u, _ := url.Parse(f.base)
	for _, c := range f.c.Jar.Cookies(u) {
		if strings.Contains(c.Name, "session") {
			return c.Value
		}
	}
	t.Fatal("no session cookie")
	return ""
}

// streamMsg is one stored message.
type streamMsg struct {
	stream, subject string
	seq             uint64
	data, headers   []byte
}

func streamsOf(msgs []streamMsg) map[string]int {
	out := map[string]int{}
	for _, m := range msgs {
		out[m.stream]++
	}
	return out
}

// natsCredentials connects as Gatehouse does to its embedded server: with
// the nkey whose seed it generated under the data dir.
func natsCredentials(t *testing.T, dataDir string) nats.Option {
	t.Helper()
	raw, err := secretfile.Load(filepath.Join(dataDir, host.NATSSeedFile))
	if err != nil {
		t.Fatal(err)
	}
	kp, err := nkeys.FromRawSeed(nkeys.PrefixByteUser, raw)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	return nats.Nkey(pub, kp.Sign)
}

// dumpStreams reads every message of every stream with a raw client.
func dumpStreams(t *testing.T, dataDir, natsURL string) []streamMsg {
	t.Helper()
	ctx := context.Background()
	nc, err := nats.Connect(natsURL, natsCredentials(t, dataDir), nats.NoReconnect())
	if err != nil {
		t.Fatalf("connect with Gatehouse's credentials: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for name := range js.StreamNames(ctx).Name() {
		names = append(names, name)
	}
	sort.Strings(names)
	var out []streamMsg
	for _, name := range names {
		st, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
			m, err := st.GetMsg(ctx, seq)
			if err != nil {
				continue // a gap
			}
			var headers bytes.Buffer
			for k, vs := range m.Header {
				fmt.Fprintf(&headers, "%s: %s\n", k, strings.Join(vs, ", "))
			}
			out = append(out, streamMsg{stream: name, subject: m.Subject, seq: seq, data: m.Data, headers: headers.Bytes()})
		}
	}
	for _, want := range []string{"ACCOUNTS", "AUTHORIZE", "NOTIFY", "TOKEN"} {
		if streamsOf(out)[want] == 0 {
			t.Fatalf("stream %s is empty or missing (streams: %v)", want, names)
		}
	}
	return out
}

// openServiceKeys opens the services' keys from their streams with the
// key-encryption key kept in the data dir, checks they are the keys in use
// (the ID-token keys are those published, the client-secret key derives the
// secrets clients get), and returns their secret parts, to be searched for.
func openServiceKeys(t *testing.T, e *oauthEnv, msgs []streamMsg) issued {
	t.Helper()
	kek, err := secretfile.Load(filepath.Join(e.s.dataDir, host.KEKFile))
	if err != nil {
		t.Fatal(err)
	}
	key, err := sealed.NewKey(kek)
	if err != nil {
		t.Fatal(err)
	}
	ring, _ := sealed.NewKeyring(key)
	out := issued{"key-encryption key": string(kek)}
	if seed, err := secretfile.Load(filepath.Join(e.s.dataDir, host.NATSSeedFile)); err == nil {
		out["NATS nkey seed"] = string(seed)
	}
	last := map[string]eventlog.Record{}
	for _, m := range msgs {
		if strings.HasSuffix(m.subject, ".keys.current") {
			rec, err := eventlog.Decode(m.seq, m.subject, m.data)
			if err != nil {
				t.Fatal(err)
			}
			last[m.subject] = rec
		}
	}
	open := func(s *eventsv1.SealedSecret, where string) []byte {
		t.Helper()
		if s == nil {
			t.Fatalf("%s is not sealed", where)
		}
		b, err := ring.Open(s, where)
		if err != nil {
			t.Fatalf("open %s: %v", where, err)
		}
		return b
	}

	tk, ok := last["token.keys.current"].Event.(*eventsv1.SigningKeysGenerated)
	if !ok || len(tk.GetPrivateJwks()) != 0 || len(tk.GetTokenMacKey()) != 0 {
		t.Fatalf("token.keys.current: %v", tk)
	}
	jwks := open(tk.GetSealedPrivateJwks(), "token.keys.current/private_jwks")
	out.add(t, "token MAC key", string(open(tk.GetSealedTokenMacKey(), "token.keys.current/token_mac_key")))
	var private struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(jwks, &private); err != nil || len(private.Keys) == 0 {
		t.Fatalf("private JWKS: %v", err)
	}
	published := fetchJWKS(t, e.issuer)
	for i, k := range private.Keys {
		kid, _ := k["kid"].(string)
		if !published[kid] {
			t.Errorf("opened key %s is not a published signing key (published: %v)", kid, published)
		}
		for _, part := range []string{"d", "p", "q", "dp", "dq", "qi"} {
			if v, ok := k[part].(string); ok {
				out.add(t, fmt.Sprintf("signing key %d private part %s", i, part), v)
				raw, err := base64.RawURLEncoding.DecodeString(v)
				if err != nil {
					t.Fatal(err)
				}
				out.add(t, fmt.Sprintf("signing key %d private part %s, bytes", i, part), string(raw))
			}
		}
	}
	out.add(t, "private JWKS", string(jwks))

	ak, ok := last["authorize.keys.current"].Event.(*eventsv1.ClientSecretKeyGenerated)
	if !ok || len(ak.GetKey()) != 0 {
		t.Fatalf("authorize.keys.current: %v", ak)
	}
	clientKey := open(ak.GetSealedKey(), "authorize.keys.current/key")
	out.add(t, "client-secret key", string(clientKey))
	// The opened key is the one in use: it derives a client's secret.
	reg := e.register(t, map[string]any{
		"client_uri": "https://derive.example.com/", "application_type": "web",
		"token_endpoint_auth_method": "client_secret_post", "grant_types": []string{"client_credentials"},
	}, http.StatusCreated)
	mac := hmac.New(sha512.New, clientKey)
	mac.Write([]byte("gatehouse client secret\x00" + reg["client_id"].(string)))
	if derived := base64.RawURLEncoding.EncodeToString(mac.Sum(nil)); derived != reg["client_secret"] {
		t.Fatal("the opened client-secret key does not derive the secret the client got")
	}

	nk, ok := last["notify.keys.current"].Event.(*eventsv1.VerificationKeyGenerated)
	if !ok || len(nk.GetKey()) != 0 {
		t.Fatalf("notify.keys.current: %v", nk)
	}
	out.add(t, "verification key", string(open(nk.GetSealedKey(), "notify.keys.current/key")))

	pk, ok := last["accounts.keys.current"].Event.(*eventsv1.AuthProofKeyGenerated)
	if !ok || len(pk.GetKey()) != 0 {
		t.Fatalf("accounts.keys.current: %v", pk)
	}
	out.add(t, "authentication proof key", string(open(pk.GetSealedKey(), "accounts.keys.current/key")))
	return out
}

// fetchJWKS returns the kids the server publishes.
func fetchJWKS(t *testing.T, issuer string) map[string]bool {
	t.Helper()
	resp, err := http.Get(issuer + "oauth2/keys.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, k := range set.Keys {
		out[k.Kid] = true
	}
	return out
}

// waitForLog waits until the server's log holds want.
func waitForLog(t *testing.T, s *server, want string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(s.log.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("the log does not say %q after 60s:\n%s", want, tail(s.log.String()))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

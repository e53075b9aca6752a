package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/oauth2/clientcredentials"
	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/host"
	"gatehouse.dev/platform/ratelimit"
	"gatehouse.dev/platform/sealed"
	"gatehouse.dev/platform/secretfile"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// rotationPhase is one start of gatehouse serve on the same data dir.
type rotationPhase struct {
	s *server
	e *oauthEnv
}

// startPhase starts gatehouse serve on dir with env, logging at INFO, with
// the embedded NATS server on natsAddr.
func startPhase(t *testing.T, dir, natsAddr string, env ...string) rotationPhase {
	t.Helper()
	s := startServe(t, dir, append([]string{"GATEHOUSE_MATRIX_SECRET=" + homeserverSecret, "GATEHOUSE_MATRIX_SERVER_NAME=example.org",
		"GATEHOUSE_LOG_LEVEL=info", "GATEHOUSE_NATS_LISTEN=" + natsAddr}, env...)...)
	return rotationPhase{s: s, e: &oauthEnv{s: s, issuer: "http://" + s.http + "/"}}
}

// newKEKText returns a new key-encryption key as configured (base64) and its id.
func newKEKText(t *testing.T) (text, id string) {
	t.Helper()
	b := make([]byte, 32)
	rand.Read(b)
	k, err := sealed.NewKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b), k.ID()
}

// eventsOf keeps the messages of the event streams: not those of
// RATELIMITS, the rate-limit counts, which are no events and expire, nor
// those of PERSONALKEYS, the personal keys.
func eventsOf(msgs []streamMsg) []streamMsg {
	var out []streamMsg
	for _, m := range msgs {
		if m.stream != ratelimit.StreamName && m.stream != eventsv1.PersonalKeys.Name {
			out = append(out, m)
		}
	}
	return out
}

// sealedUnder returns, for each keys aggregate and for alice's personal key,
// the id of the key-encryption key that sealed its latest record and why it
// was written; for alice's password, the personal key that sealed it.
func sealedUnder(t *testing.T, dir, natsAddr, aliceID string) map[string]string {
	t.Helper()
	out := map[string]string{}
	msgs := dumpStreams(t, dir, "nats://"+natsAddr)
	for _, m := range msgs {
		if m.subject == "personalkeys.user."+aliceID {
			var k eventsv1.SealedSecret
			if err := proto.Unmarshal(m.data, &k); err != nil {
				t.Fatal(err)
			}
			out["alice's personal key"] = k.GetKeyId()
		}
	}
	for _, m := range eventsOf(msgs) {
		rec, err := eventlog.Decode(m.seq, m.subject, m.data)
		if err != nil {
			t.Fatal(err)
		}
		switch ev := rec.Event.(type) {
		case *eventsv1.SigningKeysGenerated:
			out[m.subject] = ev.GetSealedPrivateJwks().GetKeyId() + " " + ev.GetChange().String()
		case *eventsv1.ClientSecretKeyGenerated:
			out[m.subject] = ev.GetSealedKey().GetKeyId() + " " + ev.GetChange().String()
		case *eventsv1.VerificationKeyGenerated:
			out[m.subject] = ev.GetSealedKey().GetKeyId() + " " + ev.GetChange().String()
		case *eventsv1.AuthProofKeyGenerated:
			out[m.subject] = ev.GetSealedKey().GetKeyId() + " " + ev.GetChange().String()
		case *eventsv1.ClaimKeyGenerated:
			out[m.subject] = ev.GetSealedKey().GetKeyId() + " " + ev.GetChange().String()
		case *eventsv1.UserRegistered:
			if ev.GetUserId() == aliceID {
				out["alice's password"] = ev.GetSealedPasswordHash().GetPersonalKey() + " registered"
			}
		case *eventsv1.PasswordChanged:
			if ev.GetUserId() == aliceID {
				out["alice's password"] = ev.GetSealedPasswordHash().GetPersonalKey() + " " + ev.GetReason().String()
			}
		}
	}
	return out
}

// wantSealedUnder checks that every service key and alice's personal key
// are sealed under keyID (the keys for keysReason), and alice's password
// under her personal key, as she registered: a rotation of the key-encryption
// key seals the personal keys again, not what they seal.
func wantSealedUnder(t *testing.T, got map[string]string, keyID, keysReason, aliceID string) {
	t.Helper()
	want := map[string]string{
		"token.keys.current":     keyID + " " + keysReason,
		"authorize.keys.current": keyID + " " + keysReason,
		"notify.keys.current":    keyID + " " + keysReason,
		"accounts.keys.current":  keyID + " " + keysReason,
		"accounts.keys.claims":   keyID + " " + keysReason,
		"alice's personal key":   keyID,
		"alice's password":       "user." + aliceID + " registered",
	}
	if !maps.Equal(got, want) {
		t.Fatalf("sealed:\n got %v\nwant %v", got, want)
	}
}

// everythingWorks checks, against one start, what must survive a rotation:
// alice signs in with her password, the confidential client gets a token with
// its secret, the ID-token keys are the same, and an emailed code (derived
// from the verification key) registers someone.
func everythingWorks(t *testing.T, p rotationPhase, cc clientcredentials.Config, kids map[string]bool, newcomer string) {
	t.Helper()
	if r := newMatrixClient(p.e).post(t, "/_matrix/client/v3/login", "", alicePassword(nil)); r.status != http.StatusOK {
		t.Fatalf("alice signs in: %d %s\n%s", r.status, r.raw, tail(p.s.log.String()))
	}
	cc.TokenURL = p.e.issuer + "oauth2/token"
	if _, err := cc.Token(context.Background()); err != nil {
		t.Fatalf("client credentials with the secret given before: %v", err)
	}
	if got := fetchJWKS(t, p.e.issuer); !maps.Equal(got, kids) {
		t.Fatalf("published keys changed: %v, were %v", slices.Collect(maps.Keys(got)), slices.Collect(maps.Keys(kids)))
	}
	f := newForm(t, p.e.issuer)
	const pw = "a newcomer's long passphrase 5"
	if resp, body := f.post(t, "register", url.Values{"username": {newcomer}, "email": {newcomer + "@example.org"},
		"password": {pw}, "password_confirm": {pw}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("registration: %d\n%s", resp.StatusCode, body)
	}
	code := emailedCode(t, p.s.dataDir, newcomer+"@example.org")
	if resp, body := f.post(t, "register/verify", url.Values{"code": {code}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the emailed code: %d\n%s", resp.StatusCode, body)
	}
}

// Rotating the key-encryption key, end to end, on the real binary: from the
// key a fresh install generated to a configured one (the generated file as a
// previous key), then from that to another configured key; each time a
// restart seals every service's keys and every personal key again under the
// new key (once), and once the old key is removed from the configuration
// (and, for the generated one, from the disk) everything starts and works:
// users sign in, clients authenticate with the secrets they were given, the
// ID-token keys are the same, emailed codes work.
func TestKeyEncryptionKeyRotation(t *testing.T) {
	dir := dataDir(t)
	natsAddr := freeAddr(t)
	generated := filepath.Join(dir, host.KEKFile)

	// A fresh install: nothing configured, the key is generated.
	p := startPhase(t, dir, natsAddr)
	waitForLog(t, p.s, "generated the key-encryption key")
	raw, err := secretfile.Load(generated)
	if err != nil {
		t.Fatal(err)
	}
	k0, _ := sealed.NewKey(raw)
	mustCLI(t, p.s, "user", "add", "--username", "alice", "--password", "alice's password")
	reg := p.e.register(t, map[string]any{
		"client_uri": "https://service.example.com/", "application_type": "web",
		"token_endpoint_auth_method": "client_secret_basic", "grant_types": []string{"client_credentials"},
	}, http.StatusCreated)
	cc := clientcredentials.Config{ClientID: reg["client_id"].(string), ClientSecret: reg["client_secret"].(string)}
	kids := fetchJWKS(t, p.e.issuer)
	aliceID := userIDOf(t, p.s, "alice")
	everythingWorks(t, p, cc, kids, "nina")
	wantSealedUnder(t, sealedUnder(t, dir, natsAddr, aliceID), k0.ID(), "SECRET_CHANGE_GENERATED", aliceID)
	p.s.stop(t)

	// Configure a key, the generated one kept as a previous key: everything
	// is sealed again under the configured key.
	k1, k1ID := newKEKText(t)
	p = startPhase(t, dir, natsAddr, "GATEHOUSE_SECRETS_ENCRYPTION_KEY="+k1, "GATEHOUSE_SECRETS_PREVIOUS_KEY_FILES="+generated)
	waitForLog(t, p.s, "every personal key is sealed under the current key-encryption key")
	wantSealedUnder(t, sealedUnder(t, dir, natsAddr, aliceID), k1ID, "SECRET_CHANGE_RESEALED", aliceID)
	everythingWorks(t, p, cc, kids, "omar")
	if strings.Contains(p.s.log.String(), "the configuration does not name") {
		t.Fatalf("warned about a key that is configured:\n%s", tail(p.s.log.String()))
	}
	before := len(eventsOf(dumpStreams(t, dir, "nats://"+natsAddr)))
	p.s.stop(t)

	// The generated key gone from the configuration and the disk.
	if err := os.Remove(generated); err != nil {
		t.Fatal(err)
	}
	p = startPhase(t, dir, natsAddr, "GATEHOUSE_SECRETS_ENCRYPTION_KEY="+k1)
	everythingWorks(t, p, cc, kids, "pia")
	if _, err := os.Stat(generated); err == nil {
		t.Fatal("a key was generated although one is configured")
	}
	// Nothing was sealed again (only the new registration's events were added).
	wantSealedUnder(t, sealedUnder(t, dir, natsAddr, aliceID), k1ID, "SECRET_CHANGE_RESEALED", aliceID)
	if n := len(eventsOf(dumpStreams(t, dir, "nats://"+natsAddr))); n <= before {
		t.Fatalf("%d messages after the registration, %d before", n, before)
	}
	p.s.stop(t)

	// Rotate again, between configured keys: k2 current, k1 previous.
	k2, k2ID := newKEKText(t)
	p = startPhase(t, dir, natsAddr, "GATEHOUSE_SECRETS_ENCRYPTION_KEY="+k2, "GATEHOUSE_SECRETS_PREVIOUS_KEYS="+k1)
	waitForLog(t, p.s, "every personal key is sealed under the current key-encryption key")
	wantSealedUnder(t, sealedUnder(t, dir, natsAddr, aliceID), k2ID, "SECRET_CHANGE_RESEALED", aliceID)
	p.s.stop(t)
	p = startPhase(t, dir, natsAddr, "GATEHOUSE_SECRETS_ENCRYPTION_KEY="+k2)
	everythingWorks(t, p, cc, kids, "quinn")
	p.s.stop(t)

	// Started with only the old key, Gatehouse refuses to start and says which key it needs.
	bad := startServeExpectingFailure(t, dir, natsAddr, "GATEHOUSE_SECRETS_ENCRYPTION_KEY="+k1)
	if !strings.Contains(bad, k2ID) || !strings.Contains(bad, "not configured") {
		t.Fatalf("a start with the wrong key does not name the key it needs:\n%s", bad)
	}
}

// userIDOf returns a user's id from the admin CLI's listing (ID, USERNAME, ...).
func userIDOf(t *testing.T, s *server, username string) string {
	t.Helper()
	for _, line := range strings.Split(mustCLI(t, s, "user", "list"), "\n") {
		if fields := strings.Fields(line); len(fields) > 1 && fields[1] == username {
			return fields[0]
		}
	}
	t.Fatalf("user %s not listed", username)
	return ""
}

// startServeExpectingFailure runs gatehouse serve on dir, which must exit
// during start, and returns its output.
func startServeExpectingFailure(t *testing.T, dir, natsAddr string, env ...string) string {
	t.Helper()
	addrs := freeAddrs(t, 3)
	s := &server{grpc: addrs[0], http: addrs[1], ops: addrs[2], dataDir: dir, log: &bytes.Buffer{}, exited: make(chan struct{})}
	s.cmd = exec.Command(binary, "serve")
	s.cmd.Env = append(os.Environ(), append([]string{
		"GATEHOUSE_DATA_DIR=" + dir, "GATEHOUSE_GRPC_ADDR=" + s.grpc, "GATEHOUSE_HTTP_ADDR=" + s.http, "GATEHOUSE_OPS_ADDR=" + s.ops,
		"GATEHOUSE_PUBLIC_URL=http://" + s.http + "/", "GATEHOUSE_NATS_LISTEN=" + natsAddr,
	}, env...)...)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Run(); err == nil {
		t.Fatalf("gatehouse serve ran and exited cleanly:\n%s", s.log)
	}
	return s.log.String()
}

package e2e

import (
	"bytes"
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/crypto/argon2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/ids"
	"gatehouse.dev/platform/testkit"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// Upgrading a deployment whose streams hold secrets in clear (written before
// sealing): Gatehouse starts on them; the ID-token signing keys and the
// verification key and the authentication proof key, which anyone who read
// the streams may have copied, are replaced by new ones (the old signing key
// stays published for an hour);
// the client-secret key and the token MAC key are kept (replacing them would
// change every client's secret and end every session) and sealed; the user
// whose hash was in clear signs in and has it sealed under her personal key;
// her address, claimed on the reversible subject of versions before keyed
// claims, is moved to its keyed subject (and stays hers); every key event
// that holds the keys in force is sealed, and the log says what happened.
func TestUpgradeFromSecretsInClear(t *testing.T) {
	ctx := context.Background()
	ns := testkit.StartNATS(t)
	_, js := ns.Connect(t)
	open := func(stream, prefix string) *eventlog.Log {
		l, err := eventlog.Open(ctx, js, eventlog.StreamConfig{Name: stream, Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	appendClear := func(l *eventlog.Log, ref eventlog.Ref, ev eventlog.Event) {
		t.Helper()
		ev.Aggregate, ev.Actor = ref, "system"
		if _, err := l.Append(ctx, eventlog.Write{Expect: eventlog.ExpectNew(), Event: ev}); err != nil {
			t.Fatal(err)
		}
	}
	keys := eventlog.Ref{Type: "keys", ID: "current"}

	// What a version before sealing wrote: keys and a password hash in clear.
	oldSigning, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	oldJWK := jose.JSONWebKey{Key: oldSigning, Algorithm: "RS256", Use: "sig"}
	thumb, _ := oldJWK.Thumbprint(crypto.SHA256)
	oldJWK.KeyID = base64.RawURLEncoding.EncodeToString(thumb)
	rawJWK, _ := json.Marshal(oldJWK)
	privateJWKS, _ := json.Marshal(map[string]any{"keys": []json.RawMessage{rawJWK}})
	macKey, clientKey, verificationKey := randomBytes(32), randomBytes(64), randomBytes(32)
	appendClear(open("TOKEN", "token"), keys, eventlog.Event{Payload: &eventsv1.SigningKeysGenerated{PrivateJwks: privateJWKS, TokenMacKey: macKey}})
	appendClear(open("AUTHORIZE", "authorize"), keys, eventlog.Event{Payload: &eventsv1.ClientSecretKeyGenerated{Key: clientKey}})
	appendClear(open("NOTIFY", "notify"), keys, eventlog.Event{Payload: &eventsv1.VerificationKeyGenerated{Key: verificationKey}})
	salt := randomBytes(16)
	hash := fmt.Sprintf("$argon2id$v=19$m=19456,t=2,p=1$%s$%s", base64.RawStdEncoding.EncodeToString(salt),
		base64.RawStdEncoding.EncodeToString(argon2.IDKey([]byte("alice's password"), salt, 2, 19456, 1, 32)))
	accounts := open("ACCOUNTS", "accounts")
	proofKey := randomBytes(32)
	appendClear(accounts, keys, eventlog.Event{Payload: &eventsv1.AuthProofKeyGenerated{Key: proofKey}})
	aliceID := ids.New()
	appendClear(accounts, eventlog.Ref{Type: "username", ID: fmt.Sprintf("%x", "alice")}, eventlog.Event{Payload: &eventsv1.UsernameReserved{Username: "alice", UserId: aliceID}})
	legacyClaim := fmt.Sprintf("%x", "alice@example.org")
	appendClear(accounts, eventlog.Ref{Type: "email", ID: legacyClaim}, eventlog.Event{Payload: &eventsv1.EmailReserved{Email: "alice@example.org", UserId: aliceID}})
	appendClear(accounts, eventlog.Ref{Type: "user", ID: aliceID}, eventlog.Event{Payload: &eventsv1.UserRegistered{UserId: aliceID, Username: "alice", PasswordHash: hash, Email: "alice@example.org"}})

	s := startServe(t, dataDir(t), "GATEHOUSE_NATS_URL="+ns.ClientURL(), "GATEHOUSE_LOG_LEVEL=info",
		"GATEHOUSE_MATRIX_SECRET="+homeserverSecret, "GATEHOUSE_MATRIX_SERVER_NAME=example.org")
	e := &oauthEnv{s: s, issuer: "http://" + s.http + "/"}
	waitForLog(t, s, "every password hash is sealed under its user's personal key")
	waitForLog(t, s, "email claims of an earlier version moved to keyed subjects")

	// alice's address is still hers, now claimed on its keyed subject.
	if _, err := accountsv1.NewAccountsServiceClient(s.dial(t)).Register(ctx, &accountsv1.RegisterRequest{
		Username: "mallory", Email: "alice@example.org", SkipVerification: true}); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("registering with alice's address after the upgrade: %v, want AlreadyExists", err)
	}

	// alice, registered in clear, signs in.
	if r := newMatrixClient(e).post(t, "/_matrix/client/v3/login", "", alicePassword(nil)); r.status != http.StatusOK {
		t.Fatalf("alice signs in: %d %s\n%s", r.status, r.raw, tail(s.log.String()))
	}
	// The old signing key is still published, next to new ones, which sign.
	published := fetchJWKS(t, e.issuer)
	if !published[oldJWK.KeyID] || len(published) < 2 {
		t.Fatalf("published keys %v: the old key %s should stay published next to new ones", published, oldJWK.KeyID)
	}
	// The client-secret key was kept: it derives the secrets clients get.
	reg := e.register(t, map[string]any{
		"client_uri": "https://service.example.com/", "application_type": "web",
		"token_endpoint_auth_method": "client_secret_basic", "grant_types": []string{"client_credentials"},
	}, http.StatusCreated)
	mac := hmac.New(sha512.New, clientKey)
	mac.Write([]byte("gatehouse client secret\x00" + reg["client_id"].(string)))
	if base64.RawURLEncoding.EncodeToString(mac.Sum(nil)) != reg["client_secret"] {
		t.Fatal("the client-secret key changed: clients registered before the upgrade lose their secrets")
	}

	// Every event holding keys in force is sealed; the old clear ones are
	// left in place (streams deny deletes), superseded.
	last := map[string]eventlog.Record{}
	keyEvents := map[string]int{}
	for _, stream := range []string{"TOKEN", "AUTHORIZE", "NOTIFY", "ACCOUNTS"} {
		st, err := js.Stream(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		info, _ := st.Info(ctx)
		for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
			m, err := st.GetMsg(ctx, seq)
			if err != nil {
				continue
			}
			rec, err := eventlog.Decode(seq, m.Subject, m.Data)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := rec.Event.(*eventsv1.PasswordChanged); ok || strings.HasSuffix(m.Subject, ".keys.current") || strings.HasPrefix(m.Subject, "accounts.email.") {
				last[m.Subject] = rec
			}
			if strings.HasSuffix(m.Subject, ".keys.current") {
				// The first event of each keys aggregate is the old one, in
				// clear; none written since holds an old key in clear.
				if keyEvents[m.Subject] > 0 {
					for _, clear := range [][]byte{macKey, clientKey, verificationKey, proofKey} {
						if bytes.Contains(m.Data, clear) {
							t.Errorf("%s seq %d holds an old key in clear", m.Subject, seq)
						}
					}
				}
				keyEvents[m.Subject]++
			}
		}
	}
	tk := last["token.keys.current"].Event.(*eventsv1.SigningKeysGenerated)
	ak := last["authorize.keys.current"].Event.(*eventsv1.ClientSecretKeyGenerated)
	nk := last["notify.keys.current"].Event.(*eventsv1.VerificationKeyGenerated)
	pk := last["accounts.keys.current"].Event.(*eventsv1.AuthProofKeyGenerated)
	pw := last["accounts.user."+aliceID].Event.(*eventsv1.PasswordChanged)
	for what, got := range map[string]struct {
		sealed bool
		change string
	}{
		"token":     {tk.GetSealedPrivateJwks() != nil && tk.GetSealedTokenMacKey() != nil && len(tk.GetPrivateJwks()) == 0, tk.GetChange().String()},
		"authorize": {ak.GetSealedKey() != nil && len(ak.GetKey()) == 0, ak.GetChange().String()},
		"notify":    {nk.GetSealedKey() != nil && len(nk.GetKey()) == 0, nk.GetChange().String()},
		"accounts":  {pk.GetSealedKey() != nil && len(pk.GetKey()) == 0, pk.GetChange().String()},
		"password":  {pw.GetSealedPasswordHash().GetPersonalKey() == "user."+aliceID && pw.GetPasswordHash() == "", pw.GetReason().String()},
	} {
		want := map[string]string{"token": "SECRET_CHANGE_ROTATED", "authorize": "SECRET_CHANGE_RESEALED",
			"notify": "SECRET_CHANGE_ROTATED", "accounts": "SECRET_CHANGE_ROTATED", "password": "PASSWORD_CHANGE_REASON_RESEALED"}[what]
		if !got.sealed || got.change != want {
			t.Errorf("%s: sealed %v, change %s; want sealed, %s", what, got.sealed, got.change, want)
		}
	}
	if _, ok := last["accounts.email."+legacyClaim].Event.(*eventsv1.EmailReleased); !ok {
		t.Errorf("the legacy claim ends in %v, not its release", last["accounts.email."+legacyClaim].Event)
	}
	keyed := 0
	for subject, rec := range last {
		if ev, ok := rec.Event.(*eventsv1.EmailReserved); ok && strings.HasPrefix(subject, "accounts.email.h") {
			keyed++
			if ev.GetUserId() != aliceID || ev.GetEmail() != "" || ev.GetSealedEmail().GetPersonalKey() != "user."+aliceID {
				t.Errorf("the keyed claim %s: %v", subject, ev)
			}
		}
	}
	if keyed != 1 {
		t.Errorf("%d keyed claims, want alice's", keyed)
	}
	for _, warning := range []string{"subject=token.keys.current", "subject=notify.keys.current", "subject=authorize.keys.current", "subject=accounts.keys.current"} {
		if !strings.Contains(s.log.String(), warning) {
			t.Errorf("the log does not say what happened to %s:\n%s", warning, tail(s.log.String()))
		}
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/oauth2"

	authorizev1 "gatehouse.dev/proto/gatehouse/authorize/v1"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// The bound of the pending stream in this test, and its short ages.
const (
	floodBound   = 1 << 20
	floodAuthTTL = 10 * time.Second
	floodLife    = 40 * time.Second // the longest: an unapproved client's
)

// floodEnv is gatehouse serve with a small AUTHORIZE_PENDING, short ages and
// low per-address limits, and a raw NATS client to read stream sizes.
type floodEnv struct {
	*oauthEnv
	js jetstream.JetStream
}

func newFloodEnv(t *testing.T) *floodEnv {
	t.Helper()
	natsAddr := freeAddr(t)
	e := newOAuthEnv(t, "GATEHOUSE_NATS_LISTEN="+natsAddr,
		"GATEHOUSE_PENDING_MAX_BYTES="+strconv.Itoa(floodBound),
		"GATEHOUSE_PENDING_AUTHORIZATION_TTL="+floodAuthTTL.String(), "GATEHOUSE_PENDING_CODE_TTL=3s",
		"GATEHOUSE_PENDING_DEVICE_CODE_TTL=10s", "GATEHOUSE_PENDING_CLIENT_TTL=40s", "GATEHOUSE_PENDING_KEEP=1s",
		"GATEHOUSE_RATE_LIMIT_AUTHORIZATION_BURST=6", "GATEHOUSE_RATE_LIMIT_AUTHORIZATION_REFILL_EVERY=1m",
		"GATEHOUSE_RATE_LIMIT_CLIENT_REGISTRATION_BURST=3", "GATEHOUSE_RATE_LIMIT_CLIENT_REGISTRATION_REFILL_EVERY=1m",
		"GATEHOUSE_RATE_LIMIT_DEVICE_AUTHORIZATION_BURST=3", "GATEHOUSE_RATE_LIMIT_DEVICE_AUTHORIZATION_REFILL_EVERY=1m")
	nc, err := nats.Connect("nats://"+natsAddr, natsCredentials(t, e.s.dataDir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return &floodEnv{oauthEnv: e, js: js}
}

// state is a stream's size and message count.
func (f *floodEnv) state(t *testing.T, name string) jetstream.StreamState {
	t.Helper()
	st, err := f.js.Stream(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State
}

// forwarded sends a request as the reverse-proxy stand-in does: from the
// proxy's (trusted, loopback) address, with the client's address appended
// to X-Forwarded-For.
func forwarded(t *testing.T, req *http.Request, client string) *http.Response {
	t.Helper()
	req.Header.Set("X-Forwarded-For", client)
	resp, err := plainHTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readAll(resp.Body)
	resp.Body.Close()
	return resp
}

// floodAddress is the n-th flooding client: IPv4 and IPv6 (a /64 each).
func floodAddress(n int) string {
	if n%2 == 0 {
		return fmt.Sprintf("198.51.%d.%d", 100+n/250%50, n%250+1)
	}
	return fmt.Sprintf("2001:db8:%x:%x::1", n/65536, n%65536)
}

// signInThrough runs the authorization code flow for alice from the given
// forwarded address: /authorize, her approval (the consent page's call),
// the code exchange. It returns the token, or the /authorize answer that
// refused it.
func (f *floodEnv) signInThrough(t *testing.T, from string) (*oauth2.Token, *http.Response) {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	req, _ := http.NewRequest(http.MethodGet, f.client.AuthCodeURL("state-flood", oauth2.S256ChallengeOption(verifier)), nil)
	resp := forwarded(t, req, from)
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || loc == nil || loc.Query().Get("grant") == "" {
		return nil, resp
	}
	approved, err := authorizev1.NewAuthorizeServiceClient(f.conn).ApproveGrant(f.signedIn(t), &authorizev1.ApproveGrantRequest{GrantId: loc.Query().Get("grant")})
	if err != nil {
		t.Fatalf("approve: %v", err)
	}
	back, _ := url.Parse(approved.GetRedirectUri())
	tok, err := f.client.Exchange(context.Background(), back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	return tok, nil
}

// refreshes checks that a session's refresh token still renews it, and
// returns the new token.
func (f *floodEnv) refreshes(t *testing.T, tok *oauth2.Token) *oauth2.Token {
	t.Helper()
	old := *tok
	old.Expiry = time.Now().Add(-time.Minute)
	next, err := f.client.TokenSource(context.Background(), &old).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if got := f.introspect(t, next.AccessToken); got["active"] != true {
		t.Fatalf("refreshed token inactive: %v", got)
	}
	return next
}

// An anonymous flood of /oauth2/registration, /authorize and /oauth2/device
// from many addresses behind the proxy: each address is limited, the
// pending stream never holds more than its bound, the durable streams do
// not grow with it, refreshes and revocations go on, a sign-in under way
// completes, and once the flood's requests expire everything is gone and
// new sign-ins work.
func TestFloodStaysBounded(t *testing.T) {
	t.Parallel() // most of it is waiting for expiries: it runs beside the other waiting tests
	f := newFloodEnv(t)
	ctx := context.Background()
	alice := "192.0.2.77"

	// Before: alice signs in (which keeps the client: a person approved it).
	tok, refused := f.signInThrough(t, alice)
	if tok == nil {
		t.Fatalf("sign-in before the flood: %d %s", refused.StatusCode, refused.Header.Get("Location"))
	}
	durableBefore := map[string]uint64{}
	for _, name := range []string{"ACCOUNTS", "AUTHORIZE", "NOTIFY"} {
		durableBefore[name] = f.state(t, name).Bytes
	}
	device := f.deviceClient(t)

	bigMeta, _ := json.Marshal(map[string]any{
		"client_name": strings.Repeat("F", 2000), "client_uri": "https://flood.example/",
		"tos_uri":       "https://flood.example/" + strings.Repeat("t", 1900),
		"policy_uri":    "https://flood.example/" + strings.Repeat("p", 1900),
		"redirect_uris": []string{"https://flood.example/cb"}, "token_endpoint_auth_method": "none",
	})
	authorize := f.client.AuthCodeURL(strings.Repeat("s", 2000), oauth2.S256ChallengeOption(oauth2.GenerateVerifier()),
		oauth2.SetAuthURLParam("nonce", strings.Repeat("n", 500)), oauth2.SetAuthURLParam("login_hint", strings.Repeat("h", 500)))
	send := map[string]func(from string) *http.Response{
		"registration": func(from string) *http.Response {
			req, _ := http.NewRequest(http.MethodPost, f.issuer+"oauth2/registration", bytes.NewReader(bigMeta))
			req.Header.Set("Content-Type", "application/json")
			return forwarded(t, req, from)
		},
		"authorize": func(from string) *http.Response {
			req, _ := http.NewRequest(http.MethodGet, authorize, nil)
			return forwarded(t, req, from)
		},
		"device": func(from string) *http.Response {
			req, _ := http.NewRequest(http.MethodPost, f.issuer+"oauth2/device", strings.NewReader(url.Values{"client_id": {device.ClientID}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return forwarded(t, req, from)
		},
	}
	accepted := map[string]int{"registration": http.StatusCreated, "authorize": http.StatusSeeOther, "device": http.StatusOK}

	// Each address is limited: past its burst, 429 with Retry-After.
	t.Run("per address", func(t *testing.T) {
		for what, burst := range map[string]int{"registration": 3, "authorize": 6, "device": 3} {
			from := "203.0.113." + strconv.Itoa(len(what))
			for i := range burst {
				if r := send[what](from); r.StatusCode != accepted[what] {
					t.Fatalf("%s %d of the burst: %d", what, i+1, r.StatusCode)
				}
			}
			r := send[what](from)
			if secs, err := strconv.Atoi(r.Header.Get("Retry-After")); r.StatusCode != http.StatusTooManyRequests || err != nil || secs < 1 {
				t.Fatalf("%s past the burst: %d, Retry-After %q", what, r.StatusCode, r.Header.Get("Retry-After"))
			}
		}
	})

	// A sign-in under way when the flood fills the stream.
	verifier := oauth2.GenerateVerifier()
	req, _ := http.NewRequest(http.MethodGet, f.client.AuthCodeURL("under-way", oauth2.S256ChallengeOption(verifier)), nil)
	loc, _ := url.Parse(forwarded(t, req, alice).Header.Get("Location"))
	underWay := loc.Query().Get("grant")
	if underWay == "" {
		t.Fatal("no grant for the sign-in under way")
	}

	// The flood: many addresses, each sending its burst of each request,
	// until the pending stream refuses (503) them all.
	full := map[string]int{}
	var mu sync.Mutex
	maxSeen, signedInDuring := uint64(0), 0
	for n := 0; n < 2000 && (full["registration"] < 3 || full["authorize"] < 3 || full["device"] < 3); n += 8 {
		var wg sync.WaitGroup
		for k := range 8 {
			wg.Go(func() {
				from := floodAddress(n + k)
				for _, what := range []string{"registration", "authorize", "device"} {
					r := send[what](from)
					mu.Lock()
					switch {
					case r.StatusCode == http.StatusServiceUnavailable && r.Header.Get("Retry-After") != "":
						full[what]++
					case r.StatusCode == http.StatusSeeOther && strings.Contains(r.Header.Get("Location"), "error=temporarily_unavailable"):
						full[what]++
					case r.StatusCode == accepted[what], r.StatusCode == http.StatusTooManyRequests:
					default:
						t.Errorf("%s from %s: %d %s", what, from, r.StatusCode, r.Header.Get("Location"))
					}
					mu.Unlock()
				}
			})
		}
		// A person signs in meanwhile, from an address of their own: it
		// works until the flood has filled the stream, then is refused
		// (back to the client: temporarily_unavailable).
		wg.Go(func() {
			tok, r := f.signInThrough(t, fmt.Sprintf("192.0.2.%d", 100+n/8%150))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case tok != nil:
				signedInDuring++
			case !strings.Contains(r.Header.Get("Location"), "error=temporarily_unavailable"):
				t.Errorf("a sign-in during the flood: %d %s", r.StatusCode, r.Header.Get("Location"))
			}
		})
		wg.Wait()
		st := f.state(t, eventsv1.AuthorizePending.Name)
		maxSeen = max(maxSeen, st.Bytes)
		if st.Bytes > floodBound {
			t.Fatalf("the pending stream holds %d bytes, bound %d", st.Bytes, floodBound)
		}
		// During the flood the durable streams keep taking writes.
		tok = f.refreshes(t, tok)
	}
	for what, n := range full {
		if n < 3 {
			t.Errorf("%s was refused for want of room %d times: the flood did not fill the stream", what, n)
		}
	}
	if signedInDuring == 0 {
		t.Error("no sign-in succeeded during the flood")
	}
	t.Logf("pending stream peaked at %d bytes of %d; refusals for room: %v; sign-ins during the flood: %d", maxSeen, floodBound, full, signedInDuring)

	// Full: a new sign-in is refused (back to the client, temporarily),
	// the one under way completes, refreshes and revocations work.
	if _, r := f.signInThrough(t, alice); r == nil || !strings.Contains(r.Header.Get("Location"), "error=temporarily_unavailable") {
		t.Errorf("a new sign-in while the pending stream is full: %v", r)
	}
	approved, err := authorizev1.NewAuthorizeServiceClient(f.conn).ApproveGrant(f.signedIn(t), &authorizev1.ApproveGrantRequest{GrantId: underWay})
	if err != nil {
		t.Fatalf("approving the sign-in under way while full: %v", err)
	}
	back, _ := url.Parse(approved.GetRedirectUri())
	second, err := f.client.Exchange(ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchanging the code of the sign-in under way while full: %v", err)
	}
	revoke, _ := http.NewRequest(http.MethodPost, f.issuer+"oauth2/revoke",
		strings.NewReader(url.Values{"token": {second.RefreshToken}, "client_id": {f.client.ClientID}}.Encode()))
	revoke.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if r := forwarded(t, revoke, alice); r.StatusCode != http.StatusOK {
		t.Fatalf("revocation while full: %d", r.StatusCode)
	}
	if got := f.introspect(t, second.AccessToken); got["active"] != false {
		t.Errorf("a revoked session's token: %v", got)
	}
	tok = f.refreshes(t, tok)
	for name, before := range durableBefore {
		// Clients approved by a person and little else: not the flood.
		if grew := f.state(t, name).Bytes - before; grew > 16<<10 {
			t.Errorf("%s grew by %d bytes during the flood", name, grew)
		}
	}

	// After: everything the flood left expires; sign-ins work again.
	deadline := time.Now().Add(floodLife + 2*time.Minute)
	for {
		st := f.state(t, eventsv1.AuthorizePending.Name)
		if st.Msgs == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still holds %d messages (%d bytes) long after every flow ended", eventsv1.AuthorizePending.Name, st.Msgs, st.Bytes)
		}
		time.Sleep(time.Second)
	}
	after, r := f.signInThrough(t, alice)
	if after == nil {
		t.Fatalf("sign-in after the flood: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	f.refreshes(t, after)
	f.refreshes(t, tok)
	// A client the flood registered and nobody approved is gone.
	var flooded map[string]any
	reqReg, _ := http.NewRequest(http.MethodPost, f.issuer+"oauth2/registration", bytes.NewReader(bigMeta))
	reqReg.Header.Set("Content-Type", "application/json")
	reqReg.Header.Set("X-Forwarded-For", "192.0.2.200")
	resp, err := plainHTTP.Do(reqReg)
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&flooded)
	resp.Body.Close()
	id, _ := flooded["client_id"].(string)
	if resp.StatusCode != http.StatusCreated || id == "" {
		t.Fatalf("registration after the flood: %d %v", resp.StatusCode, flooded)
	}
	unknown := func() bool {
		_, err := authorizev1.NewAuthorizeServiceClient(f.conn).GetClient(f.signedIn(t), &authorizev1.GetClientRequest{ClientId: id})
		return err != nil
	}
	if unknown() {
		t.Fatal("a fresh registration is unknown")
	}
	if err := waitFor(time.Minute, func() (bool, error) { return unknown(), nil }); err != nil {
		t.Errorf("an unapproved client is still known after its registration expired: %v", err)
	}
}

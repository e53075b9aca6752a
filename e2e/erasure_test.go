package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/oauth2"
	"google.golang.org/protobuf/encoding/prototext"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/host"
	"gatehouse.dev/platform/personal"
	"gatehouse.dev/platform/pgcluster"
	"gatehouse.dev/platform/sealed"
	"gatehouse.dev/platform/secretfile"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	projectionsv1 "gatehouse.dev/proto/gatehouse/projections/v1"
)

// Erasure that erases (GDPR art. 17), on the real binary. Carol registers on
// the pages with an emailed code, signs in to an OAuth client and to the
// compatibility API, refreshes, asks for a recovery link, gets a second
// address and a display name — from IPv4 and IPv6 addresses a proxy on
// loopback forwards (X-Forwarded-For), with a user agent of her own. Bob
// does much the same. After `gatehouse user deactivate carol --erase`:
//
//   - a raw dump of every message of every stream (a raw NATS client) and of
//     every row of every table of every schema in PostgreSQL holds none of
//     carol's addresses, display name, IP addresses, user agent or password
//     hash — raw, in base64 or in hex;
//   - even with the key-encryption key, nothing in the streams opens to any
//     of it: her personal key, and those of her registration and its
//     verification, are gone from PERSONALKEYS;
//   - the audit trail of what happened stays (her events are all there);
//   - rebuilding the read models from the streams works and shows her
//     erased; bob's data is intact throughout.
func TestErasureLeavesNoPersonalData(t *testing.T) {
	natsAddr := freeAddr(t)
	e := newOAuthEnv(t, "GATEHOUSE_NATS_LISTEN="+natsAddr, "GATEHOUSE_ACTIVITY_FLUSH_INTERVAL=1s")
	accounts := accountsv1.NewAccountsServiceClient(e.conn)

	carol := person{
		username: "carol", password: "carol's passphrase for erasure 7",
		emails: []string{"carol.erasable@example.org", "carol.second-address@example.net"}, display: "Carol Erasable-Person",
		agent: "CarolBrowser/7.3 (erasure test)",
		ips:   []string{"203.0.113.57", "2001:db8:c0:1::57", "2001:db8:c0:1::58", "198.51.100.57", "192.0.2.157", "203.0.113.58"},
	}
	bob := person{
		username: "bob", password: "bob's passphrase that stays 5",
		emails: []string{"bob.keeps@example.org"}, display: "Bob Keeps-His-Data",
		agent: "BobBrowser/1.0 (erasure test)",
		ips:   []string{"203.0.113.99", "2001:db8:b0b::99", "2001:db8:b0b::98", "198.51.100.99", "192.0.2.199", "203.0.113.98"},
	}
	for _, p := range []*person{&carol, &bob} {
		p.id = everyPersonalFlow(t, e, accounts, p)
	}

	// Carol's password hash, as whoever holds the key-encryption key could
	// read it before the erasure: it must be gone after.
	keys := kekStore(t, e.s.dataDir, natsAddr)
	carol.hash = passwordHashOf(t, e.s.dataDir, natsAddr, keys, carol.id)
	registration, verification := registrationOf(t, e.s.dataDir, natsAddr, carol.username)

	forbidden := func(p person) map[string][]byte {
		out := map[string][]byte{}
		add := func(what, v string) {
			for enc, b := range encodings(v) {
				out[what+" ("+enc+")"] = b
			}
		}
		for _, a := range p.emails {
			add(p.username+"'s address "+a, a)
		}
		for _, ip := range p.ips {
			add(p.username+"'s IP address "+ip, ip)
			if addr := netip.MustParseAddr(ip); addr.Is6() {
				add(p.username+"'s IP address "+ip+" expanded", addr.StringExpanded())
				b := addr.As16()
				out[p.username+"'s IP address "+ip+" (16 bytes)"] = b[:]
			}
		}
		add(p.username+"'s display name", p.display)
		add(p.username+"'s user agent", p.agent)
		if p.hash != "" {
			add(p.username+"'s password hash", p.hash)
		}
		return out
	}

	// Before: the data is there to be found (the searches below can fail).
	tables := dumpTables(t, e.s.dataDir)
	for _, want := range []string{carol.emails[0], carol.emails[1], carol.display, carol.ips[0], carol.ips[1], carol.agent} {
		if !bytes.Contains(tables, []byte(want)) {
			t.Fatalf("before the erasure, no table holds carol's %q: the flows did not record what this test looks for", want)
		}
	}

	mustCLI(t, e.s, "user", "deactivate", "carol", "--erase")
	waitForFollowers(t, e, natsAddr, "accounts.user."+carol.id)

	check := func(t *testing.T, when string) {
		t.Helper()
		streams := dumpStreams(t, e.s.dataDir, "nats://"+natsAddr)
		tables := dumpTables(t, e.s.dataDir)
		found := 0
		for what, b := range forbidden(carol) {
			for _, m := range streams {
				if bytes.Contains(m.data, b) || bytes.Contains(m.headers, b) || strings.Contains(m.subject, string(b)) {
					t.Errorf("%s: %s seq %d (%s) holds %s", when, m.stream, m.seq, m.subject, what)
					found++
				}
			}
			if bytes.Contains(tables, b) {
				t.Errorf("%s: a table holds %s:\n%s", when, what, linesHolding(tables, b))
				found++
			}
		}
		// Even with the key-encryption key, nothing of carol's opens (a
		// store of its own: keys cached in memory are no copy at rest).
		opened := openEverything(t, kekStore(t, e.s.dataDir, natsAddr), streams)
		for what, b := range forbidden(carol) {
			if bytes.Contains(opened, b) {
				t.Errorf("%s: the streams, opened with every key, still give %s", when, what)
			}
		}
		for _, subject := range []string{"personalkeys.user." + carol.id, "personalkeys.flow." + registration, "personalkeys.flow." + verification} {
			for _, m := range streams {
				if m.subject == subject {
					t.Errorf("%s: %s still holds a key", when, subject)
				}
			}
		}
		// Bob's data is intact.
		for _, want := range []string{bob.emails[0], bob.display, bob.ips[0], bob.agent} {
			if !bytes.Contains(tables, []byte(want)) || !bytes.Contains(opened, []byte(want)) {
				t.Errorf("%s: bob's %q is gone", when, want)
			}
		}
		t.Logf("%s: %d messages of %d streams and %d bytes of tables checked for %d forbidden byte strings; %d found",
			when, len(streams), len(streamsOf(streams)), len(tables), len(forbidden(carol)), found)
	}
	check(t, "after the erasure")

	// What happened stays: carol's events are all there, her account is
	// erased, her username reserved; she cannot sign in.
	audit := mustCLI(t, e.s, "user", "audit", "carol")
	for _, want := range []string{"deactivated (erase requested)", `registered as "carol"`, "email (erased)"} {
		if !strings.Contains(audit, want) {
			t.Errorf("carol's audit log lacks %q:\n%s", want, audit)
		}
	}
	if r := newMatrixClient(e).post(t, "/_matrix/client/v3/login", "", map[string]any{
		"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "carol"}, "password": carol.password,
	}); r.status == http.StatusOK {
		t.Error("an erased user signs in")
	}
	if code, _, _ := e.s.cli(t, "user", "reactivate", "carol"); code == 0 {
		t.Error("an erased account was reactivated")
	}

	// Rebuilt from the streams, the read models show carol erased.
	for _, name := range []string{"accounts.users", "accounts.accounts_audit", "accounts.browser_sessions", "accounts.email_verifications",
		"token.sessions", "token.token_audit", "notify.verifications"} {
		mustCLI(t, e.s, "projections", "rebuild", name)
	}
	list := mustCLI(t, e.s, "user", "list")
	if !userLine(list, "carol", "erased") || !userLine(list, "bob", "active") || !strings.Contains(list, bob.emails[0]) {
		t.Fatalf("user list after the rebuild:\n%s", list)
	}
	check(t, "after a rebuild")
}

// person is a user of the erasure test and what they gave.
type person struct {
	username, password string
	emails             []string
	display, agent     string
	// ips are the addresses each request comes from: registration and its
	// code, the sign-in pages of the OAuth flow, the token request, the
	// refresh, the compat login, the recovery request.
	ips      []string
	id, hash string
}

// everyPersonalFlow runs, for p, every flow that records personal data, each
// request forwarded from one of p's addresses with p's user agent, and
// returns p's user id.
func everyPersonalFlow(t *testing.T, e *oauthEnv, accounts accountsv1.AccountsServiceClient, p *person) string {
	t.Helper()
	ctx := context.Background()
	base := e.issuer

	// Registration with an emailed code.
	reg := newForm(t, base)
	reg.c.Transport = forwarding(p.ips[0], p.agent)
	if resp, body := reg.post(t, "register", url.Values{"username": {p.username}, "email": {p.emails[0]},
		"password": {p.password}, "password_confirm": {p.password}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("%s: registration form: %d\n%s", p.username, resp.StatusCode, body)
	}
	if resp, body := reg.post(t, "register/verify", url.Values{"code": {emailedCode(t, e.s.dataDir, p.emails[0])}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("%s: registration code: %d\n%s", p.username, resp.StatusCode, body)
	}
	u, err := accounts.GetUserByUsername(ctx, &accountsv1.GetUserByUsernameRequest{Username: p.username})
	if err != nil {
		t.Fatal(err)
	}
	id := u.GetUser().GetId()
	if _, err := accounts.AddEmail(ctx, &accountsv1.AddEmailRequest{UserId: id, Email: p.emails[len(p.emails)-1], SkipVerification: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := accounts.SetDisplayName(ctx, &accountsv1.SetDisplayNameRequest{UserId: id, DisplayName: p.display}); err != nil {
		t.Fatal(err)
	}

	// The OAuth code flow through the pages, the token request, a refresh.
	pages := newForm(t, base)
	pages.c.Transport = forwarding(p.ips[1], p.agent)
	verifier := oauth2.GenerateVerifier()
	code := approveInPages(t, pages, e.client.AuthCodeURL("state-erasure", oauth2.S256ChallengeOption(verifier)), p.username, p.password)
	tok, err := e.client.Exchange(context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Transport: forwarding(p.ips[2], p.agent)}),
		code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("%s: exchange: %v", p.username, err)
	}
	refreshCtx := context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Transport: forwarding(p.ips[3], p.agent)})
	if _, err := e.client.TokenSource(refreshCtx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err != nil {
		t.Fatalf("%s: refresh: %v", p.username, err)
	}

	// The compatibility login.
	body, _ := json.Marshal(map[string]any{"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": p.username},
		"password": p.password, "initial_device_display_name": "a device"})
	req, _ := http.NewRequest(http.MethodPost, base+"_matrix/client/v3/login", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Transport: forwarding(p.ips[4], p.agent), Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: compat login: %d", p.username, resp.StatusCode)
	}

	// A recovery link asked for (and not used).
	rec := newForm(t, base)
	rec.c.Transport = forwarding(p.ips[5], p.agent)
	if resp, _ := rec.post(t, "recover", url.Values{"email": {p.emails[0]}}); resp.StatusCode >= 400 {
		t.Fatalf("%s: recovery request: %d", p.username, resp.StatusCode)
	}
	emailedRecoveryLink(t, e.s.dataDir, p.emails[0])
	return id
}

// forwarding is a client behind a proxy on loopback (trusted by default):
// every request says it comes from ip, with the user agent given.
func forwarding(ip, agent string) http.RoundTripper {
	return roundTripper(func(r *http.Request) (*http.Response, error) {
		r = r.Clone(r.Context())
		r.Header.Set("X-Forwarded-For", ip)
		r.Header.Set("User-Agent", agent)
		return http.DefaultTransport.RoundTrip(r)
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// kekStore opens the personal keys with the key-encryption key the process
// generated in its data dir, over a raw NATS connection: what an operator
// holding that key (or a thief of it and of the streams) can open.
func kekStore(t *testing.T, dataDir, natsAddr string) *personal.Store {
	t.Helper()
	raw, err := secretfile.Load(filepath.Join(dataDir, host.KEKFile))
	if err != nil {
		t.Fatal(err)
	}
	kek, err := sealed.NewKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := sealed.NewKeyring(kek)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect("nats://"+natsAddr, natsCredentials(t, dataDir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := personal.Open(context.Background(), js, ring, personal.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// records decodes the events of the dump.
func records(t *testing.T, msgs []streamMsg) []eventlog.Record {
	t.Helper()
	var out []eventlog.Record
	for _, m := range msgs {
		switch m.stream {
		case eventsv1.Accounts.Name, eventsv1.Authorize.Name, eventsv1.AuthorizePending.Name, eventsv1.Notify.Name, eventsv1.NotifyPending.Name, eventsv1.Token.Name, eventsv1.Audit.Name:
		default:
			continue // not events: personal keys, rate-limit counts
		}
		if len(m.data) == 0 {
			continue // the marker an expired aggregate left
		}
		rec, err := eventlog.Decode(m.seq, m.subject, m.data)
		if err != nil {
			t.Fatalf("%s seq %d: %v", m.stream, m.seq, err)
		}
		out = append(out, rec)
	}
	return out
}

// passwordHashOf opens a user's password hash (the latest) with keys.
func passwordHashOf(t *testing.T, dataDir, natsAddr string, keys *personal.Store, userID string) string {
	t.Helper()
	var hash string
	for _, rec := range records(t, dumpStreams(t, dataDir, "nats://"+natsAddr)) {
		var v *eventsv1.SealedSecret
		switch ev := rec.Event.(type) {
		case *eventsv1.UserRegistered:
			v = ev.GetSealedPasswordHash()
		case *eventsv1.PasswordChanged:
			v = ev.GetSealedPasswordHash()
		}
		if v == nil || rec.Aggregate().ID != userID {
			continue
		}
		b, err := keys.OpenValue(context.Background(), v, "accounts.user."+userID+"/password_hash")
		if err != nil {
			t.Fatalf("open the password hash of %s: %v", userID, err)
		}
		hash = string(b)
	}
	if !strings.HasPrefix(hash, "$argon2id$") {
		t.Fatalf("the password hash of %s: %q", userID, hash)
	}
	return hash
}

// registrationOf returns the ids of a username's registration and of the
// verification that completed it.
func registrationOf(t *testing.T, dataDir, natsAddr, username string) (registration, verification string) {
	t.Helper()
	for _, rec := range records(t, dumpStreams(t, dataDir, "nats://"+natsAddr)) {
		switch ev := rec.Event.(type) {
		case *eventsv1.RegistrationStarted:
			if ev.GetUsername() == username {
				registration = ev.GetRegistrationId()
			}
		case *eventsv1.RegistrationCompleted:
			if ev.GetRegistrationId() == registration && registration != "" {
				verification = ev.GetVerificationId()
			}
		}
	}
	if registration == "" || verification == "" {
		t.Fatalf("no completed registration of %s", username)
	}
	return registration, verification
}

// openEverything opens every event's personal fields with keys and returns
// the events as text, with every sealed value it could open (password hashes
// included) appended.
func openEverything(t *testing.T, keys *personal.Store, msgs []streamMsg) []byte {
	t.Helper()
	ctx := context.Background()
	var b bytes.Buffer
	for _, rec := range records(t, msgs) {
		if err := keys.UnsealRecord(ctx, &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Event == nil {
			continue
		}
		b.WriteString(prototext.Format(rec.Event))
		var v *eventsv1.SealedSecret
		switch ev := rec.Event.(type) {
		case *eventsv1.UserRegistered:
			v = ev.GetSealedPasswordHash()
		case *eventsv1.PasswordChanged:
			v = ev.GetSealedPasswordHash()
		case *eventsv1.RegistrationStarted:
			v = ev.GetSealedPasswordHash()
		}
		if v != nil {
			if h, err := keys.OpenValue(ctx, v, rec.Subject+"/password_hash"); err == nil {
				b.Write(h)
				b.WriteByte('\n')
			}
		}
	}
	return b.Bytes()
}

// dumpTables returns every row of every table of every schema of the
// process's private PostgreSQL cluster, as text, one per line, prefixed by
// its table.
func dumpTables(t *testing.T, dataDir string) []byte {
	t.Helper()
	ctx := context.Background()
	u := url.URL{Scheme: "postgres", User: url.User(pgcluster.User), Path: "/gatehouse",
		RawQuery: url.Values{"host": {filepath.Join(dataDir, "postgres", "run")}, "sslmode": {"disable"}}.Encode()}
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatalf("connect to the process's PostgreSQL: %v", err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT table_schema, table_name FROM information_schema.tables
		WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct{ Schema, Name string }])
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) < 10 {
		t.Fatalf("only %d tables: %v", len(tables), tables)
	}
	var b bytes.Buffer
	for _, tb := range tables {
		name := pgx.Identifier{tb.Schema, tb.Name}.Sanitize()
		rows, err := conn.Query(ctx, `SELECT t::text FROM `+name+` t`)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, l := range lines {
			fmt.Fprintf(&b, "%s: %s\n", name, l)
		}
	}
	return b.Bytes()
}

// linesHolding returns the lines of a dump that hold b.
func linesHolding(dump, b []byte) string {
	var out []string
	for _, l := range bytes.Split(dump, []byte("\n")) {
		if bytes.Contains(l, b) {
			out = append(out, string(l))
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// waitForFollowers waits until every projection and reactor that follows the
// ACCOUNTS stream's user events (in every service) has handled the last
// event of subject.
func waitForFollowers(t *testing.T, e *oauthEnv, natsAddr, subject string) {
	t.Helper()
	ctx := context.Background()
	nc, err := nats.Connect("nats://"+natsAddr, natsCredentials(t, e.s.dataDir))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	st, err := js.Stream(ctx, eventsv1.Accounts.Name)
	if err != nil {
		t.Fatal(err)
	}
	last, err := st.GetLastMsgForSubject(ctx, subject)
	if err != nil {
		t.Fatal(err)
	}
	followers := map[string]bool{"accounts.users": true, "accounts.accounts_audit_recorder": true, "accounts.browser_sessions": true, "accounts.erasure": true,
		"token.user_blocks": true, "token.account_sessions": true}
	c := projectionsv1.NewProjectionsServiceClient(e.conn)
	err = waitFor(60*time.Second, func() (bool, error) {
		resp, err := c.ListProjections(ctx, &projectionsv1.ListProjectionsRequest{})
		if err != nil {
			return false, err
		}
		done := 0
		for _, p := range resp.GetProjections() {
			if followers[p.GetName()] && p.GetCheckpoint() >= last.Sequence {
				done++
			}
		}
		return done == len(followers), nil
	})
	if err != nil {
		t.Fatalf("the followers of %s did not catch up: %v", subject, err)
	}
}

// userLine reports whether the user list shows username with status.
func userLine(list, username, status string) bool {
	for _, line := range strings.Split(list, "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && f[1] == username {
			return strings.Contains(line, " "+status+" ")
		}
	}
	return false
}

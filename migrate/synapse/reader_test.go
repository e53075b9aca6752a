package synapse_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"gatehouse.dev/migrate/synapse"
	"gatehouse.dev/migrate/synapse/synapsetest"
	"gatehouse.dev/platform/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// testCtx is a context bounded for one test.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// generate makes a fresh database filled by the generator.
func generate(t *testing.T, opts synapsetest.Options) (string, *synapsetest.Dataset) {
	t.Helper()
	dbURL := testkit.Postgres(t)
	ds, err := synapsetest.Generate(testCtx(t), dbURL, opts)
	if err != nil {
		t.Fatal(err)
	}
	return dbURL, ds
}

// open opens a Source on dbURL, closed when the test ends.
func open(t *testing.T, dbURL string, opts synapse.Options) *synapse.Source {
	t.Helper()
	src, err := synapse.Open(testCtx(t), dbURL, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { src.Close(context.Background()) })
	return src
}

// exec runs statements on dbURL as its owner (the "homeserver" writing).
func exec(t *testing.T, dbURL string, sql ...string) {
	t.Helper()
	conn, err := pgx.Connect(testCtx(t), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, s := range sql {
		if _, err := conn.Exec(testCtx(t), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// everything is what every stream emitted, with its stats.
type everything struct {
	users    map[string]synapse.User
	emails   []synapse.Email
	devices  []synapse.Device
	access   []synapse.AccessToken
	refresh  []synapse.RefreshPair
	external []synapse.ExternalID
	regs     []synapse.RegistrationToken
	stats    map[string]synapse.Stats
}

// readAll runs every stream of src, in the order a migration would.
func readAll(t *testing.T, src *synapse.Source) everything {
	t.Helper()
	ctx := testCtx(t)
	all := everything{users: map[string]synapse.User{}, stats: map[string]synapse.Stats{}}
	record := func(st synapse.Stats, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", st.Stream, err)
		}
		if st.Read != st.Emitted+sumSkipped(st) {
			t.Errorf("%s: read %d, emitted %d, skipped %d: rows lost", st.Stream, st.Read, st.Emitted, sumSkipped(st))
		}
		all.stats[st.Stream] = st
	}
	record(src.Users(ctx, func(u synapse.User) error {
		if _, dup := all.users[u.MXID]; dup {
			return fmt.Errorf("user %s twice", u.MXID)
		}
		all.users[u.MXID] = u
		return nil
	}))
	record(src.Emails(ctx, func(e synapse.Email) error { all.emails = append(all.emails, e); return nil }))
	record(src.Devices(ctx, func(d synapse.Device) error { all.devices = append(all.devices, d); return nil }))
	record(src.AccessTokens(ctx, func(a synapse.AccessToken) error { all.access = append(all.access, a); return nil }))
	record(src.RefreshPairs(ctx, func(p synapse.RefreshPair) error { all.refresh = append(all.refresh, p); return nil }))
	record(src.ExternalIDs(ctx, func(x synapse.ExternalID) error { all.external = append(all.external, x); return nil }))
	record(src.RegistrationTokens(ctx, func(r synapse.RegistrationToken) error { all.regs = append(all.regs, r); return nil }))
	return all
}

// skipCounts returns the skip counts by reason.
func skipCounts(st synapse.Stats) map[synapse.SkipReason]int64 {
	out := map[synapse.SkipReason]int64{}
	for r, tally := range st.Skipped {
		out[r] = tally.Count
	}
	return out
}

func sumSkipped(st synapse.Stats) int64 {
	var n int64
	for _, t := range st.Skipped {
		n += t.Count
	}
	return n
}

// The streams find exactly what the generator wrote, on every schema
// version from the oldest accepted to the newest, with a port in the server
// name.
func TestStreamsReadWhatWasGenerated(t *testing.T) {
	for _, version := range []int{72, 76, 80, 94} {
		t.Run(fmt.Sprint("v", version), func(t *testing.T) {
			now := time.Now()
			opts := synapsetest.Options{ServerName: "example.org:8448", Users: 620, SchemaVersion: version, Now: now}
			dbURL, ds := generate(t, opts)
			src := open(t, dbURL, synapse.Options{ServerName: opts.ServerName, Now: func() time.Time { return now }})
			if src.Info.SchemaVersion != version {
				t.Errorf("schema version %d, want %d", src.Info.SchemaVersion, version)
			}
			if src.Info.Locked != (version >= 80) || src.Info.FullUserID != (version >= 76) || src.Info.Approved != (version >= 73) {
				t.Errorf("optional columns: %+v", src.Info)
			}
			all := readAll(t, src)
			for stream, st := range all.stats {
				t.Logf("%s: read %d, emitted %d, skipped %v, formats %v", stream, st.Read, st.Emitted, skipCounts(st), st.Formats)
				if st.Emitted != ds.Expect.Emitted[stream] {
					t.Errorf("%s: emitted %d, want %d", stream, st.Emitted, ds.Expect.Emitted[stream])
				}
				got := map[synapse.SkipReason]int64{}
				for r, tally := range st.Skipped {
					got[r] = tally.Count
					for _, ex := range tally.Examples {
						if strings.Contains(ex, "syt_") || strings.Contains(ex, "syr_") {
							t.Errorf("%s: an example shows a token: %s", stream, ex)
						}
					}
				}
				if want := ds.Expect.Skipped[stream]; !maps.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
					t.Errorf("%s: skipped %v, want %v", stream, got, want)
				}
				if want := ds.Expect.Formats[stream]; len(want) > 0 && !maps.Equal(st.Formats, want) {
					t.Errorf("%s: formats %v, want %v", stream, st.Formats, want)
				}
			}
			if n := all.stats["users"].Notes["appservice user with ':' in its localpart"]; n == nil || n.Count != ds.Expect.AppserviceColon {
				t.Errorf("appservice users with ':': %v, want %d", n, ds.Expect.AppserviceColon)
			}
			checkPeople(t, ds, all, version)
		})
	}
}

// checkPeople checks the records of the generator's named people.
func checkPeople(t *testing.T, ds *synapsetest.Dataset, all everything, version int) {
	t.Helper()
	person := func(role string) *synapsetest.Person {
		p := ds.People[role]
		if p == nil {
			t.Fatalf("the generator made no %q person", role)
		}
		return p
	}
	user := func(role string) synapse.User {
		p := person(role)
		u, ok := all.users[p.MXID]
		if !ok {
			t.Fatalf("%s (%s) not read", role, p.MXID)
		}
		return u
	}

	plain := user("plain")
	if !strings.HasPrefix(plain.PasswordHash, "$2b$04$") || plain.Admin || plain.Deactivated || plain.Locked {
		t.Errorf("plain user: %+v", plain)
	}
	// creation_ts is seconds: the generator starts in mid-2016.
	if y := plain.CreatedAt.Year(); y < 2016 || y > 2030 {
		t.Errorf("plain user created in %d: seconds read as something else", y)
	}
	if plain.Localpart+":"+ds.Options.ServerName != strings.TrimPrefix(plain.MXID, "@") {
		t.Errorf("localpart %q of %q", plain.Localpart, plain.MXID)
	}
	if !user("admin").Admin {
		t.Error("admin is not admin")
	}
	if version >= 80 {
		if !user("locked").Locked {
			t.Error("locked user is not locked")
		}
		// Locked users keep their sessions.
		if n := countTokens(all, person("locked").MXID); n == 0 {
			t.Error("locked user's tokens were skipped")
		}
	}
	d := user("deactivated")
	if !d.Deactivated || d.PasswordHash != "" {
		t.Errorf("deactivated user: %+v", d)
	}
	if u := user("upper-case"); u.Localpart != person("upper-case").Localpart || strings.ToLower(u.Localpart) == u.Localpart {
		t.Errorf("upper-case localpart became %q", u.Localpart)
	}
	casey, Casey := user("casey"), user("Casey")
	if casey.Localpart != "casey" || Casey.Localpart != "Casey" || casey.PasswordHash == Casey.PasswordHash {
		t.Errorf("case-only duplicates: %q, %q", casey.Localpart, Casey.Localpart)
	}
	sso := user("sso")
	if !sso.HasExternalID {
		t.Errorf("SSO user without link: %+v", sso)
	}

	// Tokens: the exact strings clients hold, on the right devices.
	byToken := map[string]synapse.AccessToken{}
	for _, a := range all.access {
		byToken[a.Token.Reveal()] = a
	}
	for _, role := range []string{"plain", "macaroon", "deviceless", "admin"} {
		p := person(role)
		for dev, tok := range p.AccessTokens {
			a, ok := byToken[tok]
			if !ok {
				t.Errorf("%s: token on device %q not emitted", role, dev)
				continue
			}
			if a.MXID != p.MXID || a.DeviceID != dev || a.Localpart != p.Localpart {
				t.Errorf("%s: token read as %s/%q, want %s/%q", role, a.MXID, a.DeviceID, p.MXID, dev)
			}
		}
	}
	if _, ok := person("deviceless").AccessTokens[""]; !ok {
		t.Error("the deviceless person has no deviceless token")
	}
	for _, a := range byToken {
		if a.Format == synapse.FormatMacaroon && !a.LastValidated.IsZero() {
			t.Errorf("macaroon token #%d has last_validated", a.ID)
		}
	}
	pairs := map[string]synapse.RefreshPair{}
	for _, p := range all.refresh {
		pairs[p.RefreshToken.Reveal()] = p
	}
	for _, role := range []string{"refresh", "refresh-chain"} {
		p := person(role)
		if len(p.Refresh) == 0 {
			t.Fatalf("%s has no refresh pair", role)
		}
		for refresh, access := range p.Refresh {
			got, ok := pairs[refresh]
			if !ok || got.AccessToken.Reveal() != access || got.MXID != p.MXID {
				t.Errorf("%s: pair not emitted as written (%v)", role, ok)
			}
		}
	}
	if n := len(person("refresh-chain").Refresh); n != 2 {
		t.Errorf("a chain whose newest access token is unused keeps both pairs; got %d", n)
	}
	for _, p := range ds.People {
		for _, old := range p.ObsoleteRefresh {
			if _, ok := pairs[old]; ok {
				t.Errorf("obsolete refresh pair of %s emitted", p.MXID)
			}
		}
	}
	// Milliseconds: a device was last seen after the user was created.
	for _, dev := range all.devices {
		if dev.MXID == plain.MXID && (dev.LastSeen.Before(plain.CreatedAt) || dev.LastSeen.Year() > 2030) {
			t.Errorf("device %s last seen %v, user created %v", dev.DeviceID, dev.LastSeen, plain.CreatedAt)
		}
		if dev.IP == "-" || dev.IP == "not-an-ip" {
			t.Errorf("device IP %q kept", dev.IP)
		}
	}
	// Deactivated users keep their SSO links.
	links := map[string]bool{}
	for _, x := range all.external {
		links[x.AuthProvider+" "+x.Subject] = x.MXID != ""
	}
	for _, role := range []string{"sso", "deactivated"} {
		for _, l := range person(role).ExternalIDs {
			if !links[l] {
				t.Errorf("%s: link %s not emitted", role, l)
			}
		}
	}
	var regs []string
	for _, r := range all.regs {
		regs = append(regs, r.Token.Reveal())
	}
	slices.Sort(regs)
	if !slices.Equal(regs, []string{"two-uses-left", "unlimited-token"}) {
		t.Errorf("registration tokens %v", regs)
	}
}

// countTokens counts the access tokens and refresh pairs emitted for mxid.
func countTokens(all everything, mxid string) int {
	n := 0
	for _, a := range all.access {
		if a.MXID == mxid {
			n++
		}
	}
	for _, p := range all.refresh {
		if p.MXID == mxid {
			n++
		}
	}
	return n
}

// A database older than v72, or not a Synapse database, is refused with a
// message that says so.
func TestOpenRefusesOtherSchemas(t *testing.T) {
	old, _ := generate(t, synapsetest.Options{SchemaVersion: 71, Users: 5, NoOddities: true})
	_, err := synapse.Open(testCtx(t), old, synapse.Options{ServerName: "example.org"})
	var se *synapse.SchemaError
	if !errors.As(err, &se) || se.Version != 71 || !strings.Contains(err.Error(), "version 71") || !strings.Contains(err.Error(), "72") {
		t.Errorf("v71: %v", err)
	}
	empty := testkit.Postgres(t)
	_, err = synapse.Open(testCtx(t), empty, synapse.Options{ServerName: "example.org"})
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "not a Synapse database") {
		t.Errorf("empty database: %v", err)
	}
}

// A consumer's error stops the stream and comes back.
func TestStreamStopsOnConsumerError(t *testing.T) {
	dbURL, _ := generate(t, synapsetest.Options{Users: 50})
	src := open(t, dbURL, synapse.Options{ServerName: "example.org"})
	stop := errors.New("stop")
	n := 0
	st, err := src.Users(testCtx(t), func(synapse.User) error {
		if n++; n == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || st.Emitted != 3 {
		t.Fatalf("err %v, emitted %d", err, st.Emitted)
	}
	// The transaction is still usable for the next stream.
	if _, err := src.Emails(testCtx(t), func(synapse.Email) error { return nil }); err != nil {
		t.Fatalf("next stream: %v", err)
	}
}

// settle waits until no other session is connected to dbURL's database: a
// closed connection's server process leaves a moment after the client, and
// the report lists other sessions. It watches from the postgres database.
func settle(t *testing.T, dbURL string) {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	u.Path = "/postgres"
	conn, err := pgx.Connect(testCtx(t), u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	deadline := time.Now().Add(20 * time.Second)
	for {
		var n int
		if err := conn.QueryRow(testCtx(t), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = $1 AND backend_type = 'client backend'`, name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions still connected to %s", n, name)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// withUser returns dbURL connecting as role instead.
func withUser(t *testing.T, dbURL, role string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	return u.String()
}

// schemaShape lists the definitions of the constraints and indexes of dbURL's
// public schema.
func schemaShape(t *testing.T, dbURL string) []string {
	t.Helper()
	conn, err := pgx.Connect(testCtx(t), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(testCtx(t), `
		SELECT conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid) || ' ' || convalidated
		FROM pg_constraint WHERE connamespace = 'public'::regnamespace
		UNION ALL SELECT indexdef FROM pg_indexes WHERE schemaname = 'public'
		ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	shape, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return shape
}

// The generator loads without constraints and indexes, and puts every one
// back as the schema has it.
func TestGeneratorKeepsTheSchema(t *testing.T) {
	empty := testkit.Postgres(t)
	if err := synapsetest.CreateSchema(testCtx(t), empty, synapse.TestedSchemaVersion); err != nil {
		t.Fatal(err)
	}
	filled, _ := generate(t, synapsetest.Options{Users: 20})
	want, got := schemaShape(t, empty), schemaShape(t, filled)
	if len(want) < 25 || !slices.Equal(got, want) {
		t.Errorf("schema after generating:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// Package synapsetest fills a PostgreSQL database with Synapse's schema and
// realistic generated data, for the importer's tests and benchmarks (and the
// end-to-end tests of the migration). It writes only to the database it is
// given, which should be a fresh one (testkit.Postgres).
package synapsetest

import (
	"context"
	_ "embed"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/bcrypt"

	"gatehouse.dev/migrate/synapse"
)

//go:embed testdata/schema.sql
var schemaSQL string

// Schema returns the SQL that creates Synapse's tables as a v94 database has
// them (testdata/schema.sql).
func Schema() string { return schemaSQL }

// Options shape a generated homeserver.
type Options struct {
	// ServerName is the homeserver's server name ("example.org" by default);
	// it may hold a port.
	ServerName string
	// Users is how many generated users there are (300 by default), on top
	// of the fixed cast (see Dataset.People) unless NoOddities.
	Users int
	// SchemaVersion is the schema version written (94 by default). From 72
	// to 93 the columns a younger database lacks are dropped; below 72 only
	// the version is written (for the refusal).
	SchemaVersion int
	// Pepper is Synapse's password_config.pepper, appended to every password.
	Pepper string
	// BcryptCost is the cost of the hashes (bcrypt.MinCost by default).
	BcryptCost int
	// DevicesPerUser is how many devices, each with a token, an active user
	// has (2 by default; negative: none).
	DevicesPerUser int
	// Seed makes the random parts (device IDs, tokens) reproducible.
	Seed uint64
	// NoOddities leaves out the fixed cast: orphans, a case-only duplicate,
	// passwords that need NFKC or are longer than 72 bytes, other bcrypt
	// prefixes, registration tokens.
	NoOddities bool
	// Now is the time expiries are measured from (time.Now by default).
	Now time.Time
}

// Dataset is what was generated: the people tests sign in as, and what the
// reader is expected to find.
type Dataset struct {
	Options Options
	// People are users worth testing by name: "plain", "admin", "locked",
	// "deactivated", "sso", "upper-case", "macaroon", "refresh",
	// "refresh-chain", "deviceless", and with the cast "nfkc",
	// "long-password", "prefix-2a", "prefix-2y", "cost", "casey", "Casey".
	People map[string]*Person
	// Expect is what each stream should emit and skip.
	Expect Expect
	// Rows counts the rows written to each table.
	Rows map[string]int64
}

// Person is a generated user with what a test needs to act as them.
type Person struct {
	MXID, Localpart string
	// Password is the plaintext, "" for a user without one.
	Password string
	Email    string
	Admin    bool
	Locked   bool
	// Deactivated users have no password, email, device or token.
	Deactivated bool
	Devices     []string
	// AccessTokens are live access tokens by device ID ("" for deviceless).
	AccessTokens map[string]string
	// Refresh are live refresh pairs: refresh token → access token.
	Refresh map[string]string
	// ObsoleteRefresh are refresh tokens of pairs whose successor was used.
	ObsoleteRefresh []string
	// ExternalIDs are "auth_provider subject".
	ExternalIDs []string
}

// Expect is what the reader's streams should report on the dataset.
type Expect struct {
	// Emitted counts, by stream name (users, emails, devices, access_tokens,
	// refresh_tokens, external_ids, registration_tokens).
	Emitted map[string]int64
	// Skipped counts, by stream and reason.
	Skipped map[string]map[synapse.SkipReason]int64
	// Formats counts emitted tokens by format, by stream.
	Formats map[string]map[string]int64
	// AppserviceColon counts appservice users with ':' in their localpart.
	AppserviceColon int64
	// InvalidLocalparts counts imported users whose localpart would not be
	// accepted today; NoCredential those with neither a password nor an SSO
	// link (deactivated users aside); CaseDuplicates the users sharing their
	// lower-cased MXID with another.
	InvalidLocalparts, NoCredential, CaseDuplicates int64
	// Links counts the emitted SSO links by auth_provider.
	Links map[string]int64
}

// Password returns the password of the i-th generated password user:
// generated users share a few hashes, so that a large homeserver does not
// take minutes of bcrypt to make.
func Password(i int) string { return "password-" + strconv.Itoa(i%passwordPool) }

// passwordPool is how many distinct passwords generated users share.
const passwordPool = 16

// Generate creates Synapse's schema in the database at url and fills it.
func Generate(ctx context.Context, url string, opts Options) (*Dataset, error) {
	opts = withDefaults(opts)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("synapsetest: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := createSchema(ctx, conn, opts.SchemaVersion); err != nil {
		return nil, err
	}
	g, err := newGenerator(opts)
	if err != nil {
		return nil, err
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("synapsetest: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// Bulk loading: the constraints and indexes go while the rows are
	// copied in and come back after, as they were (several times faster).
	restore, err := dropConstraints(ctx, tx)
	if err != nil {
		return nil, err
	}
	if err := g.run(ctx, tx); err != nil {
		return nil, err
	}
	for _, sql := range restore {
		if _, err := tx.Exec(ctx, sql); err != nil {
			return nil, fmt.Errorf("synapsetest: restore %q: %w", sql, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("synapsetest: commit: %w", err)
	}
	// Vacuumed and analysed, as a stopped Synapse's tables are: otherwise
	// autovacuum visits the freshly filled tables during the test and holds
	// a lock that the migration's EXCLUSIVE NOWAIT, meant for a running
	// Synapse, refuses to wait for.
	if _, err := conn.Exec(ctx, "VACUUM ANALYZE"); err != nil {
		return nil, fmt.Errorf("synapsetest: vacuum: %w", err)
	}
	return g.ds, nil
}

// withDefaults fills the zero options.
func withDefaults(o Options) Options {
	if o.ServerName == "" {
		o.ServerName = "example.org"
	}
	if o.Users == 0 {
		o.Users = 300
	}
	if o.SchemaVersion == 0 {
		o.SchemaVersion = synapse.TestedSchemaVersion
	}
	if o.BcryptCost == 0 {
		o.BcryptCost = bcrypt.MinCost
	}
	if o.DevicesPerUser == 0 {
		o.DevicesPerUser = 2
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	return o
}

// CreateSchema creates Synapse's tables in the database at url as the
// schema version has them, with no rows but the version's: an empty Synapse.
func CreateSchema(ctx context.Context, url string, version int) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("synapsetest: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return createSchema(ctx, conn, version)
}

// createSchema runs the schema and takes it back to version: what a
// database that old lacks is dropped.
func createSchema(ctx context.Context, conn *pgx.Conn, version int) error {
	if _, err := conn.Exec(ctx, schemaSQL); err != nil {
		return fmt.Errorf("synapsetest: schema: %w", err)
	}
	var downgrade []string
	for _, d := range []struct {
		below int
		sql   string
	}{
		{88, "ALTER TABLE profiles DROP COLUMN fields"},
		{85, "ALTER TABLE users DROP COLUMN suspended"},
		{84, "DROP INDEX access_tokens_refresh_token_id_idx"},
		{80, "ALTER TABLE users DROP COLUMN locked"},
		{78, "ALTER TABLE profiles DROP CONSTRAINT full_user_id_not_null"},
		{76, "ALTER TABLE profiles DROP COLUMN full_user_id"},
		{73, "ALTER TABLE users DROP COLUMN approved"},
		{73, "DROP TABLE login_tokens"},
	} {
		if version < d.below {
			downgrade = append(downgrade, d.sql)
		}
	}
	downgrade = append(downgrade,
		fmt.Sprintf("INSERT INTO schema_version (version, upgraded) VALUES (%d, true)", version),
		fmt.Sprintf("INSERT INTO schema_compat_version (compat_version) VALUES (%d)", min(version, 84)))
	if _, err := conn.Exec(ctx, strings.Join(downgrade, ";\n")); err != nil {
		return fmt.Errorf("synapsetest: schema version %d: %w", version, err)
	}
	return nil
}

// dropConstraints drops the constraints and indexes of the current schema
// and returns the statements that recreate them: indexes first, then
// primary keys and unique constraints, then checks, then foreign keys.
func dropConstraints(ctx context.Context, tx pgx.Tx) ([]string, error) {
	rows, err := tx.Query(ctx, `
		SELECT format('ALTER TABLE %s DROP CONSTRAINT %I', conrelid::regclass, conname),
			format('ALTER TABLE %s ADD CONSTRAINT %I %s', conrelid::regclass, conname, pg_get_constraintdef(oid)),
			CASE contype WHEN 'f' THEN 0 WHEN 'c' THEN 3 ELSE 2 END
		FROM pg_constraint
		WHERE connamespace = current_schema()::regnamespace AND contype IN ('p', 'u', 'f', 'c')
		UNION ALL
		SELECT format('DROP INDEX %s', i.indexrelid::regclass), pg_get_indexdef(i.indexrelid), 1
		FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
		WHERE c.relnamespace = current_schema()::regnamespace
		  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
		ORDER BY 3`)
	if err != nil {
		return nil, fmt.Errorf("synapsetest: list constraints: %w", err)
	}
	type item struct {
		Drop, Create string
		Order        int
	}
	items, err := pgx.CollectRows(rows, pgx.RowToStructByPos[item])
	if err != nil {
		return nil, fmt.Errorf("synapsetest: list constraints: %w", err)
	}
	var restore []string
	for _, it := range items { // foreign keys are dropped first
		if _, err := tx.Exec(ctx, it.Drop); err != nil {
			return nil, fmt.Errorf("synapsetest: %s: %w", it.Drop, err)
		}
	}
	for order := 1; order <= 4; order++ { // and recreated last
		for _, it := range items {
			if it.Order == order%4 {
				restore = append(restore, it.Create)
			}
		}
	}
	return restore, nil
}

// kind is what sort of account a generated user is.
type kind int

const (
	kindPassword kind = iota
	kindSSO
	kindNoCredential
	kindDeactivated
	kindGuest
	kindAppservice
)

// kindOf decides the i-th user's kind.
func kindOf(i int) kind {
	switch {
	case i%211 == 7:
		return kindGuest
	case i%150 == 11:
		return kindAppservice
	case i%97 == 5:
		return kindDeactivated
	case i%13 == 3:
		return kindSSO
	case i%500 == 9:
		return kindNoCredential
	}
	return kindPassword
}

// localpartOf decides the i-th user's localpart.
func localpartOf(i int, k kind) string {
	switch {
	case k == kindGuest:
		return strconv.Itoa(1000000 + i) // Synapse numbers its guests
	case k == kindAppservice && i%300 == 11:
		return "_irc_" + strconv.Itoa(i) + ":irc.example" // a ':' inside
	case k == kindAppservice:
		return "_bridge_" + strconv.Itoa(i)
	case i%50 == 17:
		return "User" + strconv.Itoa(i) // upper case, from before the rules
	case i%120 == 19:
		return "o'brien" + strconv.Itoa(i) // a historical character
	case i%333 == 21:
		return "0" + strconv.Itoa(i) // digits only, not a guest
	}
	return "user" + strconv.Itoa(i)
}

// generator accumulates rows and expectations.
type generator struct {
	opts   Options
	ds     *Dataset
	tables map[string]*table
	// pool are the bcrypt hashes of Password(0..passwordPool-1).
	pool     []string
	admin    string // an admin's MXID, for puppet tokens
	tokenID  int64
	refresh  int64
	nowMS    int64
	baseTime int64
}

// table buffers rows of one table for COPY.
type table struct {
	name string
	cols []string
	// keep are the indexes of the columns this schema version has.
	keep []int
	rows [][]any
}

// newGenerator prepares the tables of the schema version and the hash pool.
func newGenerator(opts Options) (*generator, error) {
	g := &generator{
		opts: opts,
		ds: &Dataset{Options: opts, People: map[string]*Person{}, Rows: map[string]int64{},
			Expect: Expect{Emitted: map[string]int64{}, Skipped: map[string]map[synapse.SkipReason]int64{},
				Formats: map[string]map[string]int64{}, Links: map[string]int64{}}},
		tables:   map[string]*table{},
		nowMS:    opts.Now.UnixMilli(),
		baseTime: time.Date(2016, 6, 1, 0, 0, 0, 0, time.UTC).Unix(),
	}
	absent := map[string]bool{}
	v := opts.SchemaVersion
	absent["users.approved"] = v < 73
	absent["users.locked"] = v < 80
	absent["users.suspended"] = v < 85
	absent["profiles.full_user_id"] = v < 76
	for _, t := range []struct {
		name string
		cols string
	}{
		{"users", "name password_hash creation_ts admin upgrade_ts is_guest appservice_id user_type deactivated shadow_banned consent_version consent_ts approved locked suspended"},
		{"profiles", "user_id displayname avatar_url full_user_id"},
		{"user_threepids", "user_id medium address validated_at added_at"},
		{"devices", "user_id device_id display_name last_seen ip user_agent hidden"},
		{"refresh_tokens", "id user_id device_id token next_token_id expiry_ts ultimate_session_expiry_ts"},
		{"access_tokens", "id user_id device_id token valid_until_ms puppets_user_id last_validated refresh_token_id used"},
		{"user_external_ids", "auth_provider external_id user_id"},
		{"erased_users", "user_id"},
		{"users_pending_deactivation", "user_id"},
		{"registration_tokens", "token uses_allowed pending completed expiry_time"},
	} {
		tb := &table{name: t.name}
		for i, c := range strings.Fields(t.cols) {
			if absent[t.name+"."+c] {
				continue
			}
			tb.cols = append(tb.cols, c)
			tb.keep = append(tb.keep, i)
		}
		g.tables[t.name] = tb
	}
	for i := range passwordPool {
		h, err := HashPassword(Password(i), opts.Pepper, opts.BcryptCost)
		if err != nil {
			return nil, err
		}
		g.pool = append(g.pool, h)
	}
	return g, nil
}

// flushOrder writes refresh tokens before the access tokens that name them.
var flushOrder = []string{"users", "profiles", "user_threepids", "devices", "refresh_tokens", "access_tokens",
	"user_external_ids", "erased_users", "users_pending_deactivation", "registration_tokens"}

// chunk is how many users' rows are buffered before a COPY of each table.
const chunk = 5000

// run generates every user, the cast and the oddities, and writes them.
func (g *generator) run(ctx context.Context, tx pgx.Tx) error {
	// User 1 is an admin; its MXID is the puppeteer of puppet tokens.
	g.admin = synapse.MXID(localpartOf(1, kindOf(1)), g.opts.ServerName)
	for i := range g.opts.Users {
		g.user(i)
		if (i+1)%chunk == 0 {
			if err := g.flush(ctx, tx); err != nil {
				return err
			}
		}
	}
	if !g.opts.NoOddities {
		if err := g.cast(); err != nil {
			return err
		}
		g.orphans()
		g.registrationTokens()
	}
	return g.flush(ctx, tx)
}

// flush copies every buffered row into its table.
func (g *generator) flush(ctx context.Context, tx pgx.Tx) error {
	for _, name := range flushOrder {
		t := g.tables[name]
		if len(t.rows) == 0 {
			continue
		}
		n, err := tx.CopyFrom(ctx, pgx.Identifier{t.name}, t.cols, pgx.CopyFromRows(t.rows))
		if err != nil {
			return fmt.Errorf("synapsetest: copy %s: %w", t.name, err)
		}
		g.ds.Rows[t.name] += n
		t.rows = t.rows[:0]
	}
	return nil
}

// add buffers a row given with every column of the table's full list.
func (g *generator) add(name string, row ...any) {
	t := g.tables[name]
	out := make([]any, len(t.keep))
	for j, i := range t.keep {
		out[j] = row[i]
	}
	t.rows = append(t.rows, out)
}

// emit and skip count what the reader should do with a row.
func (g *generator) emit(stream string) { g.ds.Expect.Emitted[stream]++ }

func (g *generator) skip(stream string, r synapse.SkipReason) {
	m := g.ds.Expect.Skipped[stream]
	if m == nil {
		m = map[synapse.SkipReason]int64{}
		g.ds.Expect.Skipped[stream] = m
	}
	m[r]++
}

func (g *generator) format(stream string, f synapse.TokenFormat) {
	m := g.ds.Expect.Formats[stream]
	if m == nil {
		m = map[string]int64{}
		g.ds.Expect.Formats[stream] = m
	}
	m[f.String()]++
}

// person records a user under role, the first time role is seen.
func (g *generator) person(role string, p *Person) *Person {
	if _, seen := g.ds.People[role]; seen {
		return nil
	}
	g.ds.People[role] = p
	return p
}

// nullable returns nil for the zero value, else v.
func nullable[T comparable](v T) any {
	var zero T
	if v == zero {
		return nil
	}
	return v
}

// userSpec is everything about one user that the tables need.
type userSpec struct {
	i                                            int
	kind                                         kind
	localpart, mxid, hash, password, userType    string
	admin, locked, suspended, shadow, unapproved bool
	created                                      int64
	email                                        string
}

// user writes the i-th generated user and everything it owns.
func (g *generator) user(i int) {
	k := kindOf(i)
	u := userSpec{i: i, kind: k, localpart: localpartOf(i, k)}
	u.mxid = synapse.MXID(u.localpart, g.opts.ServerName)
	u.created = g.baseTime + int64(i)*1800 // every half hour from mid-2016
	active := k == kindPassword || k == kindSSO || k == kindNoCredential
	if k == kindPassword || (k == kindSSO && i%17 == 2) {
		u.hash, u.password = g.pool[i%passwordPool], Password(i)
	}
	if active {
		u.admin = i%1000 == 1
		u.locked = i%89 == 2 && g.opts.SchemaVersion >= 80
		u.suspended = i%300 == 4 && g.opts.SchemaVersion >= 85
		u.shadow = i%400 == 6
		u.unapproved = i%450 == 8 && g.opts.SchemaVersion >= 73
	}
	switch {
	case k == kindNoCredential:
		u.userType = "bot"
	case active && i%700 == 10:
		u.userType = "support"
	}
	g.writeUser(u)

	p := &Person{MXID: u.mxid, Localpart: u.localpart, Password: u.password, Admin: u.admin, Locked: u.locked,
		Deactivated: k == kindDeactivated, AccessTokens: map[string]string{}, Refresh: map[string]string{}}
	r := rand.New(rand.NewPCG(g.opts.Seed, uint64(i)))
	switch k {
	case kindGuest:
		g.add("devices", u.mxid, "guest_device", nil, nil, nil, nil, false)
		g.skip("devices", synapse.SkipGuestDevice)
		return
	case kindAppservice:
		if i%300 == 11 {
			g.ds.Expect.AppserviceColon++
		}
		if i%300 == 161 {
			g.add("user_threepids", u.mxid, "email", fmt.Sprintf("bridge%d@example.com", i), u.created*1000, u.created*1000)
			g.skip("emails", synapse.SkipAppservice)
		}
		dev := randomUpper(r, 10)
		g.add("devices", u.mxid, dev, "bridge", nil, nil, nil, false)
		g.skip("devices", synapse.SkipAppservice)
		g.token(u, r, dev, "plain", synapse.SkipAppservice)
		return
	case kindDeactivated:
		if i%2 == 1 {
			g.add("user_external_ids", "oidc-github", "gh-"+strconv.Itoa(i), u.mxid)
			g.emit("external_ids")
			g.ds.Expect.Links["oidc-github"]++
			p.ExternalIDs = append(p.ExternalIDs, "oidc-github gh-"+strconv.Itoa(i))
		}
		if i%3 == 1 {
			g.add("users_pending_deactivation", u.mxid)
		}
		if i%3 == 0 {
			g.add("erased_users", u.mxid)
		}
		g.person("deactivated", p)
		return
	}

	// An active user: email, msisdn, devices and tokens, SSO links.
	u.email = fmt.Sprintf("user%d@mail%d.example.com", i, i%7)
	if i%40 == 1 {
		u.email = fmt.Sprintf("User%d@MAIL%d.Example.COM", i, i%7) // stored before canonicalisation
	}
	p.Email = u.email
	g.add("user_threepids", u.mxid, "email", u.email, u.created*1000+5000, u.created*1000+4000)
	g.emit("emails")
	if i%20 == 0 {
		g.add("user_threepids", u.mxid, "msisdn", fmt.Sprintf("4477009%05d", i), u.created*1000, u.created*1000)
		g.skip("emails", synapse.SkipNotEmail)
	}
	if k == kindSSO || i%17 == 2 {
		provider := "oidc-github"
		switch {
		case i%39 == 3:
			provider = "saml"
		case i%26 == 3:
			provider = "oidc-google"
		}
		subject := provider + "-subject-" + strconv.Itoa(i)
		g.add("user_external_ids", provider, subject, u.mxid)
		g.emit("external_ids")
		g.ds.Expect.Links[provider]++
		p.ExternalIDs = append(p.ExternalIDs, provider+" "+subject)
		g.person("sso", p)
	}
	if i%10 == 4 {
		for _, name := range []string{"master signing key", "self_signing signing key", "user_signing signing key"} {
			g.add("devices", u.mxid, crossSigningID(r), name, nil, nil, nil, true)
			g.skip("devices", synapse.SkipHiddenDevice)
		}
	}
	for d := range g.opts.DevicesPerUser {
		dev := randomUpper(r, 10)
		p.Devices = append(p.Devices, dev)
		g.add("devices", u.mxid, dev, deviceName(d), u.created*1000+int64(d)*60000+86400000,
			deviceIP(i, d), "Mozilla/5.0 (X11; Linux x86_64) Element/1."+strconv.Itoa(i%60), false)
		g.emit("devices")
		switch {
		case d == 0 && i%10 == 0:
			p.AccessTokens[dev] = g.token(u, r, dev, "macaroon", "")
		case d == 1 && i%25 == 0:
			g.refreshChain(u, r, dev, p)
		default:
			p.AccessTokens[dev] = g.token(u, r, dev, "plain", "")
		}
	}
	if i%50 == 7 {
		p.AccessTokens[""] = g.token(u, r, "", "plain", "")
		g.person("deviceless", p)
	}
	if i%30 == 1 && len(p.Devices) > 0 {
		g.token(u, r, p.Devices[0], "puppet", synapse.SkipPuppet)
	}
	if i%60 == 13 && len(p.Devices) > 0 {
		g.token(u, r, p.Devices[0], "expired", synapse.SkipExpired)
	}

	switch {
	case u.admin:
		g.person("admin", p)
	case u.locked:
		g.person("locked", p)
	case strings.ToLower(u.localpart) != u.localpart && k == kindPassword:
		g.person("upper-case", p)
	case i%10 == 0 && k == kindPassword:
		g.person("macaroon", p)
	}
	if i%25 == 0 && i%50 != 0 && i%75 != 0 && k == kindPassword {
		g.person("refresh", p)
	}
	if i%50 == 0 && i%100 != 0 && k == kindPassword {
		g.person("refresh-chain", p)
	}
	if k == kindPassword && !u.admin && !u.locked && i%10 != 0 && i%25 != 0 && len(p.ExternalIDs) == 0 &&
		strings.ToLower(u.localpart) == u.localpart && !strings.ContainsRune(u.localpart, '\'') {
		g.person("plain", p)
	}
}

// writeUser writes the users and profiles rows of u and counts it.
func (g *generator) writeUser(u userSpec) {
	guest, deactivated := 0, 0
	var appservice any
	switch u.kind {
	case kindGuest:
		guest = 1
		g.skip("users", synapse.SkipGuest)
	case kindAppservice:
		appservice = "bridge"
		g.skip("users", synapse.SkipAppservice)
	case kindDeactivated:
		deactivated = 1
		g.emit("users")
	default:
		g.emit("users")
		if u.hash == "" && u.kind != kindSSO && !(u.kind == kindPassword) {
			g.ds.Expect.NoCredential++
		}
	}
	if u.kind != kindGuest && u.kind != kindAppservice && synapse.LocalpartProblem(u.localpart, g.opts.ServerName) != "" {
		g.ds.Expect.InvalidLocalparts++
	}
	var shadow, approved any
	if u.shadow {
		shadow = true
	}
	if u.unapproved {
		approved = false
	} else if u.i%2 == 0 {
		approved = true // the others stay NULL, which counts as approved
	}
	admin := 0
	if u.admin {
		admin = 1
	}
	var consentVersion, consentTS any
	if u.i%5 == 0 {
		consentVersion, consentTS = "1.0", (u.created+60)*1000
	}
	g.add("users", u.mxid, nullable(u.hash), u.created, admin, nil, guest, appservice, nullable(u.userType),
		deactivated, shadow, consentVersion, consentTS, approved, u.locked, u.suspended)

	display := any("User " + strconv.Itoa(u.i))
	if u.i%9 == 0 {
		display = "Zoë " + strconv.Itoa(u.i) + " 🦊"
	}
	var avatar any
	if u.i%4 == 0 {
		avatar = "mxc://" + g.opts.ServerName + "/avatar" + strconv.Itoa(u.i)
	}
	if u.kind == kindDeactivated && u.i%3 == 0 { // erased: the profile is blanked
		display, avatar = nil, nil
	}
	localpart, _, _ := strings.Cut(u.localpart, ":") // Synapse keys profiles by the text up to the first ':'
	var full any = u.mxid
	if g.opts.SchemaVersion < 78 && u.i%10 == 0 {
		full = nil // missed by the backfill
	}
	g.add("profiles", localpart, display, avatar, full)
}

// deviceName returns a realistic display name for a user's d-th device.
func deviceName(d int) string {
	return [...]string{"Element Desktop (Linux)", "Element X (Android)", "FluffyChat", "Cinny"}[d%4]
}

// deviceIP returns the IP Synapse last copied from user_ips: IPv4, IPv6,
// "-", NULL, or (rarely) something that does not parse.
func deviceIP(i, d int) any {
	switch {
	case i%250 == 3 && d == 0:
		return "not-an-ip"
	case (i+d)%7 == 0:
		return "-"
	case (i+d)%11 == 0:
		return nil
	case i%2 == 0:
		return fmt.Sprintf("2001:db8::%x", i+d)
	}
	return fmt.Sprintf("192.0.2.%d", (i+d)%250+1)
}

// token writes one access token of u on device dev ("" for none) of the
// given sort (plain, macaroon, puppet, expired); skip is the reason the
// reader skips it, or "" when it is emitted. It returns the token.
func (g *generator) token(u userSpec, r *rand.Rand, dev, sort string, skip synapse.SkipReason) string {
	g.tokenID++
	text := SynapseToken(r, "syt", u.localpart)
	format := synapse.FormatAccess
	var validUntil, puppets, validated any
	validated = u.created*1000 + 3600000
	switch sort {
	case "macaroon":
		text, format, validated = Macaroon(r, g.opts.ServerName, u.mxid), synapse.FormatMacaroon, nil
	case "puppet":
		puppets = g.admin
	case "expired":
		validUntil = g.nowMS - 60000
	default:
		if u.i%3 == 0 {
			validUntil = g.nowMS + 3600000
		}
	}
	g.add("access_tokens", g.tokenID, u.mxid, nullable(dev), text, validUntil, puppets, validated, nil, nil)
	if skip != "" {
		g.skip("access_tokens", skip)
	} else {
		g.emit("access_tokens")
		g.format("access_tokens", format)
	}
	return text
}

// refreshChain writes a refresh chain on device dev: one pair, or for every
// other one an older pair pointing at a newer one, whose access token the
// client used (the older pair is then obsolete) or not (both are live). One
// in three single pairs has expired.
func (g *generator) refreshChain(u userSpec, r *rand.Rand, dev string, p *Person) {
	pair := func(next any, expiry any, used bool) (refresh, access string) {
		g.refresh++
		refresh = SynapseToken(r, "syr", u.localpart)
		g.add("refresh_tokens", g.refresh, u.mxid, dev, refresh, next, expiry, nil)
		g.tokenID++
		access = SynapseToken(r, "syt", u.localpart)
		g.add("access_tokens", g.tokenID, u.mxid, dev, access, g.nowMS+300000, nil, g.nowMS-60000, g.refresh, used)
		return refresh, access
	}
	if u.i%50 != 0 {
		var expiry any
		if u.i%75 == 0 {
			expiry = g.nowMS - 1000
		}
		refresh, access := pair(nil, expiry, false)
		if expiry != nil {
			g.skip("refresh_tokens", synapse.SkipExpired)
			return
		}
		g.emit("refresh_tokens")
		g.format("refresh_tokens", synapse.FormatRefresh)
		p.Refresh[refresh] = access
		return
	}
	used := u.i%100 == 0
	newRefresh, newAccess := pair(nil, nil, used)
	newID := g.refresh
	oldRefresh, oldAccess := pair(newID, nil, true)
	g.emit("refresh_tokens")
	g.format("refresh_tokens", synapse.FormatRefresh)
	p.Refresh[newRefresh] = newAccess
	if used {
		g.skip("refresh_tokens", synapse.SkipObsoleteRefresh)
		p.ObsoleteRefresh = append(p.ObsoleteRefresh, oldRefresh)
	} else {
		g.emit("refresh_tokens")
		g.format("refresh_tokens", synapse.FormatRefresh)
		p.Refresh[oldRefresh] = oldAccess
	}
}

// cast writes the fixed people whose passwords or names are edge cases.
func (g *generator) cast() error {
	people := []struct {
		role, localpart, password, prefix string
		cost                              int
	}{
		// Synapse normalises with NFKC: the ligature and the Ohm sign
		// become "fi" and the Greek capital omega.
		{"nfkc", "nfkc", "\ufb01ne \u2126 password", "", 0},
		// Longer than 72 bytes: only the first 72 count, pepper or not.
		{"long-password", "longpass", strings.Repeat("long password ", 6), "", 0},
		{"prefix-2a", "prefix2a", "two-a password", "$2a$", 0},
		{"prefix-2y", "prefix2y", "two-y password", "$2y$", 0},
		{"cost", "cost", "costly password", "", g.opts.BcryptCost + 1},
		// Case-only duplicates, which Synapse allowed long ago.
		{"Casey", "Casey", "upper casey", "", 0}, // counted in Expect.CaseDuplicates
		{"casey", "casey", "lower casey", "", 0},
	}
	g.ds.Expect.CaseDuplicates += 2
	for n, c := range people {
		cost := c.cost
		if cost == 0 {
			cost = g.opts.BcryptCost
		}
		hash, err := HashPassword(c.password, g.opts.Pepper, cost)
		if err != nil {
			return err
		}
		if c.prefix != "" {
			hash = c.prefix + hash[4:]
		}
		i := g.opts.Users + n
		u := userSpec{i: i, kind: kindPassword, localpart: c.localpart, hash: hash, password: c.password,
			created: g.baseTime + int64(i)*1800}
		u.mxid = synapse.MXID(u.localpart, g.opts.ServerName)
		g.writeUser(u)
		p := &Person{MXID: u.mxid, Localpart: u.localpart, Password: c.password, Email: strings.ToLower(c.role) + "." + strconv.Itoa(n) + "@cast.example.com",
			AccessTokens: map[string]string{}, Refresh: map[string]string{}}
		g.add("user_threepids", u.mxid, "email", p.Email, u.created*1000, u.created*1000)
		g.emit("emails")
		r := rand.New(rand.NewPCG(g.opts.Seed, uint64(i)))
		dev := randomUpper(r, 10)
		p.Devices = []string{dev}
		g.add("devices", u.mxid, dev, "Element Web", g.nowMS-3600000, "198.51.100.7", "Mozilla/5.0", false)
		g.emit("devices")
		p.AccessTokens[dev] = g.token(u, r, dev, "plain", "")
		g.ds.People[c.role] = p
	}
	return nil
}

// orphans writes rows that name users or devices that do not exist, as
// real homeservers have (Synapse declares almost no foreign keys).
func (g *generator) orphans() {
	srv := g.opts.ServerName
	someone := g.ds.People["nfkc"]
	r := rand.New(rand.NewPCG(g.opts.Seed, 1<<40))
	g.add("user_threepids", "@ghost-email:"+srv, "email", "ghost@example.com", g.nowMS, g.nowMS)
	g.skip("emails", synapse.SkipNoUser)
	g.add("devices", "@ghost-device:"+srv, "GHOSTDEVIC", "Gone", nil, nil, nil, false)
	g.skip("devices", synapse.SkipNoUser)
	ghost := userSpec{localpart: "ghost-token", mxid: "@ghost-token:" + srv}
	g.token(ghost, r, "", "plain", synapse.SkipNoUser)
	lost := userSpec{i: 1, localpart: someone.Localpart, mxid: someone.MXID}
	g.token(lost, r, "GONEDEVICE", "plain", synapse.SkipNoDevice)
	g.refresh++
	g.add("refresh_tokens", g.refresh, someone.MXID, "GONEREFRESH", SynapseToken(r, "syr", someone.Localpart), nil, nil, nil)
	g.tokenID++
	g.add("access_tokens", g.tokenID, someone.MXID, "GONEREFRESH", SynapseToken(r, "syt", someone.Localpart), g.nowMS+300000, nil, g.nowMS, g.refresh, false)
	g.skip("refresh_tokens", synapse.SkipNoDevice)
	g.add("user_external_ids", "oidc-github", "ghost-subject", "@ghost-sso:"+srv)
	g.skip("external_ids", synapse.SkipNoUser)
	g.add("profiles", "ghost-profile", "Ghost", nil, "@ghost-profile:"+srv)
}

// registrationTokens writes one token of each state.
func (g *generator) registrationTokens() {
	g.add("registration_tokens", "unlimited-token", nil, 0, 3, nil)
	g.emit("registration_tokens")
	g.add("registration_tokens", "two-uses-left", 5, 1, 3, g.nowMS+86400000)
	g.emit("registration_tokens")
	g.add("registration_tokens", "used-up-token", 2, 0, 2, nil)
	g.skip("registration_tokens", synapse.SkipUsedUp)
	g.add("registration_tokens", "expired-token", nil, 0, 0, g.nowMS-1000)
	g.skip("registration_tokens", synapse.SkipExpired)
}

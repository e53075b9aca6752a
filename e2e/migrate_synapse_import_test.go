package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"gatehouse.dev/migrate/synapse/synapsetest"
	"gatehouse.dev/platform/testkit"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
)

// `gatehouse migrate synapse` on a generated Synapse database (Synapse's
// schema from testdata, bcrypt hashes made with a pepper, devices, access
// and refresh tokens, macaroons, emails and msisdns, SSO links,
// registration tokens, guests and appservice users that are skipped),
// imported into a running `gatehouse serve` with a homeserver stand-in:
//   - killed (SIGKILL) in the middle and run again, it finishes with every
//     user once; a third run changes nothing and says so;
//   - a migrated user signs in on the pages with the Synapse password (and
//     the hash is upgraded to argon2id);
//   - a token Synapse issued introspects active with its user and device,
//     and Synapse's refresh token refreshes;
//   - a locked user's tokens are inactive; the emails are the user's;
//   - the audit log says "imported from Synapse";
//   - the homeserver sees no provisioning call for the migrated users and
//     devices.
func TestMigrateSynapseImport(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	const pepper = "the synapse pepper"
	dbURL := testkit.Postgres(t)
	ds, err := synapsetest.Generate(ctx, dbURL, synapsetest.Options{Users: 600, Pepper: pepper})
	if err != nil {
		t.Fatal(err)
	}
	hsYAML := filepath.Join(t.TempDir(), "homeserver.yaml")
	if err := os.WriteFile(hsYAML, []byte("server_name: example.org\npassword_config: {pepper: \""+pepper+"\"}\n"+
		"oidc_providers: [{idp_id: github, client_id: x}, {idp_id: google, client_id: y}]\nsaml2_config: {sp_config: {}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hs := newStandIn(t)
	e := newOAuthEnv(t, "GATEHOUSE_MATRIX_HOMESERVER_URL="+hs.URL(), "GATEHOUSE_BCRYPT_PEPPER="+pepper)
	accounts := accountsv1.NewAccountsServiceClient(e.conn)
	standInWait(t, "alice on the homeserver", func() bool { return hs.user("alice") != nil })
	callsBefore := len(hs.callLog(0))
	args := []string{"migrate", "synapse", "--synapse-database", dbURL, "--synapse-config", hsYAML,
		"--ignore-missing-auth-providers", "--format", "json", "--grpc", e.s.grpc}

	// A dry run reads and checks everything and writes nothing.
	code, out, errOut := runCLI(t, e.s.cmd.Env, append(args, "--dry-run")...)
	if code != 0 || !strings.Contains(out, `"dry_run":true`) || !strings.Contains(out, `"would_import":`+strconv.FormatInt(ds.Expect.Emitted["users"], 10)) {
		t.Fatalf("dry run: exit %d\n%s\n%s", code, tail(out), errOut)
	}
	if n := countUsers(t, accounts); n != 1 {
		t.Fatalf("after a dry run Gatehouse lists %d users, want alice alone", n)
	}

	// Killed in the middle of the users.
	// Small batches and a progress line after each: the kill lands early in the users.
	cmd := exec.CommandContext(ctx, binary, append(args, "--batch", "5", "--progress-every", "1ms")...)
	cmd.Env = e.s.cmd.Env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	sc := bufio.NewScanner(stdout)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line struct {
			Progress *struct {
				Phase string `json:"phase"`
				Done  int64  `json:"done"`
				Final bool   `json:"final"`
			} `json:"progress"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Progress != nil && line.Progress.Phase == "users" && line.Progress.Done > 0 && !line.Progress.Final {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
			break
		}
	}
	cmd.Wait()
	if !killed {
		t.Fatalf("the first run ended before it could be killed among the users:\n%s", stderr.String())
	}

	type outcomes struct {
		Imported        int64 `json:"imported"`
		AlreadyImported int64 `json:"already_imported"`
		Clashes         int64 `json:"clashes"`
		Invalid         int64 `json:"invalid"`
	}
	type summary struct {
		Summary struct {
			Users              outcomes `json:"users"`
			Sessions           outcomes `json:"sessions"`
			RegistrationTokens outcomes `json:"registration_tokens"`
			Tokens             int64    `json:"tokens"`
		} `json:"summary"`
		Changed bool `json:"changed"`
	}
	migrate := func(what string) summary {
		t.Helper()
		code, out, errOut := runCLI(t, e.s.cmd.Env, args...)
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s\n%s", what, code, tail(out), errOut)
		}
		for _, secret := range []string{"syt_", "syr_", "$2b$", pepper} {
			if strings.Contains(out+errOut, secret) {
				t.Errorf("%s: the output shows %q", what, secret)
			}
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		var s summary
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &s); err != nil {
			t.Fatalf("%s: last line %q: %v", what, lines[len(lines)-1], err)
		}
		return s
	}
	second := migrate("the run after the kill")
	users := second.Summary.Users
	if users.AlreadyImported == 0 || users.Imported == 0 || users.Imported+users.AlreadyImported != ds.Expect.Emitted["users"] ||
		users.Clashes != 0 || users.Invalid != 0 {
		t.Errorf("after the kill: users %+v, want %d in all, some from the first run", users, ds.Expect.Emitted["users"])
	}
	sessions := second.Summary.Sessions
	if sessions.Imported+sessions.AlreadyImported < ds.Expect.Emitted["devices"] || sessions.Invalid != 0 {
		t.Errorf("sessions %+v, want at least the %d devices", sessions, ds.Expect.Emitted["devices"])
	}
	if rt := second.Summary.RegistrationTokens; rt.Imported != ds.Expect.Emitted["registration_tokens"] {
		t.Errorf("registration tokens %+v, want %d", rt, ds.Expect.Emitted["registration_tokens"])
	}
	third := migrate("a run after success")
	if third.Changed || third.Summary.Users.AlreadyImported != ds.Expect.Emitted["users"] ||
		third.Summary.Sessions.AlreadyImported != sessions.Imported+sessions.AlreadyImported {
		t.Errorf("a run after success: %+v", third)
	}
	// Every user once: the users Gatehouse lists are alice and the imported.
	if listed := countUsers(t, accounts); listed != ds.Expect.Emitted["users"]+1 {
		t.Errorf("Gatehouse lists %d users, want %d imported and alice", listed, ds.Expect.Emitted["users"])
	}

	// The homeserver has the users and devices already: nobody called it.
	if calls := hs.callLog(callsBefore); len(calls) != 0 {
		t.Errorf("the migration made %d homeserver calls, e.g. %v", len(calls), calls[0])
	}

	// Synapse's tokens keep working, with their user and device.
	plain := ds.People["plain"]
	u, err := accounts.GetUserByUsername(ctx, &accountsv1.GetUserByUsernameRequest{Username: plain.Localpart})
	if err != nil {
		t.Fatal(err)
	}
	for device, token := range plain.AccessTokens {
		got := e.introspect(t, token)
		if got["active"] != true || got["sub"] != u.GetUser().GetId() || got["username"] != plain.Localpart || (device != "" && got["device_id"] != device) {
			t.Errorf("plain's token of device %q introspects %v", device, got)
		}
	}
	for role, want := range map[string]bool{"macaroon": true, "deviceless": true, "locked": false} {
		p := ds.People[role]
		for _, token := range p.AccessTokens {
			if got := e.introspect(t, token); got["active"] != want {
				t.Errorf("%s's token: active %v, want %v", role, got["active"], want)
			}
		}
	}
	for _, token := range ds.People["refresh"].ObsoleteRefresh {
		if got := e.introspect(t, token); got["active"] == true {
			t.Error("a refresh token whose successor was used came over")
		}
	}
	// Synapse's refresh token refreshes into Gatehouse's tokens.
	m := newMatrixClient(e)
	for refresh := range ds.People["refresh"].Refresh {
		r := m.post(t, "/_matrix/client/v3/refresh", "", map[string]string{"refresh_token": refresh})
		if r.status != http.StatusOK {
			t.Fatalf("refresh with Synapse's refresh token: %d %s", r.status, r.raw)
		}
		next, _ := r.body["access_token"].(string)
		if got := e.introspect(t, next); got["active"] != true || got["username"] != ds.People["refresh"].Localpart {
			t.Errorf("the refreshed access token introspects %v", got)
		}
		break
	}

	// The emails are the user's, verified.
	emails, err := accounts.ListEmails(ctx, &accountsv1.ListEmailsRequest{UserId: u.GetUser().GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if got := emails.GetEmails(); len(got) == 0 || got[0].GetEmail() != strings.ToLower(plain.Email) || !got[0].GetVerified() {
		t.Errorf("plain's emails: %v, want %s", got, plain.Email)
	}

	// The audit log says where the user came from. (Its entries are made
	// from the events by the audit reactor, which catches up with a bulk
	// import on its own: until then a list answers UNAVAILABLE.)
	var (
		audit   *accountsv1.ListAuditEntriesResponse
		listErr error
	)
	if err := waitFor(60*time.Second, func() (bool, error) {
		audit, listErr = accounts.ListAuditEntries(ctx, &accountsv1.ListAuditEntriesRequest{UserId: u.GetUser().GetId()})
		return status.Code(listErr) != codes.Unavailable, listErr
	}); err != nil {
		t.Fatal(err)
	}
	if listErr != nil {
		t.Fatal(listErr)
	}
	imported := false
	for _, e := range audit.GetEntries() {
		imported = imported || (e.GetEventType() == "gatehouse.events.v1.UserImported" && strings.Contains(e.GetSummary(), "imported from Synapse"))
	}
	if !imported {
		t.Errorf("plain's audit log: %v", audit.GetEntries())
	}

	// A migrated user signs in on the pages with the Synapse password; the
	// hash is upgraded to argon2id.
	b := newBrowser(t)
	b.open("the account page, signed out", e.issuer+"account")
	b.fill("username", plain.Localpart)
	b.fill("password", plain.Password)
	if status := b.submit("sign in", "button[type=submit]"); status != http.StatusOK || !strings.HasSuffix(b.location(), "/account") {
		t.Fatalf("sign-in with the Synapse password led to %d %s\n%s", status, b.location(), b.pageText())
	}
	if main := b.text("main"); !strings.Contains(main, strings.ToLower(plain.Email)) {
		t.Errorf("the account page does not list %s:\n%s", plain.Email, main)
	}
	if err := waitFor(20*time.Second, func() (bool, error) {
		audit, err := accounts.ListAuditEntries(ctx, &accountsv1.ListAuditEntriesRequest{UserId: u.GetUser().GetId()})
		if err != nil {
			return false, err
		}
		for _, e := range audit.GetEntries() {
			if strings.Contains(e.GetSummary(), "password hash upgraded") {
				return true, nil
			}
		}
		return false, nil
	}); err != nil {
		t.Errorf("the hash was not upgraded after the sign-in: %v", err)
	}
	// A deactivated user cannot sign in.
	if _, err := accounts.VerifyPassword(ctx, &accountsv1.VerifyPasswordRequest{Username: ds.People["deactivated"].Localpart, Password: "anything"}); err == nil {
		t.Error("a deactivated user signed in")
	}
}

// countUsers is how many users Gatehouse lists.
func countUsers(t *testing.T, accounts accountsv1.AccountsServiceClient) int64 {
	t.Helper()
	var n int64
	for page := ""; ; {
		resp, err := accounts.ListUsers(context.Background(), &accountsv1.ListUsersRequest{PageSize: 500, PageToken: page})
		if err != nil {
			t.Fatal(err)
		}
		n += int64(len(resp.GetUsers()))
		if page = resp.GetNextPageToken(); page == "" {
			return n
		}
	}
}

// A Gatehouse user whose name a Synapse user has stops the migration before
// anything is written (exit 10, the finding named).
func TestMigrateSynapseRefusesClashes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dbURL := testkit.Postgres(t)
	ds, err := synapsetest.Generate(ctx, dbURL, synapsetest.Options{Users: 20, NoOddities: true})
	if err != nil {
		t.Fatal(err)
	}
	e := newOAuthEnv(t)
	accounts := accountsv1.NewAccountsServiceClient(e.conn)
	taken := ds.People["plain"].Localpart
	if _, err := accounts.Register(ctx, &accountsv1.RegisterRequest{Username: taken, Password: "someone else's password"}); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, e.s.cmd.Env, "migrate", "synapse", "--synapse-database", dbURL, "--format", "json", "--grpc", e.s.grpc)
	if code != 10 || !strings.Contains(out, `"gatehouse-user-exists"`) || !strings.Contains(out, "@"+taken+":example.org") ||
		!strings.Contains(errOut, "nothing was imported") {
		t.Fatalf("exit %d\n%s\n%s", code, tail(out), errOut)
	}
	if n := countUsers(t, accounts); n != 2 {
		t.Errorf("Gatehouse lists %d users after a refused migration, want alice and %s", n, taken)
	}
}

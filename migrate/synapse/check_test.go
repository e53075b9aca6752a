package synapse_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"gatehouse.dev/migrate/synapse"
	"gatehouse.dev/migrate/synapse/synapsetest"
	"gatehouse.dev/platform/testkit"
)

// cleanHomeserver returns the test homeserver.yaml with everything that
// delegated authentication refuses turned off, and the input a Gatehouse
// ready for it would give: same server name and pepper, every provider.
func cleanHomeserver(t *testing.T) (*synapse.Homeserver, synapse.CheckInput) {
	t.Helper()
	hs, err := synapse.ReadHomeserver("testdata/homeserver.yaml")
	if err != nil {
		t.Fatal(err)
	}
	hs.EnableRegistration, hs.EnableRegistrationCaptcha, hs.UserConsent = false, false, nil
	hs.SAML2Enabled, hs.PasswordProviders, hs.SessionLifetimes = false, nil, nil
	in := synapse.CheckInput{ServerName: hs.ServerName, Homeserver: hs, Pepper: hs.Password.Pepper,
		Providers:      []string{"oidc-github", "oidc-google", "saml"},
		UsernamesExist: func(context.Context, []string) ([]string, error) { return nil, nil }}
	return hs, in
}

// codes returns the codes of the report's findings of severity s.
func codes(r *synapse.Report, s synapse.Severity) []synapse.Code {
	var out []synapse.Code
	for _, f := range r.Findings {
		if f.Severity == s {
			out = append(out, f.Code)
		}
	}
	return out
}

// An empty Synapse checked against a Gatehouse configured for it has
// nothing to say but information: exit code 0.
func TestCheckCleanIsOK(t *testing.T) {
	dbURL := testkit.Postgres(t)
	if err := synapsetest.CreateSchema(testCtx(t), dbURL, synapse.TestedSchemaVersion); err != nil {
		t.Fatal(err)
	}
	_, in := cleanHomeserver(t)
	settle(t, dbURL)
	r, err := synapse.RunCheck(testCtx(t), dbURL, synapse.ModeCheck, in)
	if err != nil {
		t.Fatal(err)
	}
	if r.ExitCode() != synapse.ExitOK {
		t.Fatalf("exit %d: errors %v, warnings %v", r.ExitCode(), codes(r, synapse.SeverityError), codes(r, synapse.SeverityWarning))
	}
	if r.Find(synapse.CodeSchemaVersion) == nil || r.Find(synapse.CodePepperPresent) == nil {
		t.Errorf("information missing: %+v", r.Findings)
	}
}

// Each error that stops a migration, alone, on the data and configuration
// that cause it.
func TestCheckErrors(t *testing.T) {
	dbURL, ds := generate(t, synapsetest.Options{Users: 400})
	tests := []struct {
		name  string
		setup func(t *testing.T, in *synapse.CheckInput) (dbURL string, mode synapse.Mode)
		code  synapse.Code
		count int64
		// example is one of the finding's examples, or a part of its message.
		example string
	}{
		{"server name differs from matrix.server_name", func(t *testing.T, in *synapse.CheckInput) (string, synapse.Mode) {
			in.ServerName = "chat.example.org"
			return dbURL, synapse.ModeCheck
		}, synapse.CodeServerNameMismatch, 0, `set matrix.server_name to "example.org"`},
		{"MXIDs on another server (no homeserver.yaml, wrong server name)", func(t *testing.T, in *synapse.CheckInput) (string, synapse.Mode) {
			in.Homeserver, in.ServerName = nil, "example.org:8448"
			return dbURL, synapse.ModeCheck
		}, synapse.CodeMXIDNotOnServer, ds.Expect.Emitted["users"], "@localpart:example.org:8448"},
		{"a user of another server in the database", func(t *testing.T, in *synapse.CheckInput) (string, synapse.Mode) {
			other, _ := generate(t, synapsetest.Options{Users: 5, NoOddities: true})
			exec(t, other, "INSERT INTO users (name, password_hash, creation_ts) VALUES ('@visitor:elsewhere.example', NULL, 1600000000)")
			return other, synapse.ModeCheck
		}, synapse.CodeMXIDNotOnServer, 1, "@visitor:elsewhere.example"},
		{"links to a provider Gatehouse lacks", func(t *testing.T, in *synapse.CheckInput) (string, synapse.Mode) {
			in.Providers = []string{"oidc-github", "oidc-google"}
			return dbURL, synapse.ModeCheck
		}, synapse.CodeProviderNotConfigured, ds.Expect.Links["saml"], `"saml"`},
		{"Gatehouse already has a user of that name", func(t *testing.T, in *synapse.CheckInput) (string, synapse.Mode) {
			in.UsernamesExist = func(_ context.Context, names []string) ([]string, error) {
				var out []string
				for _, n := range names {
					if n == "user0" || n == "nfkc" {
						out = append(out, n)
					}
				}
				return out, nil
			}
			return dbURL, synapse.ModeCheck
		}, synapse.CodeUserExists, 2, "@nfkc:example.org"},
		{"oauth-delegated links", func(t *testing.T, in *synapse.CheckInput) (string, synapse.Mode) {
			other, _ := generate(t, synapsetest.Options{Users: 5, NoOddities: true})
			exec(t, other, `INSERT INTO user_external_ids (auth_provider, external_id, user_id) VALUES
				('oauth-delegated', '01H8PKNWKJ5W4K6W8Q3W2V0ABC', '@user0:example.org'),
				('oauth-delegated', '01H8PKNWKJ5W4K6W8Q3W2V0ABD', '@user1:example.org')`)
			return other, synapse.ModeCheck
		}, synapse.CodeOAuthDelegated, 2, "DELETE FROM user_external_ids"},
		{"guest access on", func(t *testing.T, in *synapse.CheckInput) (string, synapse.Mode) {
			in.Homeserver.AllowGuestAccess = true
			return dbURL, synapse.ModeCheck
		}, synapse.CodeGuestAccess, 0, "allow_guest_access"},
		{"3pid changes on", func(t *testing.T, in *synapse.CheckInput) (string, synapse.Mode) {
			on := true
			in.Homeserver.Enable3PIDChanges = &on
			return dbURL, synapse.ModeCheck
		}, synapse.Code3PIDChanges, 0, "enable_3pid_changes"},
		{"login via existing session on", func(t *testing.T, in *synapse.CheckInput) (string, synapse.Mode) {
			in.Homeserver.LoginViaExistingSession = true
			return dbURL, synapse.ModeCheck
		}, synapse.CodeLoginViaExistingSession, 0, "login_via_existing_session"},
		{"Gatehouse's pepper differs", func(t *testing.T, in *synapse.CheckInput) (string, synapse.Mode) {
			in.Pepper = "another pepper"
			return dbURL, synapse.ModeCheck
		}, synapse.CodePepperMismatch, 0, "passwords.bcrypt_pepper"},
		{"Gatehouse has a pepper, Synapse none", func(t *testing.T, in *synapse.CheckInput) (string, synapse.Mode) {
			in.Homeserver.Password.Pepper = ""
			return dbURL, synapse.ModeCheck
		}, synapse.CodePepperMismatch, 0, "passwords.bcrypt_pepper"},
		{"schema too old", func(t *testing.T, in *synapse.CheckInput) (string, synapse.Mode) {
			old, _ := generate(t, synapsetest.Options{Users: 5, SchemaVersion: 70, NoOddities: true})
			return old, synapse.ModeCheck
		}, synapse.CodeSchemaUnsupported, 0, "schema version 70"},
		{"Synapse still writing, for a migration", func(t *testing.T, in *synapse.CheckInput) (string, synapse.Mode) {
			other, _ := generate(t, synapsetest.Options{Users: 5, NoOddities: true})
			holdUsers(t, other)
			return other, synapse.ModeMigrate
		}, synapse.CodeSynapseRunning, 0, "stop Synapse"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, in := cleanHomeserver(t)
			url, mode := tt.setup(t, &in)
			r, err := synapse.RunCheck(testCtx(t), url, mode, in)
			if err != nil {
				t.Fatal(err)
			}
			if got := codes(r, synapse.SeverityError); !slices.Equal(got, []synapse.Code{tt.code}) {
				t.Fatalf("errors %v, want only %s:\n%+v", got, tt.code, r.Findings)
			}
			f := r.Find(tt.code)
			if tt.count != 0 && f.Count != tt.count {
				t.Errorf("count %d, want %d", f.Count, tt.count)
			}
			if !slices.Contains(f.Examples, tt.example) && !strings.Contains(f.Message, tt.example) {
				t.Errorf("neither examples %v nor message %q name %q", f.Examples, f.Message, tt.example)
			}
			if r.ExitCode() != synapse.ExitErrors {
				t.Errorf("exit code %d, want %d", r.ExitCode(), synapse.ExitErrors)
			}
		})
	}

	// With --ignore-missing-auth-providers the missing provider is a warning.
	_, in := cleanHomeserver(t)
	in.Providers, in.IgnoreMissingProviders = []string{"oidc-github", "oidc-google"}, true
	r, err := synapse.RunCheck(testCtx(t), dbURL, synapse.ModeCheck, in)
	if err != nil {
		t.Fatal(err)
	}
	if f := r.Find(synapse.CodeProviderNotConfigured); f == nil || f.Severity != synapse.SeverityWarning || r.Count(synapse.SeverityError) != 0 {
		t.Errorf("ignored missing provider: %+v", r.Findings)
	}
	// Synapse writing is only a warning for a check.
	holdUsers(t, dbURL)
	_, in = cleanHomeserver(t)
	r, err = synapse.RunCheck(testCtx(t), dbURL, synapse.ModeCheck, in)
	if err != nil {
		t.Fatal(err)
	}
	if f := r.Find(synapse.CodeSynapseRunning); f == nil || f.Severity != synapse.SeverityWarning {
		t.Errorf("Synapse writing during a check: %+v", f)
	}
	if f := r.Find(synapse.CodeSynapseSessions); f == nil || f.Count != 1 {
		t.Errorf("other sessions: %+v", f)
	}
}

// The warnings and information on generated data count what the generator
// made, and the config's settings are each reported.
func TestCheckWarnings(t *testing.T) {
	dbURL, ds := generate(t, synapsetest.Options{Users: 620})
	hs, err := synapse.ReadHomeserver("testdata/homeserver.yaml")
	if err != nil {
		t.Fatal(err)
	}
	in := synapse.CheckInput{ServerName: "example.org", Homeserver: hs, Pepper: hs.Password.Pepper,
		Providers: []string{"oidc-github", "oidc-google", "saml"},
		UsernamesExist: func(_ context.Context, names []string) ([]string, error) {
			if slices.Contains(names, "user67") { // a Gatehouse user "user67" and Synapse's "User67"
				return []string{"user67"}, nil
			}
			return nil, nil
		}}
	settle(t, dbURL)
	r, err := synapse.RunCheck(testCtx(t), dbURL, synapse.ModeCheck, in)
	if err != nil {
		t.Fatal(err)
	}
	if errs := codes(r, synapse.SeverityError); len(errs) > 0 {
		t.Fatalf("errors %v", errs)
	}
	want := map[synapse.Code]int64{
		synapse.CodeGuests:              ds.Expect.Skipped["users"][synapse.SkipGuest],
		synapse.CodeAppservice:          ds.Expect.Skipped["users"][synapse.SkipAppservice],
		synapse.CodeNonEmail:            ds.Expect.Skipped["emails"][synapse.SkipNotEmail],
		synapse.CodeLocalpartInvalid:    ds.Expect.InvalidLocalparts,
		synapse.CodeCaseDuplicates:      ds.Expect.CaseDuplicates,
		synapse.CodeNoCredential:        ds.Expect.NoCredential,
		synapse.CodePuppetTokens:        ds.Expect.Skipped["access_tokens"][synapse.SkipPuppet],
		synapse.CodeOrphans:             7, // an email, a device, two access tokens, a refresh token, a link, a profile
		synapse.CodeUserCaseClash:       1,
		synapse.CodeEmailCaseDuplicates: 0,
		synapse.CodeRegistrationEnabled: 0,
		synapse.CodeUserConsent:         0,
		synapse.CodeCaptcha:             0,
		synapse.CodeSSOUnsupported:      1,
		synapse.CodePasswordProviders:   1,
		synapse.CodeSessionLifetimes:    2,
		synapse.CodeSynapseSessions:     -1, // none: nothing else is connected
	}
	for code, n := range want {
		f := r.Find(code)
		switch {
		case n == -1 && f != nil:
			t.Errorf("%s reported: %+v", code, f)
		case n == -1:
		case code == synapse.CodeEmailCaseDuplicates:
			if f != nil {
				t.Errorf("%s reported: %+v", code, f)
			}
		case f == nil:
			t.Errorf("%s not reported", code)
		case f.Severity != synapse.SeverityWarning || f.Count != n:
			t.Errorf("%s: %s, count %d; want a warning of %d", code, f.Severity, f.Count, n)
		}
	}
	for _, code := range []synapse.Code{synapse.CodeHiddenDevices, synapse.CodeObsoleteRefresh, synapse.CodeExpiredTokens,
		synapse.CodeTokenFormats, synapse.CodeDeactivated, synapse.CodeLocked, synapse.CodeUnparsableIPs,
		synapse.CodeRegistrationTokens, synapse.CodePepperPresent, synapse.CodeSchemaVersion} {
		if f := r.Find(code); f == nil || f.Severity != synapse.SeverityInfo {
			t.Errorf("%s: %+v", code, f)
		}
	}
	if f := r.Find(synapse.CodeHiddenDevices); f.Count != ds.Expect.Skipped["devices"][synapse.SkipHiddenDevice] {
		t.Errorf("hidden devices %d", f.Count)
	}
	if r.ExitCode() != synapse.ExitWarnings {
		t.Errorf("exit code %d", r.ExitCode())
	}

	// A case-only duplicate email (rows from before canonicalisation).
	exec(t, dbURL, `INSERT INTO user_threepids VALUES ('@casey:example.org', 'email', 'USER2@mail2.example.com', 1, 1)`)
	r, err = synapse.RunCheck(testCtx(t), dbURL, synapse.ModeCheck, in)
	if err != nil {
		t.Fatal(err)
	}
	if f := r.Find(synapse.CodeEmailCaseDuplicates); f == nil || f.Count != 2 || !slices.Contains(f.Examples, "@casey:example.org") {
		t.Errorf("email case duplicates: %+v", f)
	}

	// The report, as text and as JSON lines, names every finding and shows
	// no secret: no token, hash, pepper or password.
	var text, lines bytes.Buffer
	if err := r.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteJSON(&lines); err != nil {
		t.Fatal(err)
	}
	for _, f := range r.Findings {
		if !strings.Contains(text.String(), string(f.Code)) {
			t.Errorf("text report lacks %s", f.Code)
		}
	}
	for _, secret := range []string{"syt_", "syr_", "$2b$", "EVEN_MORE_SECRET", "smtp p@ss", "gh-client-secret", "MDAx"} {
		if strings.Contains(text.String()+lines.String(), secret) {
			t.Errorf("the report shows %q", secret)
		}
	}
	sc := bufio.NewScanner(&lines)
	var last map[string]any
	n := 0
	for sc.Scan() {
		last = nil
		if err := json.Unmarshal(sc.Bytes(), &last); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		n++
	}
	if n != len(r.Findings)+len(r.Streams)+1 || last["type"] != "summary" || last["exit_code"] != float64(synapse.ExitWarnings) {
		t.Errorf("%d lines, last %v", n, last)
	}
}

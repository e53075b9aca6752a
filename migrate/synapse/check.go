package synapse

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Severity ranks a finding.
type Severity string

// Severities.
const (
	// SeverityError stops a migration until fixed.
	SeverityError Severity = "error"
	// SeverityWarning is something the operator should know or decide.
	SeverityWarning Severity = "warning"
	// SeverityInfo describes what will happen.
	SeverityInfo Severity = "info"
)

// Code identifies a kind of finding. Codes are stable: scripts may match them.
type Code string

// Findings that stop a migration.
const (
	// CodeSchemaUnsupported: not a Synapse database, or older than v72.
	CodeSchemaUnsupported Code = "schema-unsupported"
	// CodeServerNameMismatch: Synapse's server_name is not Gatehouse's
	// matrix.server_name.
	CodeServerNameMismatch Code = "server-name-mismatch"
	// CodeMXIDNotOnServer: users whose MXID is not on the server name.
	CodeMXIDNotOnServer Code = "mxid-not-on-server"
	// CodeProviderNotConfigured: SSO links to a provider Gatehouse has no
	// upstream provider for (a warning with IgnoreMissingProviders).
	CodeProviderNotConfigured Code = "provider-not-configured"
	// CodeUserExists: Gatehouse already has users of these names.
	CodeUserExists Code = "gatehouse-user-exists"
	// CodeOAuthDelegated: links left by Synapse's removed MSC3861 mode.
	CodeOAuthDelegated Code = "oauth-delegated-links"
	// CodeGuestAccess: allow_guest_access is on.
	CodeGuestAccess Code = "guest-access-enabled"
	// Code3PIDChanges: enable_3pid_changes is explicitly on.
	Code3PIDChanges Code = "3pid-changes-enabled"
	// CodeLoginViaExistingSession: login_via_existing_session is on.
	CodeLoginViaExistingSession Code = "login-via-existing-session"
	// CodePepperMismatch: Gatehouse's passwords.bcrypt_pepper is not Synapse's pepper.
	CodePepperMismatch Code = "pepper-mismatch"
	// CodeSynapseRunning: the lock probe found Synapse writing (an error for
	// a migration, a warning for a check).
	CodeSynapseRunning Code = "synapse-running"
)

// Findings to read and decide on.
const (
	CodeSynapseSessions          Code = "synapse-sessions"
	CodeLockNotPermitted         Code = "lock-not-permitted"
	CodeSchemaNewer              Code = "schema-newer"
	CodeGuests                   Code = "guest-users"
	CodeAppservice               Code = "appservice-users"
	CodeNonEmail                 Code = "non-email-threepids"
	CodeLocalpartInvalid         Code = "localpart-not-valid"
	CodeCaseDuplicates           Code = "localpart-case-duplicates"
	CodeEmailCaseDuplicates      Code = "email-case-duplicates"
	CodeNoCredential             Code = "user-without-credentials"
	CodeHashUnrecognised         Code = "password-hash-unrecognised"
	CodeUserCaseClash            Code = "gatehouse-user-case-clash"
	CodeProviderUnknownToSynapse Code = "provider-not-in-synapse-config"
	CodePuppetTokens             Code = "puppet-tokens"
	CodeOrphans                  Code = "orphan-rows"
	CodeRegistrationEnabled      Code = "registration-enabled"
	CodeUserConsent              Code = "user-consent-enabled"
	CodeCaptcha                  Code = "captcha-enabled"
	CodeSSOProviderMapping       Code = "sso-provider-needs-mapping"
	CodeSSOUnsupported           Code = "sso-unsupported"
	CodePasswordProviders        Code = "password-providers"
	CodeSessionLifetimes         Code = "session-lifetimes"
)

// Findings that say what will happen.
const (
	CodeSchemaVersion      Code = "schema-version"
	CodePepperPresent      Code = "pepper-present"
	CodeUsersNotChecked    Code = "gatehouse-users-not-checked"
	CodeHiddenDevices      Code = "hidden-devices"
	CodeObsoleteRefresh    Code = "obsolete-refresh-pairs"
	CodeExpiredTokens      Code = "expired-tokens"
	CodeTokenFormats       Code = "token-formats"
	CodeDeactivated        Code = "deactivated-users"
	CodeLocked             Code = "locked-users"
	CodeUnparsableIPs      Code = "unparsable-ips"
	CodePasswordLoginOff   Code = "password-login-disabled"
	CodeDelegatedAlready   Code = "delegated-auth-enabled"
	CodeRegistrationTokens Code = "registration-tokens"
)

// Finding is one thing the check found.
type Finding struct {
	Severity Severity `json:"severity"`
	Code     Code     `json:"code"`
	// Message says what was found and what to do, for the operator.
	Message string `json:"message"`
	// Count is how many rows or settings it concerns (0: not countable).
	Count int64 `json:"count,omitempty"`
	// Examples are a few of them: MXIDs, row ids, setting names; never a
	// token, a hash or a secret.
	Examples []string `json:"examples,omitempty"`
}

// Report is the outcome of a check.
type Report struct {
	// Mode is the mode the database was read in.
	Mode Mode `json:"-"`
	// ServerName is Gatehouse's matrix.server_name.
	ServerName string `json:"server_name"`
	// SchemaVersion is the Synapse schema version (0 when unknown).
	SchemaVersion int `json:"schema_version"`
	// Findings are sorted errors first, then warnings, then information.
	Findings []Finding `json:"findings"`
	// Streams are the reader's statistics per stream, in reading order.
	Streams []Stats `json:"streams"`
	// Elapsed is how long the check took.
	Elapsed time.Duration `json:"elapsed_ns"`
}

// Exit codes of a check, as syn2mas has them.
const (
	ExitOK       = 0
	ExitErrors   = 10
	ExitWarnings = 11
)

// Count returns how many findings have severity s.
func (r *Report) Count(s Severity) int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == s {
			n++
		}
	}
	return n
}

// ExitCode is ExitErrors when there are errors, else ExitWarnings when
// there are warnings, else ExitOK.
func (r *Report) ExitCode() int {
	switch {
	case r.Count(SeverityError) > 0:
		return ExitErrors
	case r.Count(SeverityWarning) > 0:
		return ExitWarnings
	}
	return ExitOK
}

// Find returns the first finding with code c, or nil.
func (r *Report) Find(c Code) *Finding {
	for i := range r.Findings {
		if r.Findings[i].Code == c {
			return &r.Findings[i]
		}
	}
	return nil
}

// add appends a finding.
func (r *Report) add(s Severity, c Code, count int64, examples []string, format string, args ...any) {
	r.Findings = append(r.Findings, Finding{Severity: s, Code: c, Message: fmt.Sprintf(format, args...),
		Count: count, Examples: examples})
}

// addTally appends a finding about t's rows, when there are any.
func (r *Report) addTally(s Severity, c Code, t *Tally, format string, args ...any) {
	if t == nil || t.Count == 0 {
		return
	}
	r.add(s, c, t.Count, t.Examples, format, args...)
}

// sort orders the findings by severity, keeping the order within one.
func (r *Report) sort() {
	rank := map[Severity]int{SeverityError: 0, SeverityWarning: 1, SeverityInfo: 2}
	slices.SortStableFunc(r.Findings, func(a, b Finding) int { return rank[a.Severity] - rank[b.Severity] })
}

// UsernameChecker returns which of usernames (localparts, as Synapse stores
// them) Gatehouse already has. It is called with batches of at most
// CheckBatch names.
type UsernameChecker func(ctx context.Context, usernames []string) (existing []string, err error)

// CheckBatch is the most names a UsernameChecker is asked about at once.
const CheckBatch = 1000

// CheckInput is what the check compares Synapse with.
type CheckInput struct {
	// ServerName is Gatehouse's matrix.server_name.
	ServerName string
	// Homeserver is Synapse's configuration; nil when not given (the
	// configuration checks are then skipped).
	Homeserver *Homeserver
	// Providers are the auth_provider values (oidc-<idp_id>, …) for which
	// Gatehouse has an upstream provider.
	Providers []string
	// IgnoreMissingProviders turns links to unconfigured providers from an
	// error into a warning: they are imported and resolve once the provider
	// is configured.
	IgnoreMissingProviders bool
	// UsernamesExist tells which usernames Gatehouse already holds; nil
	// skips that check (with a note in the report).
	UsernamesExist UsernameChecker
	// Pepper is Gatehouse's passwords.bcrypt_pepper.
	Pepper string
}

// RunCheck opens the Synapse database at databaseURL in mode (ModeCheck or
// ModeDryRun read while Synapse runs), checks it and closes it. A database
// that is not a Synapse database of a supported version, or (ModeMigrate)
// one Synapse still holds, gives a report with that error rather than an
// error; err is for what stops the check itself (cannot connect, a query
// failing).
func RunCheck(ctx context.Context, databaseURL string, mode Mode, in CheckInput) (*Report, error) {
	serverName := in.ServerName
	if in.Homeserver != nil {
		serverName = in.Homeserver.ServerName
	}
	src, err := Open(ctx, databaseURL, Options{Mode: mode, ServerName: serverName})
	if se, ok := errors.AsType[*SchemaError](err); ok {
		r := &Report{Mode: mode, ServerName: in.ServerName, SchemaVersion: se.Version}
		r.add(SeverityError, CodeSchemaUnsupported, 0, nil, "%s", se.Reason)
		r.checkConfig(in)
		r.sort()
		return r, nil
	}
	if errors.Is(err, ErrSynapseRunning) {
		r := &Report{Mode: mode, ServerName: in.ServerName}
		r.add(SeverityError, CodeSynapseRunning, 0, nil,
			"Synapse is writing to its tables (the EXCLUSIVE lock was refused): stop Synapse, then run the migration")
		r.checkConfig(in)
		r.sort()
		return r, nil
	}
	if err != nil {
		return nil, err
	}
	defer src.Close(ctx)
	return Check(ctx, src, in)
}

// Check reads every stream of src and reports what stops a migration, what
// to decide and what will happen. It changes nothing anywhere.
func Check(ctx context.Context, src *Source, in CheckInput) (*Report, error) {
	start := time.Now()
	r := &Report{Mode: src.opts.Mode, ServerName: in.ServerName, SchemaVersion: src.Info.SchemaVersion}
	r.checkConfig(in)
	r.checkSource(src)
	if err := r.checkStreams(ctx, src, in); err != nil {
		return nil, err
	}
	if err := r.checkDuplicates(ctx, src); err != nil {
		return nil, err
	}
	r.Elapsed = time.Since(start)
	r.sort()
	return r, nil
}

// checkConfig compares Synapse's configuration with Gatehouse's and with
// what delegated authentication allows.
func (r *Report) checkConfig(in CheckInput) {
	hs := in.Homeserver
	if hs == nil {
		return
	}
	if hs.ServerName != in.ServerName {
		r.add(SeverityError, CodeServerNameMismatch, 0, nil,
			"Synapse's server_name %q is not Gatehouse's matrix.server_name %q: set matrix.server_name to %q (MXIDs cannot change)",
			hs.ServerName, in.ServerName, hs.ServerName)
	}
	if hs.AllowGuestAccess {
		r.add(SeverityError, CodeGuestAccess, 0, nil,
			"allow_guest_access is on: Gatehouse has no guest accounts; turn it off in homeserver.yaml")
	}
	if hs.Enable3PIDChanges != nil && *hs.Enable3PIDChanges {
		r.add(SeverityError, Code3PIDChanges, 0, nil,
			"enable_3pid_changes is on: with delegated authentication, email addresses are managed in Gatehouse; remove it from homeserver.yaml")
	}
	if hs.LoginViaExistingSession {
		r.add(SeverityError, CodeLoginViaExistingSession, 0, nil,
			"login_via_existing_session is on: Synapse refuses it with delegated authentication; remove it from homeserver.yaml")
	}
	switch synapsePepper := hs.Password.Pepper; {
	case synapsePepper != "" && in.Pepper == "":
		r.add(SeverityInfo, CodePepperPresent, 0, nil,
			"Synapse's password_config.pepper is set: it will be carried over to Gatehouse's passwords.bcrypt_pepper (`gatehouse config generate --synapse-config` writes it); imported hashes verify only with it")
	case synapsePepper != "" && in.Pepper == synapsePepper:
		r.add(SeverityInfo, CodePepperPresent, 0, nil,
			"Synapse's password_config.pepper is set, and Gatehouse's passwords.bcrypt_pepper matches it")
	case synapsePepper != in.Pepper:
		r.add(SeverityError, CodePepperMismatch, 0, nil,
			"Gatehouse's passwords.bcrypt_pepper is not Synapse's password_config.pepper: imported passwords would not verify; set it to Synapse's (or empty when Synapse has none)")
	}
	if hs.EnableRegistration {
		r.add(SeverityWarning, CodeRegistrationEnabled, 0, nil,
			"enable_registration is on: turn it off in homeserver.yaml before Synapse restarts with delegated authentication (registration then happens in Gatehouse, account.registration)")
	}
	if hs.UserConsent != nil {
		r.add(SeverityWarning, CodeUserConsent, 0, nil,
			"user_consent is configured: Synapse refuses it with delegated authentication; publish the terms and set branding.terms_uri in Gatehouse")
	}
	if hs.EnableRegistrationCaptcha {
		r.add(SeverityWarning, CodeCaptcha, 0, nil,
			"enable_registration_captcha (reCAPTCHA) is on: Gatehouse's registration has no CAPTCHA of its own yet; turn it off in homeserver.yaml")
	}
	for _, p := range hs.OIDCProviders {
		if !slices.Contains(in.Providers, p.AuthProvider()) {
			r.add(SeverityWarning, CodeSSOProviderMapping, 0, []string{p.AuthProvider()},
				"OIDC provider %q (%s) must become an upstream provider of Gatehouse with synapse_idp_id %q, so that its users' links resolve (config generate writes a draft)",
				p.IdpID, p.IdpName, p.AuthProvider())
		}
	}
	var unsupported []string
	for _, s := range []struct {
		on   bool
		name string
	}{{hs.CASEnabled, "cas_config"}, {hs.SAML2Enabled, "saml2_config"}, {hs.JWTEnabled, "jwt_config"}} {
		if s.on {
			unsupported = append(unsupported, s.name)
		}
	}
	if len(unsupported) > 0 {
		r.add(SeverityWarning, CodeSSOUnsupported, int64(len(unsupported)), unsupported,
			"CAS, SAML and JWT login have no equivalent in Gatehouse (bridge them with an OIDC provider such as Dex); Synapse refuses them with delegated authentication")
	}
	if len(hs.PasswordProviders) > 0 {
		r.add(SeverityWarning, CodePasswordProviders, int64(len(hs.PasswordProviders)), hs.PasswordProviders,
			"modules or password providers are configured: any that checks passwords (LDAP, …) stops working with delegated authentication")
	}
	if len(hs.SessionLifetimes) > 0 {
		r.add(SeverityWarning, CodeSessionLifetimes, int64(len(hs.SessionLifetimes)), hs.SessionLifetimes,
			"token and session lifetimes are set in homeserver.yaml: Synapse refuses them with delegated authentication; remove them (Gatehouse has oauth.access_token_ttl)")
	}
	if !hs.Password.Enabled || !hs.Password.LocalDBEnabled {
		r.add(SeverityInfo, CodePasswordLoginOff, 0, nil,
			"password login is off in Synapse: password hashes are imported all the same, and work if people may sign in with passwords in Gatehouse")
	}
	if hs.DelegatedAuth {
		r.add(SeverityInfo, CodeDelegatedAlready, 0, nil,
			"Synapse is already configured for delegated authentication (matrix_authentication_service or msc3861)")
	}
}

// checkSource reports the schema and the lock probe.
func (r *Report) checkSource(src *Source) {
	info := src.Info
	r.add(SeverityInfo, CodeSchemaVersion, 0, nil, "Synapse schema version %d; users.locked %s, profiles.full_user_id %s",
		info.SchemaVersion, present(info.Locked), present(info.FullUserID))
	if info.SchemaVersion > TestedSchemaVersion {
		r.add(SeverityWarning, CodeSchemaNewer, 0, nil,
			"schema version %d is newer than %d, the newest this reader was written against: check the report closely",
			info.SchemaVersion, TestedSchemaVersion)
	}
	switch info.Probe {
	case ProbeBusy:
		sev := SeverityWarning
		if src.opts.Mode == ModeMigrate {
			sev = SeverityError
		}
		r.add(sev, CodeSynapseRunning, 0, nil,
			"Synapse is writing to its tables (the lock a migration takes was refused): stop Synapse before migrating; if it is stopped, an autovacuum of its tables holds them, so try again in a minute or run VACUUM first")
	case ProbeDenied:
		r.add(SeverityWarning, CodeLockNotPermitted, 0, nil,
			"this database role may not take the EXCLUSIVE locks a migration holds to keep Synapse out (it needs UPDATE on the tables): the check ran, the migration needs Synapse's own role")
	}
	if n := len(info.OtherSessions); n > 0 {
		r.add(SeverityWarning, CodeSynapseSessions, int64(n), firstN(slices.Compact(slices.Clone(info.OtherSessions)), MaxExamples),
			"%d other session(s) are connected to the Synapse database: Synapse may still be running; stop it before migrating", n)
	}
}

// present says whether an optional column exists.
func present(ok bool) string {
	if ok {
		return "present"
	}
	return "absent"
}

// firstN returns at most n elements of s.
func firstN[T any](s []T, n int) []T {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// checkStreams reads every stream and reports on what they emit and skip.
func (r *Report) checkStreams(ctx context.Context, src *Source, in CheckInput) error {
	var (
		invalid, noCredential, badHash, deactivated, locked Tally
		exists, caseClash                                   Tally
		batch                                               []string
	)
	flush := func() error {
		if in.UsernamesExist == nil || len(batch) == 0 {
			return nil
		}
		lower := make([]string, 0, len(batch))
		for _, name := range batch {
			if l := strings.ToLower(name); l != name {
				lower = append(lower, l)
			}
		}
		found, err := in.UsernamesExist(ctx, append(slices.Clone(batch), lower...))
		if err != nil {
			return fmt.Errorf("synapse: check existing Gatehouse users: %w", err)
		}
		for _, name := range found {
			if slices.Contains(batch, name) {
				exists.add(MXID(name, src.opts.ServerName))
			} else {
				caseClash.add(name)
			}
		}
		batch = batch[:0]
		return nil
	}
	users, err := src.Users(ctx, func(u User) error {
		if p := LocalpartProblem(u.Localpart, src.opts.ServerName); p != "" {
			invalid.add(u.MXID + " (" + p + ")")
		}
		switch {
		case u.Deactivated:
			deactivated.add(u.MXID)
		case u.PasswordHash == "" && !u.HasExternalID:
			noCredential.add(u.MXID)
		}
		if u.PasswordHash != "" && !isBcryptHash(u.PasswordHash) {
			badHash.add(u.MXID)
		}
		if u.Locked {
			locked.add(u.MXID)
		}
		batch = append(batch, u.Localpart)
		if len(batch) >= CheckBatch/2 { // with their lower-cased forms, at most CheckBatch
			return flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := flush(); err != nil {
		return err
	}
	r.Streams = append(r.Streams, users)

	var links = map[string]*Tally{}
	streams := []func() (Stats, error){
		func() (Stats, error) { return src.Emails(ctx, func(Email) error { return nil }) },
		func() (Stats, error) { return src.Devices(ctx, func(Device) error { return nil }) },
		func() (Stats, error) { return src.AccessTokens(ctx, func(AccessToken) error { return nil }) },
		func() (Stats, error) { return src.RefreshPairs(ctx, func(RefreshPair) error { return nil }) },
		func() (Stats, error) {
			return src.ExternalIDs(ctx, func(x ExternalID) error {
				t := links[x.AuthProvider]
				if t == nil {
					t = &Tally{}
					links[x.AuthProvider] = t
				}
				t.add(x.MXID)
				return nil
			})
		},
		func() (Stats, error) {
			return src.RegistrationTokens(ctx, func(RegistrationToken) error { return nil })
		},
	}
	for _, read := range streams {
		st, err := read()
		if err != nil {
			return err
		}
		r.Streams = append(r.Streams, st)
	}
	byName := map[string]Stats{}
	for _, st := range r.Streams {
		byName[st.Stream] = st
	}

	// Users.
	notOnServer := mergeTallies(users.Skipped[SkipWrongServer], users.Skipped[SkipMalformedMXID], users.Skipped[SkipColonLocalpart])
	r.addTally(SeverityError, CodeMXIDNotOnServer, notOnServer,
		"users whose MXID is not @localpart:%s cannot be imported: is the server name right?", src.opts.ServerName)
	if in.UsernamesExist == nil {
		r.add(SeverityInfo, CodeUsersNotChecked, 0, nil, "whether Gatehouse already has any of these usernames was not checked")
	}
	r.addTally(SeverityError, CodeUserExists, &exists,
		"Gatehouse already has users of these names: the import would clash; start from an empty Gatehouse or remove them")
	r.addTally(SeverityWarning, CodeUserCaseClash, &caseClash,
		"Gatehouse has users whose names differ from a Synapse user's only in case (Synapse matches names regardless of case at login)")
	r.addTally(SeverityWarning, CodeGuests, users.Skipped[SkipGuest],
		"guest users are not imported (Gatehouse has no guest accounts); their rows are skipped")
	if t := users.Skipped[SkipAppservice]; t != nil {
		colon := int64(0)
		if n := users.Notes["appservice user with ':' in its localpart"]; n != nil {
			colon = n.Count
		}
		r.addTally(SeverityWarning, CodeAppservice, t,
			"application service users are not imported (their appservice keeps authenticating them with its as_token); %d of them have ':' in their localpart", colon)
	}
	r.addTally(SeverityWarning, CodeLocalpartInvalid, &invalid,
		"users whose localpart would not be accepted today (a-z 0-9 . _ = / + -, not all digits): imported as they are, case kept")
	r.addTally(SeverityWarning, CodeNoCredential, &noCredential,
		"users with neither a password nor an SSO link: imported, but nobody can sign in as them until an administrator sets a password")
	r.addTally(SeverityWarning, CodeHashUnrecognised, &badHash,
		"password hashes that are not bcrypt ($2a$, $2b$, $2y$): these users cannot sign in with their password after the import")
	r.addTally(SeverityInfo, CodeDeactivated, &deactivated,
		"deactivated users are imported deactivated (their SSO links kept), so their names stay taken")
	r.addTally(SeverityInfo, CodeLocked, &locked, "locked users are imported locked; their sessions are kept")

	// Emails, devices, tokens.
	r.addTally(SeverityWarning, CodeNonEmail, byName["emails"].Skipped[SkipNotEmail],
		"third-party identifiers other than email (phone numbers) are not imported: Gatehouse has only email addresses")
	r.addTally(SeverityInfo, CodeHiddenDevices, byName["devices"].Skipped[SkipHiddenDevice],
		"hidden devices are cross-signing keys, not devices: skipped (the keys stay in Synapse)")
	r.addTally(SeverityWarning, CodePuppetTokens, byName["access_tokens"].Skipped[SkipPuppet],
		"tokens an admin made to act as a user (puppets_user_id) are not imported")
	r.addTally(SeverityInfo, CodeObsoleteRefresh, byName["refresh_tokens"].Skipped[SkipObsoleteRefresh],
		"refresh pairs whose successor was already used are dead in Synapse too: skipped")
	r.addTally(SeverityInfo, CodeExpiredTokens, mergeTallies(byName["access_tokens"].Skipped[SkipExpired],
		byName["refresh_tokens"].Skipped[SkipExpired]), "expired tokens are not imported")
	r.addTally(SeverityInfo, CodeUnparsableIPs, byName["devices"].Notes["unparsable IP address dropped"],
		"devices whose last IP address does not parse: imported without it")
	formats := map[string]int64{}
	for _, st := range []Stats{byName["access_tokens"], byName["refresh_tokens"]} {
		for f, n := range st.Formats {
			formats[f] += n
		}
	}
	if len(formats) > 0 {
		var parts []string
		var total int64
		for _, f := range slices.Sorted(maps.Keys(formats)) {
			parts = append(parts, fmt.Sprintf("%s %d", f, formats[f]))
			total += formats[f]
		}
		r.add(SeverityInfo, CodeTokenFormats, total, nil,
			"tokens to import, by format: %s; every one is imported as the opaque string the client holds, stored only hashed",
			strings.Join(parts, ", "))
	}
	var orphans Tally
	for _, st := range r.Streams {
		for _, reason := range []SkipReason{SkipNoUser, SkipNoDevice, SkipNoAccessToken} {
			if t := st.Skipped[reason]; t != nil {
				orphans.Count += t.Count
				for _, ex := range t.Examples {
					if len(orphans.Examples) < MaxExamples {
						orphans.Examples = append(orphans.Examples, st.Stream+": "+ex)
					}
				}
			}
		}
	}
	r.addTally(SeverityWarning, CodeOrphans, &orphans,
		"rows naming a user or device that does not exist (Synapse has few foreign keys): skipped")
	if reg := byName["registration_tokens"]; reg.Emitted > 0 {
		r.add(SeverityInfo, CodeRegistrationTokens, reg.Emitted, nil,
			"registration tokens that can still be used will be imported (expired and used-up ones are skipped)")
	}

	// SSO links.
	r.addTally(SeverityError, CodeOAuthDelegated, byName["external_ids"].Skipped[SkipOAuthDelegated],
		"user_external_ids holds links with auth_provider 'oauth-delegated', left by Synapse's removed MSC3861 mode: delete them (DELETE FROM user_external_ids WHERE auth_provider = 'oauth-delegated') and check again")
	for _, provider := range slices.Sorted(maps.Keys(links)) {
		t := links[provider]
		if !slices.Contains(in.Providers, provider) {
			sev, what := SeverityError, "configure an upstream provider with synapse_idp_id %q, or pass --ignore-missing-auth-providers to import the links anyway (they resolve once the provider exists)"
			if in.IgnoreMissingProviders {
				sev, what = SeverityWarning, "the links are imported and resolve once an upstream provider with synapse_idp_id %q is configured"
			}
			r.addTally(sev, CodeProviderNotConfigured, t, "SSO links to %q, which Gatehouse has no upstream provider for: "+what, provider, provider)
		}
		if in.Homeserver != nil && !slices.Contains(in.Homeserver.AuthProviders(), provider) {
			r.addTally(SeverityWarning, CodeProviderUnknownToSynapse, t,
				"SSO links to %q, which homeserver.yaml no longer configures: nobody has signed in with it lately", provider)
		}
	}
	return nil
}

// checkDuplicates reports case-only duplicates of user names and email
// addresses (Gatehouse keys email addresses case-insensitively).
func (r *Report) checkDuplicates(ctx context.Context, src *Source) error {
	for _, d := range []struct {
		code  Code
		query string
		what  string
	}{
		{CodeCaseDuplicates, `
			SELECT u.name FROM users u
			JOIN (SELECT lower(name) AS l FROM users WHERE appservice_id IS NULL AND is_guest = 0
				GROUP BY lower(name) HAVING count(*) > 1) d ON d.l = lower(u.name)
			WHERE u.appservice_id IS NULL AND u.is_guest = 0`,
			"users whose names differ only in case (Synapse allowed it long ago): both are imported with their case; each signs in with their exact name"},
		{CodeEmailCaseDuplicates, `
			SELECT t.user_id FROM user_threepids t
			JOIN (SELECT lower(address) AS l FROM user_threepids WHERE medium = 'email'
				GROUP BY lower(address) HAVING count(*) > 1) d ON d.l = lower(t.address)
			WHERE t.medium = 'email'`,
			"email addresses held by several users in different case: Gatehouse gives an address to one user only, so only the first imported keeps it"},
	} {
		rows, err := src.tx.Query(ctx, d.query)
		if err != nil {
			return fmt.Errorf("synapse: check %s: %w", d.code, err)
		}
		var t Tally
		var name string
		for rows.Next() {
			if err := rows.Scan(&name); err != nil {
				rows.Close()
				return fmt.Errorf("synapse: check %s: %w", d.code, err)
			}
			t.add(name)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("synapse: check %s: %w", d.code, err)
		}
		r.addTally(SeverityWarning, d.code, &t, "%s", d.what)
	}
	var orphanProfiles Tally
	profile := "'@' || p.user_id || ':' || $1"
	if src.Info.FullUserID {
		profile = "coalesce(p.full_user_id, " + profile + ")"
	}
	rows, err := src.tx.Query(ctx, `
		SELECT p.user_id FROM profiles p
		WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.name = `+profile+`)`, src.opts.ServerName)
	if err != nil {
		return fmt.Errorf("synapse: check orphan profiles: %w", err)
	}
	var localpart string
	for rows.Next() {
		if err := rows.Scan(&localpart); err != nil {
			rows.Close()
			return fmt.Errorf("synapse: check orphan profiles: %w", err)
		}
		orphanProfiles.add("profiles: " + localpart)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("synapse: check orphan profiles: %w", err)
	}
	if f := r.Find(CodeOrphans); f != nil && orphanProfiles.Count > 0 {
		f.Count += orphanProfiles.Count
		f.Examples = firstN(append(f.Examples, orphanProfiles.Examples...), MaxExamples)
	} else {
		r.addTally(SeverityWarning, CodeOrphans, &orphanProfiles,
			"rows naming a user or device that does not exist (Synapse has few foreign keys): skipped")
	}
	return nil
}

// isBcryptHash reports whether h looks like a bcrypt hash Gatehouse verifies.
func isBcryptHash(h string) bool {
	return len(h) == 60 && (strings.HasPrefix(h, "$2a$") || strings.HasPrefix(h, "$2b$") || strings.HasPrefix(h, "$2y$"))
}

// mergeTallies adds tallies up (nil ones count as empty).
func mergeTallies(ts ...*Tally) *Tally {
	out := &Tally{}
	for _, t := range ts {
		if t == nil {
			continue
		}
		out.Count += t.Count
		for _, ex := range t.Examples {
			if len(out.Examples) < MaxExamples {
				out.Examples = append(out.Examples, ex)
			}
		}
	}
	return out
}

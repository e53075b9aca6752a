package synapse

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/ids"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
)

// The import: what Check approved, written into a running Gatehouse through
// its admin gRPC API, in batches. Every id is derived from Synapse's keys
// (ids.Derive: a user's from its MXID and creation time, a session's from
// its MXID and device), and the services derive their events' ids from
// those: run again — after an interruption at any point, or after success —
// the import writes nothing twice; records written before come back
// "already imported". Users already imported are found first
// (FindUsernames) and not sent again, so a resumed run goes quickly over
// what is done.
//
// What becomes what:
//   - each user (Users) with its email addresses (Emails) and SSO links
//     (ExternalIDs): ImportUsers, its bcrypt hash as Synapse kept it;
//   - each device (Devices) with its live tokens (AccessTokens, RefreshPairs)
//     one compat session, and each deviceless token a session of its own:
//     ImportSessions, tokens only as SHA-256 hashes (computed here, as the
//     rows stream; the tokens themselves never leave this process);
//   - each usable registration token: ImportRegistrationTokens, by hash,
//     with the uses it has left.
//
// Emails, links and tokens are gathered in memory before the users and
// devices stream (one read-only transaction reads one query at a time):
// about 100 bytes per row.

// Importer is the Gatehouse API an import writes to (the admin's clients).
type Importer struct {
	Accounts accountsv1.AccountsServiceClient
	Token    tokenv1.TokenServiceClient
}

// ImportOptions configure Import.
type ImportOptions struct {
	// Batch is how many records one call carries (DefaultImportBatch when 0).
	Batch int
	// Workers is how many calls run at once (DefaultImportWorkers when 0).
	Workers int
	// DryRun sends every batch as a dry run: the services check and write
	// nothing.
	DryRun bool
	// Progress, when set, is told how the import advances, at most every
	// ProgressEvery and at the end of each phase.
	Progress func(Progress)
	// ProgressEvery is how often Progress is called (1 s when 0).
	ProgressEvery time.Duration
}

// Defaults of ImportOptions.
const (
	DefaultImportBatch   = 1000
	DefaultImportWorkers = 4
)

// Progress is how far one phase of an import is.
type Progress struct {
	// Phase is users, sessions or registration_tokens.
	Phase string `json:"phase"`
	// Done records were handled of an estimated Total (0: unknown).
	Done  int64 `json:"done"`
	Total int64 `json:"total"`
	// Rate is records per second so far; ETA the time left at that rate.
	Rate float64       `json:"rate"`
	ETA  time.Duration `json:"eta_ns"`
	// Final is set on the phase's last report.
	Final bool `json:"final"`
}

// Outcomes counts what an import did with the records of one kind.
type Outcomes struct {
	Imported        int64 `json:"imported"`
	AlreadyImported int64 `json:"already_imported"`
	WouldImport     int64 `json:"would_import"`
	Clashes         int64 `json:"clashes"`
	Invalid         int64 `json:"invalid"`
	// Notes are what was left out of records written (an address another
	// user holds, …), by note, with examples (MXIDs).
	Notes map[string]*Tally `json:"notes,omitempty"`
	// Problems are the clashes and invalid records, by message, with examples.
	Problems map[string]*Tally `json:"problems,omitempty"`
}

// Written is how many records the import wrote now or before.
func (o Outcomes) Written() int64 { return o.Imported + o.AlreadyImported }

// ImportSummary is what an import did.
type ImportSummary struct {
	Users              Outcomes      `json:"users"`
	Sessions           Outcomes      `json:"sessions"`
	RegistrationTokens Outcomes      `json:"registration_tokens"`
	Tokens             int64         `json:"tokens"`
	Streams            []Stats       `json:"streams"`
	Elapsed            time.Duration `json:"elapsed_ns"`
	DryRun             bool          `json:"dry_run"`
}

// Changed reports whether the import wrote anything.
func (s *ImportSummary) Changed() bool {
	return s.Users.Imported+s.Sessions.Imported+s.RegistrationTokens.Imported > 0
}

// UserID is the Gatehouse user id an import gives a Synapse user.
func UserID(mxid string, created time.Time) string {
	return ids.Derive(created, "synapse user", mxid)
}

// sessionID is the id of the session of a device, or of a deviceless token.
func sessionID(user *importedUser, deviceID string, tokenID int64) string {
	if deviceID == "" {
		return ids.Derive(user.created, "synapse deviceless token", user.mxid, strconv.FormatInt(tokenID, 10))
	}
	return ids.Derive(user.created, "synapse device", user.mxid, deviceID)
}

// hashToken is the SHA-256 (hex) of a token: the only form that leaves.
func hashToken(t Token) string {
	sum := sha256.Sum256([]byte(t.Reveal()))
	return hex.EncodeToString(sum[:])
}

// importedUser is what the sessions need of a user the import wrote.
type importedUser struct {
	mxid, id, localpart string
	created             time.Time
	admin               bool
}

// deviceKey names a device.
type deviceKey struct{ mxid, device string }

// run is one import under way.
type run struct {
	src  *Source
	imp  Importer
	opts ImportOptions
	sum  *ImportSummary
	mu   sync.Mutex
	// users are the users written (now or before), by MXID.
	users map[string]*importedUser
}

// Import reads src and writes what it holds into Gatehouse through imp. It
// stops at the first call that fails (the services unavailable, ctx
// ended): run it again to go on. Records the services refuse (clashes,
// invalid) are counted in the summary, not errors.
func Import(ctx context.Context, src *Source, imp Importer, opts ImportOptions) (*ImportSummary, error) {
	if opts.Batch <= 0 {
		opts.Batch = DefaultImportBatch
	}
	if opts.Workers <= 0 {
		opts.Workers = DefaultImportWorkers
	}
	if opts.ProgressEvery <= 0 {
		opts.ProgressEvery = time.Second
	}
	start := time.Now()
	r := &run{src: src, imp: imp, opts: opts, sum: &ImportSummary{DryRun: opts.DryRun}, users: map[string]*importedUser{}}
	for _, step := range []func(context.Context) error{r.importUsers, r.importSessions, r.importRegistrationTokens} {
		if err := step(ctx); err != nil {
			return r.sum, err
		}
	}
	r.sum.Elapsed = time.Since(start)
	return r.sum, nil
}

// meter reports a phase's progress.
type meter struct {
	phase       string
	total       int64
	done        int64
	start, last time.Time
	report      func(Progress)
	every       time.Duration
}

func (r *run) meter(phase string, total int64) *meter {
	now := time.Now()
	return &meter{phase: phase, total: max(total, 0), start: now, last: now, report: r.opts.Progress, every: r.opts.ProgressEvery}
}

// add counts n records done and reports when it is time.
func (m *meter) add(n int64, final bool) {
	m.done += n
	if m.report == nil || (!final && time.Since(m.last) < m.every) {
		return
	}
	m.last = time.Now()
	p := Progress{Phase: m.phase, Done: m.done, Total: max(m.total, m.done), Final: final}
	if el := time.Since(m.start).Seconds(); el > 0 {
		p.Rate = float64(m.done) / el
	}
	if p.Rate > 0 && p.Total > p.Done {
		p.ETA = time.Duration(float64(p.Total-p.Done) / p.Rate * float64(time.Second)).Round(time.Second)
	}
	m.report(p)
}

// pool runs calls, at most workers at once; the first error stops it.
type pool struct {
	sem  chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	err  error
	stop context.CancelFunc
}

func newPool(ctx context.Context, workers int) (*pool, context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	return &pool{sem: make(chan struct{}, workers), stop: cancel}, ctx
}

// do runs fn when a worker is free; it returns the first error so far.
func (p *pool) do(fn func() error) error {
	p.sem <- struct{}{}
	if err := p.failed(); err != nil {
		<-p.sem
		return err
	}
	p.wg.Add(1)
	go func() {
		defer func() { <-p.sem; p.wg.Done() }()
		if err := fn(); err != nil {
			p.mu.Lock()
			if p.err == nil {
				p.err = err
				p.stop()
			}
			p.mu.Unlock()
		}
	}()
	return nil
}

func (p *pool) failed() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// wait waits for every call and returns the first error.
func (p *pool) wait() error {
	p.wg.Wait()
	p.stop()
	return p.failed()
}

// tally counts one outcome of a record of kind into o.
func (o *Outcomes) count(outcome string, message, example string, notes []string) {
	switch outcome {
	case "imported":
		o.Imported++
	case "already":
		o.AlreadyImported++
	case "would":
		o.WouldImport++
	case "clash", "invalid":
		if outcome == "clash" {
			o.Clashes++
		} else {
			o.Invalid++
		}
		if o.Problems == nil {
			o.Problems = map[string]*Tally{}
		}
		t := o.Problems[message]
		if t == nil {
			t = &Tally{}
			o.Problems[message] = t
		}
		t.add(example)
	}
	for _, n := range notes {
		if o.Notes == nil {
			o.Notes = map[string]*Tally{}
		}
		t := o.Notes[n]
		if t == nil {
			t = &Tally{}
			o.Notes[n] = t
		}
		t.add(example)
	}
}

// userOutcome names an import outcome.
func userOutcome(o accountsv1.ImportOutcome) string {
	switch o {
	case accountsv1.ImportOutcome_IMPORT_OUTCOME_IMPORTED:
		return "imported"
	case accountsv1.ImportOutcome_IMPORT_OUTCOME_ALREADY_IMPORTED:
		return "already"
	case accountsv1.ImportOutcome_IMPORT_OUTCOME_WOULD_IMPORT:
		return "would"
	case accountsv1.ImportOutcome_IMPORT_OUTCOME_CLASH:
		return "clash"
	}
	return "invalid"
}

// importUsers imports the users with their addresses and links.
func (r *run) importUsers(ctx context.Context) error {
	emails := map[string][]*accountsv1.ImportedUserEmail{}
	st, err := r.src.Emails(ctx, func(e Email) error {
		at := e.AddedAt
		if at.IsZero() {
			at = e.ValidatedAt
		}
		var ts *timestamppb.Timestamp
		if !at.IsZero() {
			ts = timestamppb.New(at)
		}
		emails[e.MXID] = append(emails[e.MXID], &accountsv1.ImportedUserEmail{Email: e.Address, AddedAt: ts})
		return nil
	})
	if err != nil {
		return err
	}
	r.sum.Streams = append(r.sum.Streams, st)
	links := map[string][]*accountsv1.ImportedUserLink{}
	st, err = r.src.ExternalIDs(ctx, func(x ExternalID) error {
		links[x.MXID] = append(links[x.MXID], &accountsv1.ImportedUserLink{SynapseAuthProvider: x.AuthProvider, Subject: x.Subject})
		return nil
	})
	if err != nil {
		return err
	}
	r.sum.Streams = append(r.sum.Streams, st)

	m := r.meter("users", r.src.Info.Estimates["users"])
	p, pctx := newPool(ctx, r.opts.Workers)
	var batch []*accountsv1.ImportedUser
	var meta []*importedUser
	flush := func() error {
		users, info := batch, meta
		batch, meta = nil, nil
		if len(users) == 0 {
			return nil
		}
		return p.do(func() error { return r.sendUsers(pctx, users, info, m) })
	}
	st, err = r.src.Users(pctx, func(u User) error {
		created := u.CreatedAt
		if created.IsZero() {
			created = time.UnixMilli(0).UTC()
		}
		in := &accountsv1.ImportedUser{
			UserId: UserID(u.MXID, created), Username: u.Localpart, ExternalId: u.MXID, CreatedAt: timestamppb.New(created),
			Admin: u.Admin, Locked: u.Locked, Deactivated: u.Deactivated, DisplayName: u.DisplayName,
			PasswordHash: u.PasswordHash, Emails: emails[u.MXID], Links: links[u.MXID],
		}
		if in.DisplayName == u.Localpart {
			in.DisplayName = "" // Synapse's default: none chosen
		}
		batch = append(batch, in)
		meta = append(meta, &importedUser{mxid: u.MXID, id: in.UserId, localpart: u.Localpart, created: created, admin: u.Admin})
		if len(batch) >= r.opts.Batch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if werr := p.wait(); err == nil {
		err = werr
	}
	r.sum.Streams = append(r.sum.Streams, st)
	m.add(0, true)
	return err
}

// sendUsers imports one batch of users: those imported before (found by
// name, with the id this import gives them) are not sent again.
func (r *run) sendUsers(ctx context.Context, users []*accountsv1.ImportedUser, info []*importedUser, m *meter) error {
	names := make([]string, len(users))
	for i, u := range users {
		names[i] = u.GetUsername()
	}
	found, err := r.imp.Accounts.FindUsernames(ctx, &accountsv1.FindUsernamesRequest{Usernames: names})
	if err != nil {
		return fmt.Errorf("find users imported before: %w", err)
	}
	done := map[string]bool{}
	for _, f := range found.GetFound() {
		if f.GetUsername() == f.GetAsked() {
			done[f.GetUserId()] = true
		}
	}
	var send []*accountsv1.ImportedUser
	var sendInfo []*importedUser
	r.mu.Lock()
	for i, u := range users {
		if done[u.GetUserId()] {
			r.sum.Users.count("already", "", u.GetExternalId(), nil)
			r.users[info[i].mxid] = info[i]
			continue
		}
		send, sendInfo = append(send, u), append(sendInfo, info[i])
	}
	r.mu.Unlock()
	if len(send) > 0 {
		resp, err := r.imp.Accounts.ImportUsers(ctx, &accountsv1.ImportUsersRequest{Source: "synapse", Users: send, DryRun: r.opts.DryRun})
		if err != nil {
			return fmt.Errorf("import users: %w", err)
		}
		if len(resp.GetResults()) != len(send) {
			return fmt.Errorf("import users: %d results for %d users", len(resp.GetResults()), len(send))
		}
		r.mu.Lock()
		for i, res := range resp.GetResults() {
			o := userOutcome(res.GetOutcome())
			r.sum.Users.count(o, res.GetMessage(), send[i].GetExternalId(), res.GetNotes())
			if o == "imported" || o == "already" || o == "would" {
				r.users[sendInfo[i].mxid] = sendInfo[i]
			}
		}
		r.mu.Unlock()
	}
	r.mu.Lock()
	m.add(int64(len(users)), false)
	r.mu.Unlock()
	return nil
}

// importSessions imports every device with its live tokens, and each
// deviceless token, of the users written.
func (r *run) importSessions(ctx context.Context) error {
	tokens := map[deviceKey][]*tokenv1.ImportedToken{}
	var deviceless []AccessToken
	st, err := r.src.AccessTokens(ctx, func(t AccessToken) error {
		if r.users[t.MXID] == nil {
			return nil
		}
		it := &tokenv1.ImportedToken{AccessHash: hashToken(t.Token)}
		if !t.ValidUntil.IsZero() {
			it.AccessExpiresAt = timestamppb.New(t.ValidUntil)
		}
		if t.DeviceID == "" {
			t.Token = Token(it.AccessHash) // keep the hash, not the token
			deviceless = append(deviceless, t)
			return nil
		}
		k := deviceKey{t.MXID, t.DeviceID}
		tokens[k] = append(tokens[k], it)
		return nil
	})
	if err != nil {
		return err
	}
	r.sum.Streams = append(r.sum.Streams, st)
	st, err = r.src.RefreshPairs(ctx, func(p RefreshPair) error {
		if r.users[p.MXID] == nil {
			return nil
		}
		it := &tokenv1.ImportedToken{AccessHash: hashToken(p.AccessToken), RefreshHash: hashToken(p.RefreshToken)}
		if !p.AccessValidUntil.IsZero() {
			it.AccessExpiresAt = timestamppb.New(p.AccessValidUntil)
		}
		k := deviceKey{p.MXID, p.DeviceID}
		tokens[k] = append(tokens[k], it)
		return nil
	})
	if err != nil {
		return err
	}
	r.sum.Streams = append(r.sum.Streams, st)

	m := r.meter("sessions", r.src.Info.Estimates["devices"])
	p, pctx := newPool(ctx, r.opts.Workers)
	var batch []*tokenv1.ImportedSession
	flush := func() error {
		sessions := batch
		batch = nil
		if len(sessions) == 0 {
			return nil
		}
		return p.do(func() error { return r.sendSessions(pctx, sessions, m) })
	}
	add := func(s *tokenv1.ImportedSession) error {
		r.sum.Tokens += int64(len(s.GetTokens()))
		batch = append(batch, s)
		if len(batch) >= r.opts.Batch {
			return flush()
		}
		return nil
	}
	st, err = r.src.Devices(pctx, func(d Device) error {
		u := r.users[d.MXID]
		if u == nil {
			return nil // a user the import did not write
		}
		s := &tokenv1.ImportedSession{
			SessionId: sessionID(u, d.DeviceID, 0), UserId: u.id, Username: u.localpart, Admin: u.admin,
			DeviceId: d.DeviceID, DeviceDisplayName: d.DisplayName, CreatedAt: timestamppb.New(u.created),
			IpAddress: d.IP, UserAgent: d.UserAgent, Tokens: tokens[deviceKey{d.MXID, d.DeviceID}],
		}
		if !d.LastSeen.IsZero() {
			s.LastActiveAt = timestamppb.New(d.LastSeen)
		}
		return add(s)
	})
	for i := 0; err == nil && i < len(deviceless); i++ {
		t := deviceless[i]
		u := r.users[t.MXID]
		err = add(&tokenv1.ImportedSession{
			SessionId: sessionID(u, "", t.ID), UserId: u.id, Username: u.localpart, Admin: u.admin, CreatedAt: timestamppb.New(u.created),
			Tokens: []*tokenv1.ImportedToken{{AccessHash: t.Token.Reveal(), AccessExpiresAt: tsOrNil(t.ValidUntil)}},
		})
	}
	if err == nil {
		err = flush()
	}
	if werr := p.wait(); err == nil {
		err = werr
	}
	r.sum.Streams = append(r.sum.Streams, st)
	m.add(0, true)
	return err
}

// tsOrNil is t as a timestamp, nil for the zero time.
func tsOrNil(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// sendSessions imports one batch of sessions.
func (r *run) sendSessions(ctx context.Context, sessions []*tokenv1.ImportedSession, m *meter) error {
	resp, err := r.imp.Token.ImportSessions(ctx, &tokenv1.ImportSessionsRequest{Source: "synapse", Sessions: sessions, DryRun: r.opts.DryRun})
	if err != nil {
		return fmt.Errorf("import sessions: %w", err)
	}
	if len(resp.GetResults()) != len(sessions) {
		return fmt.Errorf("import sessions: %d results for %d sessions", len(resp.GetResults()), len(sessions))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, res := range resp.GetResults() {
		var o string
		switch res.GetOutcome() {
		case tokenv1.ImportSessionOutcome_IMPORT_SESSION_OUTCOME_IMPORTED:
			o = "imported"
		case tokenv1.ImportSessionOutcome_IMPORT_SESSION_OUTCOME_ALREADY_IMPORTED:
			o = "already"
		case tokenv1.ImportSessionOutcome_IMPORT_SESSION_OUTCOME_WOULD_IMPORT:
			o = "would"
		case tokenv1.ImportSessionOutcome_IMPORT_SESSION_OUTCOME_CLASH:
			o = "clash"
		default:
			o = "invalid"
		}
		r.sum.Sessions.count(o, res.GetMessage(), sessions[i].GetUsername()+" "+sessions[i].GetDeviceId(), nil)
	}
	m.add(int64(len(sessions)), false)
	return nil
}

// importRegistrationTokens imports the usable registration tokens with the
// uses they have left.
func (r *run) importRegistrationTokens(ctx context.Context) error {
	var batch []*accountsv1.ImportedRegistrationToken
	st, err := r.src.RegistrationTokens(ctx, func(t RegistrationToken) error {
		hash := hashToken(t.Token)
		it := &accountsv1.ImportedRegistrationToken{TokenId: ids.Derive(time.UnixMilli(0), "synapse registration token", hash), TokenHash: hash,
			ExpiresAt: tsOrNil(t.ExpiresAt)}
		if t.UsesAllowed > 0 {
			it.UsesAllowed = int32(max(t.UsesAllowed-t.Completed, 1))
		}
		batch = append(batch, it)
		return nil
	})
	if err != nil {
		return err
	}
	r.sum.Streams = append(r.sum.Streams, st)
	m := r.meter("registration_tokens", int64(len(batch)))
	for len(batch) > 0 {
		chunk := batch[:min(len(batch), r.opts.Batch)]
		batch = batch[len(chunk):]
		resp, err := r.imp.Accounts.ImportRegistrationTokens(ctx, &accountsv1.ImportRegistrationTokensRequest{Source: "synapse", Tokens: chunk, DryRun: r.opts.DryRun})
		if err != nil {
			return fmt.Errorf("import registration tokens: %w", err)
		}
		for i, res := range resp.GetResults() {
			r.sum.RegistrationTokens.count(userOutcome(res.GetOutcome()), res.GetMessage(), chunk[i].GetTokenId(), nil)
		}
		m.add(int64(len(chunk)), false)
	}
	m.add(0, true)
	return nil
}

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
// Emails, links, tokens and devices are gathered in memory before the users
// stream (one read-only transaction reads one query at a time): about 100
// to 200 bytes per row. Then the users stream, in batches on Workers
// workers, and as each batch is written the sessions of its users are sent
// on as many workers of their own: the users and sessions phases run at
// once.

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
	// reportMu makes one progress report at a time.
	reportMu sync.Mutex
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
	r := &run{src: src, imp: imp, opts: opts, sum: &ImportSummary{DryRun: opts.DryRun}}
	for _, step := range []func(context.Context) error{r.importUsersAndSessions, r.importRegistrationTokens} {
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
	report := r.opts.Progress
	if report != nil {
		report = func(p Progress) { // phases run at once: one report at a time
			r.reportMu.Lock()
			defer r.reportMu.Unlock()
			r.opts.Progress(p)
		}
	}
	return &meter{phase: phase, total: max(total, 0), start: now, last: now, report: report, every: r.opts.ProgressEvery}
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

// importUsersAndSessions imports the users with their addresses and links
// and, as each batch of users is written, their sessions: two phases
// (users, sessions) under way at once, each on its own workers.
func (r *run) importUsersAndSessions(ctx context.Context) error {
	sessions, err := r.gatherSessions(ctx)
	if err != nil {
		return err
	}
	sp, sctx := newPool(ctx, r.opts.Workers)
	sender := &sessionSender{r: r, pool: sp, ctx: sctx, meter: r.meter("sessions", r.src.Info.Estimates["devices"])}
	err = r.importUsers(sctx, sessions, sender)
	return sender.finish(err)
}

// importUsers imports the users with their addresses and links, handing
// the sessions of those written to sender.
func (r *run) importUsers(ctx context.Context, sessions *sessionsOf, sender *sessionSender) error {
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
		return p.do(func() error { return r.sendUsers(pctx, users, info, m, sessions, sender) })
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
func (r *run) sendUsers(ctx context.Context, users []*accountsv1.ImportedUser, info []*importedUser, m *meter,
	sessions *sessionsOf, sender *sessionSender) error {
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
	var sendInfo, written []*importedUser
	r.mu.Lock()
	for i, u := range users {
		if done[u.GetUserId()] {
			r.sum.Users.count("already", "", u.GetExternalId(), nil)
			written = append(written, info[i])
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
				written = append(written, sendInfo[i])
			}
		}
		r.mu.Unlock()
	}
	var next []*tokenv1.ImportedSession
	r.mu.Lock()
	m.add(int64(len(users)), false)
	for _, u := range written {
		next = append(next, sessions.take(u)...)
	}
	r.mu.Unlock()
	return sender.add(next)
}

// sessionsOf holds, from before the users stream, what becomes sessions:
// the devices and deviceless tokens of every user, with the devices'
// tokens. As each batch of users is written, their sessions are sent
// (sessionSender), so users and sessions are imported at once.
type sessionsOf struct {
	tokens     map[deviceKey][]*tokenv1.ImportedToken
	devices    map[string][]Device
	deviceless map[string][]AccessToken
}

// gatherSessions reads every live access and refresh token and every device
// into memory (about 200 bytes a device, 100 a token).
func (r *run) gatherSessions(ctx context.Context) (*sessionsOf, error) {
	g := &sessionsOf{tokens: map[deviceKey][]*tokenv1.ImportedToken{}, devices: map[string][]Device{}, deviceless: map[string][]AccessToken{}}
	st, err := r.src.AccessTokens(ctx, func(t AccessToken) error {
		it := &tokenv1.ImportedToken{AccessHash: hashToken(t.Token)}
		if !t.ValidUntil.IsZero() {
			it.AccessExpiresAt = timestamppb.New(t.ValidUntil)
		}
		if t.DeviceID == "" {
			t.Token = Token(it.AccessHash) // keep the hash, not the token
			g.deviceless[t.MXID] = append(g.deviceless[t.MXID], t)
			return nil
		}
		k := deviceKey{t.MXID, t.DeviceID}
		g.tokens[k] = append(g.tokens[k], it)
		return nil
	})
	if err != nil {
		return nil, err
	}
	r.sum.Streams = append(r.sum.Streams, st)
	st, err = r.src.RefreshPairs(ctx, func(p RefreshPair) error {
		it := &tokenv1.ImportedToken{AccessHash: hashToken(p.AccessToken), RefreshHash: hashToken(p.RefreshToken)}
		if !p.AccessValidUntil.IsZero() {
			it.AccessExpiresAt = timestamppb.New(p.AccessValidUntil)
		}
		k := deviceKey{p.MXID, p.DeviceID}
		g.tokens[k] = append(g.tokens[k], it)
		return nil
	})
	if err != nil {
		return nil, err
	}
	r.sum.Streams = append(r.sum.Streams, st)
	st, err = r.src.Devices(ctx, func(d Device) error {
		g.devices[d.MXID] = append(g.devices[d.MXID], d)
		return nil
	})
	if err != nil {
		return nil, err
	}
	r.sum.Streams = append(r.sum.Streams, st)
	return g, nil
}

// take returns the sessions of a user the import wrote (each device with
// its tokens, then each deviceless token) and forgets them.
func (g *sessionsOf) take(u *importedUser) []*tokenv1.ImportedSession {
	var out []*tokenv1.ImportedSession
	for _, d := range g.devices[u.mxid] {
		s := &tokenv1.ImportedSession{
			SessionId: sessionID(u, d.DeviceID, 0), UserId: u.id, Username: u.localpart, Admin: u.admin,
			DeviceId: d.DeviceID, DeviceDisplayName: d.DisplayName, CreatedAt: timestamppb.New(u.created),
			IpAddress: d.IP, UserAgent: d.UserAgent, Tokens: g.tokens[deviceKey{d.MXID, d.DeviceID}],
		}
		if !d.LastSeen.IsZero() {
			s.LastActiveAt = timestamppb.New(d.LastSeen)
		}
		delete(g.tokens, deviceKey{d.MXID, d.DeviceID})
		out = append(out, s)
	}
	for _, t := range g.deviceless[u.mxid] {
		out = append(out, &tokenv1.ImportedSession{
			SessionId: sessionID(u, "", t.ID), UserId: u.id, Username: u.localpart, Admin: u.admin, CreatedAt: timestamppb.New(u.created),
			Tokens: []*tokenv1.ImportedToken{{AccessHash: t.Token.Reveal(), AccessExpiresAt: tsOrNil(t.ValidUntil)}},
		})
	}
	delete(g.devices, u.mxid)
	delete(g.deviceless, u.mxid)
	return out
}

// sessionSender batches the sessions of the users written and sends them
// on its own workers, while the users go on.
type sessionSender struct {
	r     *run
	pool  *pool
	ctx   context.Context
	meter *meter
	mu    sync.Mutex
	batch []*tokenv1.ImportedSession
}

// add queues sessions, sending a batch whenever one is full (waiting for a
// free worker: the users wait for the sessions when these fall behind).
func (s *sessionSender) add(sessions []*tokenv1.ImportedSession) error {
	s.mu.Lock()
	var full [][]*tokenv1.ImportedSession
	for _, x := range sessions {
		s.r.sum.Tokens += int64(len(x.GetTokens()))
		s.batch = append(s.batch, x)
		if len(s.batch) >= s.r.opts.Batch {
			full = append(full, s.batch)
			s.batch = nil
		}
	}
	s.mu.Unlock()
	for _, b := range full {
		if err := s.send(b); err != nil {
			return err
		}
	}
	return nil
}

// send sends one batch on a worker.
func (s *sessionSender) send(batch []*tokenv1.ImportedSession) error {
	return s.pool.do(func() error { return s.r.sendSessions(s.ctx, batch, s.meter) })
}

// finish sends what is left and waits for every batch.
func (s *sessionSender) finish(err error) error {
	s.mu.Lock()
	rest := s.batch
	s.batch = nil
	s.mu.Unlock()
	if err == nil && len(rest) > 0 {
		err = s.send(rest)
	}
	// A batch of sessions that failed stopped the users too: its error is
	// the cause, theirs the cancellation.
	if werr := s.pool.wait(); werr != nil {
		err = werr
	}
	s.meter.add(0, true)
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

package accounts

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/oklog/ulid/v2"
	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/ids"
	"gatehouse.dev/platform/personal"
	"gatehouse.dev/platform/projection"
	"gatehouse.dev/platform/sealed"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/accounts/internal/upstream"
	"gatehouse.dev/services/accounts/internal/user"
)

// Imports: accounts moved from another homeserver (gatehouse migrate
// synapse). The importer chooses every id (derived from the source's keys),
// and the events' ids derive from them, so a run again, or after an
// interruption at any point, finds what it wrote and writes nothing twice:
//
//  1. the usernames are claimed (UsernameReserved, expecting the claim new);
//     a name someone else holds is a clash and the user is not written;
//  2. the users' addresses and upstream identities are claimed the same way;
//     one someone else holds is left out (a note says so, without the data);
//  3. UserImported starts each user with everything else, its personal data
//     sealed under the user's personal key (created for all at once).
//
// Each step is one pipelined write of the whole call's events
// (eventlog.AppendEach). A write that finds its aggregate taken looks at the
// aggregate's first event: its own means it was written by an earlier run.

// importSources are the homeservers accounts can be imported from.
var importSources = map[string]string{"synapse": "Synapse"}

// maxImportBatch bounds how many records one import call carries.
const maxImportBatch = 2000

// importSourceName is how a source reads in the audit log.
func importSourceName(source string) string {
	if n, ok := importSources[source]; ok {
		return n
	}
	return source
}

// importEventID is the id of the event of kind an import writes for the
// record whose id (a ULID) is id: the same in every run.
func importEventID(id, kind string, parts ...string) string {
	t := time.UnixMilli(0)
	if u, err := ulid.ParseStrict(id); err == nil {
		t = time.UnixMilli(int64(u.Time()))
	}
	return ids.Derive(t, append([]string{"import", id, kind}, parts...)...)
}

// validHistoricalLocalpart reports whether s can be a Synapse localpart of
// any age: printable ASCII without ':' (Synapse's "historical" characters,
// upper case included), at most 255 bytes.
func validHistoricalLocalpart(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i := range len(s) {
		if c := s[i]; c < 0x21 || c > 0x7e || c == ':' {
			return false
		}
	}
	return true
}

// importing is one user of an import call on its way.
type importing struct {
	in      *accountsv1.ImportedUser
	result  *accountsv1.ImportResult
	emails  []string // normalised, in order; claimed ones kept after step 2
	added   []time.Time
	links   []*eventsv1.UserImported_Link
	subject []string // the links' subjects, in clear until sealed
	ok      bool
}

// importUsers imports users (see above); results are in request order.
func (s *Service) importUsers(ctx context.Context, req *accountsv1.ImportUsersRequest, actor string) ([]*accountsv1.ImportResult, error) {
	if _, ok := importSources[req.GetSource()]; !ok {
		return nil, errs.InvalidField("source", "source must be synapse")
	}
	if len(req.GetUsers()) > maxImportBatch {
		return nil, errs.InvalidField("users", fmt.Sprintf("at most %d users per call", maxImportBatch))
	}
	work := make([]*importing, len(req.GetUsers()))
	for i, in := range req.GetUsers() {
		work[i] = s.validateImport(in)
	}
	if req.GetDryRun() {
		return s.dryRunUsers(ctx, work)
	}
	// 1. Usernames.
	var writes []eventlog.Write
	var owners []*importing
	for _, w := range work {
		if !w.ok {
			continue
		}
		writes = append(writes, eventlog.Write{Expect: eventlog.ExpectNew(), Event: eventlog.Event{
			ID: importEventID(w.in.GetUserId(), "username"), Actor: actor,
			Aggregate: eventlog.Ref{Type: usernameAggregate, ID: user.UsernameKey(w.in.GetUsername())},
			Payload:   &eventsv1.UsernameReserved{Username: w.in.GetUsername(), UserId: w.in.GetUserId()},
		}})
		owners = append(owners, w)
	}
	taken, err := s.appendImports(ctx, writes)
	if err != nil {
		return nil, err
	}
	var people []personal.Owner
	for i, w := range owners {
		if taken[i] {
			w.ok = false
			w.result.Outcome = accountsv1.ImportOutcome_IMPORT_OUTCOME_CLASH
			w.result.Message = "the username belongs to another user"
			continue
		}
		people = append(people, personal.User(w.in.GetUserId()))
	}
	keys, err := s.personal.CreateAll(ctx, people)
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "Personal keys cannot be created right now; try again.", err)
	}
	// 2. Addresses and upstream identities.
	writes, owners = writes[:0], owners[:0]
	type claim struct {
		w     *importing
		email bool
		i     int
	}
	var claims []claim
	for _, w := range work {
		if !w.ok {
			continue
		}
		id := w.in.GetUserId()
		for i, e := range w.emails {
			key := user.EmailKey(s.claimKey, e)
			ref := eventlog.Ref{Type: emailAggregate, ID: key}
			ev, err := s.personal.Seal(ctx, &eventsv1.EmailReserved{Email: e, UserId: id}, s.log.Subject(ref), personal.NoOwner)
			if err != nil {
				return nil, sealError(err)
			}
			writes = append(writes, eventlog.Write{Expect: eventlog.ExpectNew(), Event: eventlog.Event{
				ID: importEventID(id, "email", key), Actor: actor, Aggregate: ref, Payload: ev}})
			claims = append(claims, claim{w: w, email: true, i: i})
		}
		for i, l := range w.links {
			writes = append(writes, eventlog.Write{Expect: eventlog.ExpectNew(), Event: eventlog.Event{
				ID: importEventID(id, "link", l.GetClaimKey()), Actor: actor,
				Aggregate: eventlog.Ref{Type: upstreamAggregate, ID: l.GetClaimKey()},
				Payload:   &eventsv1.UpstreamLinkReserved{Provider: l.GetProvider(), UserId: id, LinkId: l.GetLinkId()},
			}})
			claims = append(claims, claim{w: w, i: i})
		}
	}
	taken, err = s.appendImports(ctx, writes)
	if err != nil {
		return nil, err
	}
	dropEmail := map[*importing]map[int]bool{}
	dropLink := map[*importing]map[int]bool{}
	for i, c := range claims {
		if !taken[i] {
			continue
		}
		if c.email {
			if dropEmail[c.w] == nil {
				dropEmail[c.w] = map[int]bool{}
			}
			dropEmail[c.w][c.i] = true
			c.w.result.Notes = append(c.w.result.Notes, "an email address belongs to another user: left out")
		} else {
			if dropLink[c.w] == nil {
				dropLink[c.w] = map[int]bool{}
			}
			dropLink[c.w][c.i] = true
			c.w.result.Notes = append(c.w.result.Notes, "an upstream identity is linked to another user: left out")
		}
	}
	// 3. The users.
	writes = writes[:0]
	for _, w := range work {
		if !w.ok {
			continue
		}
		ev, err := s.importedEvent(ctx, w, keys[personal.User(w.in.GetUserId())], req.GetSource(), dropEmail[w], dropLink[w])
		if err != nil {
			return nil, err
		}
		writes = append(writes, eventlog.Write{Expect: eventlog.ExpectNew(), Event: eventlog.Event{
			ID: importEventID(w.in.GetUserId(), "user"), Actor: actor,
			Aggregate: eventlog.Ref{Type: userAggregate, ID: w.in.GetUserId()}, Payload: ev,
		}})
		owners = append(owners, w)
	}
	published, err := s.log.AppendEach(ctx, writes)
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "The import could not be saved right now; try again.", err)
	}
	var last uint64
	for i, p := range published {
		w := owners[i]
		switch {
		case p.Err == nil && !p.Duplicate:
			w.result.Outcome = accountsv1.ImportOutcome_IMPORT_OUTCOME_IMPORTED
		case p.Err == nil:
			w.result.Outcome = accountsv1.ImportOutcome_IMPORT_OUTCOME_ALREADY_IMPORTED
		case eventlog.IsConflict(p.Err):
			first, err := s.log.FirstID(ctx, writes[i].Event.Aggregate)
			if err != nil {
				return nil, errs.Wrap(errs.KindUnavailable, "The import could not be checked right now; try again.", err)
			}
			if first == writes[i].Event.ID {
				w.result.Outcome = accountsv1.ImportOutcome_IMPORT_OUTCOME_ALREADY_IMPORTED
			} else {
				w.result.Outcome, w.result.Message = accountsv1.ImportOutcome_IMPORT_OUTCOME_CLASH, "the user id belongs to another user"
			}
		default:
			return nil, errs.Wrap(errs.KindUnavailable, "The import could not be saved right now; try again.", p.Err)
		}
		last = max(last, p.Seq)
	}
	if last > 0 {
		if err := s.projections.WaitFor(ctx, usersProjection, last); err != nil {
			return nil, errs.Wrap(errs.KindUnavailable, "The import was saved but is not visible yet.", err)
		}
	}
	out := make([]*accountsv1.ImportResult, len(work))
	for i, w := range work {
		out[i] = w.result
	}
	return out, nil
}

// appendImports appends claims, each expecting its aggregate new, and says
// which were taken by someone else (their aggregate starts with another
// event than this one).
func (s *Service) appendImports(ctx context.Context, writes []eventlog.Write) ([]bool, error) {
	taken := make([]bool, len(writes))
	if len(writes) == 0 {
		return taken, nil
	}
	published, err := s.log.AppendEach(ctx, writes)
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "The import could not be saved right now; try again.", err)
	}
	for i, p := range published {
		switch {
		case p.Err == nil:
		case eventlog.IsConflict(p.Err):
			first, err := s.log.FirstID(ctx, writes[i].Event.Aggregate)
			if err != nil {
				return nil, errs.Wrap(errs.KindUnavailable, "The import could not be checked right now; try again.", err)
			}
			taken[i] = first != writes[i].Event.ID
		default:
			return nil, errs.Wrap(errs.KindUnavailable, "The import could not be saved right now; try again.", p.Err)
		}
	}
	return taken, nil
}

// validateImport checks one user of an import and prepares its addresses
// and links; an invalid user gets its result here.
func (s *Service) validateImport(in *accountsv1.ImportedUser) *importing {
	w := &importing{in: in, result: &accountsv1.ImportResult{Id: in.GetUserId()}}
	invalid := func(msg string) *importing {
		w.result.Outcome, w.result.Message = accountsv1.ImportOutcome_IMPORT_OUTCOME_INVALID, msg
		return w
	}
	switch {
	case !ids.Valid(in.GetUserId()):
		return invalid("user_id is not a ULID")
	case !validHistoricalLocalpart(in.GetUsername()):
		return invalid("username is not a Matrix localpart")
	case in.GetExternalId() == "" || len(in.GetExternalId()) > 512:
		return invalid("external_id must be 1 to 512 bytes")
	case in.GetPasswordHash() != "" && !validBcryptHash(in.GetPasswordHash()):
		return invalid("password_hash is not a bcrypt hash ($2a$, $2b$ or $2y$)")
	case !utf8.ValidString(in.GetDisplayName()) || len(in.GetDisplayName()) > 1024:
		return invalid("display_name is not valid")
	case len(in.GetEmails()) > 100 || len(in.GetLinks()) > 100:
		return invalid("too many emails or links")
	}
	seen := map[string]bool{}
	for _, e := range in.GetEmails() {
		addr, err := user.NormalizeEmail(e.GetEmail())
		if err != nil {
			w.result.Notes = append(w.result.Notes, "an email address is not valid: left out")
			continue
		}
		if seen[addr] {
			continue
		}
		seen[addr] = true
		at := in.GetCreatedAt().AsTime()
		if e.GetAddedAt() != nil {
			at = e.GetAddedAt().AsTime()
		}
		w.emails, w.added = append(w.emails, addr), append(w.added, at)
	}
	for _, l := range in.GetLinks() {
		p, subject := l.GetSynapseAuthProvider(), l.GetSubject()
		if p == "" || len(p) > 128 || subject == "" || len(subject) > 255 || !utf8.ValidString(subject) {
			w.result.Notes = append(w.result.Notes, "an upstream link is not valid: left out")
			continue
		}
		ns := upstream.SynapseNamespace(p)
		key := upstream.ClaimKey(s.claimKey, ns, subject)
		if seen[key] {
			continue
		}
		seen[key] = true
		w.links = append(w.links, &eventsv1.UserImported_Link{
			LinkId: importEventID(in.GetUserId(), "link id", key), Provider: ns, ClaimKey: key,
		})
		w.subject = append(w.subject, subject)
	}
	w.ok = true
	return w
}

// validBcryptHash reports whether h looks like a bcrypt hash Synapse wrote.
func validBcryptHash(h string) bool {
	return len(h) == 60 && (strings.HasPrefix(h, "$2a$") || strings.HasPrefix(h, "$2b$") || strings.HasPrefix(h, "$2y$"))
}

// importedEvent builds the UserImported of a user whose claims are
// written, its personal data sealed under key.
func (s *Service) importedEvent(ctx context.Context, w *importing, key *sealed.Key, source string, dropEmail, dropLink map[int]bool) (*eventsv1.UserImported, error) {
	in := w.in
	id := in.GetUserId()
	ev := &eventsv1.UserImported{
		UserId: id, Username: in.GetUsername(), Source: source, ExternalId: in.GetExternalId(),
		CreatedAt: in.GetCreatedAt(), Admin: in.GetAdmin(), Locked: in.GetLocked(), Deactivated: in.GetDeactivated(),
		DisplayName: in.GetDisplayName(),
	}
	if ev.CreatedAt == nil {
		ev.CreatedAt = timestamppb.New(s.clock())
	}
	for i, e := range w.emails {
		if !dropEmail[i] {
			ev.Emails = append(ev.Emails, &eventsv1.UserImported_Email{Email: e, AddedAt: timestamppb.New(w.added[i])})
		}
	}
	owner := personal.User(id)
	for i, l := range w.links {
		if dropLink[i] {
			continue
		}
		sv, err := personal.SealValueWith(key, owner, []byte(w.subject[i]), eventsv1.AccountsUser.Subject(id)+"/subject")
		if err != nil {
			return nil, sealError(err)
		}
		l.SealedSubject = sv
		ev.Links = append(ev.Links, l)
	}
	if h := in.GetPasswordHash(); h != "" {
		sv, err := personal.SealValueWith(key, owner, []byte(h), userPasswordPlace(id))
		if err != nil {
			return nil, sealError(err)
		}
		ev.SealedPasswordHash, ev.PasswordScheme = sv, "bcrypt"
	}
	out, err := s.personal.Seal(ctx, ev, s.log.Subject(eventlog.Ref{Type: userAggregate, ID: id}), owner)
	if err != nil {
		return nil, sealError(err)
	}
	return out.(*eventsv1.UserImported), nil
}

// dryRunUsers says what an import would do, from the read model.
func (s *Service) dryRunUsers(ctx context.Context, work []*importing) ([]*accountsv1.ImportResult, error) {
	var names []string
	for _, w := range work {
		if w.ok {
			names = append(names, w.in.GetUsername())
		}
	}
	holders := map[string]string{}
	if len(names) > 0 {
		rows, err := s.pool.Query(ctx, `SELECT username, id FROM users WHERE username = ANY($1)`, names)
		if err != nil {
			return nil, errs.Wrap(errs.KindUnavailable, "Users cannot be read right now.", err)
		}
		for rows.Next() {
			var name, id string
			if err := rows.Scan(&name, &id); err != nil {
				rows.Close()
				return nil, err
			}
			holders[name] = id
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	out := make([]*accountsv1.ImportResult, len(work))
	for i, w := range work {
		out[i] = w.result
		if !w.ok {
			continue
		}
		switch holder := holders[w.in.GetUsername()]; holder {
		case "":
			w.result.Outcome = accountsv1.ImportOutcome_IMPORT_OUTCOME_WOULD_IMPORT
		case w.in.GetUserId():
			w.result.Outcome = accountsv1.ImportOutcome_IMPORT_OUTCOME_ALREADY_IMPORTED
		default:
			w.result.Outcome, w.result.Message = accountsv1.ImportOutcome_IMPORT_OUTCOME_CLASH, "the username belongs to another user"
		}
	}
	return out, nil
}

// applyUserImported inserts an imported user with its addresses and links.
func applyUserImported(ctx context.Context, tx pgx.Tx, ev *eventsv1.UserImported, id string, at time.Time, seq int64) error {
	hash, blob, keyID, personal, err := sealedColumns("", ev.GetSealedPasswordHash())
	if err != nil {
		return fmt.Errorf("users: UserImported: %w", err)
	}
	primary := ""
	if len(ev.GetEmails()) > 0 {
		primary = ev.GetEmails()[0].GetEmail()
	}
	created := ev.GetCreatedAt().AsTime()
	if _, err := tx.Exec(ctx, `INSERT INTO users (id, username, email, display_name, password_hash, password_sealed, password_key_id, password_personal,
			admin, locked, deactivated, created_at, updated_at, version, imported_from, locked_at, deactivated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
			CASE WHEN $10 THEN $13::timestamptz END, CASE WHEN $11 THEN $13::timestamptz END) ON CONFLICT (id) DO NOTHING`,
		id, ev.GetUsername(), primary, ev.GetDisplayName(), hash, blob, keyID, personal,
		ev.GetAdmin(), ev.GetLocked(), ev.GetDeactivated(), created, at, seq, ev.GetSource()); err != nil {
		return fmt.Errorf("users: UserImported: %w", err)
	}
	for i, e := range ev.GetEmails() {
		if e.GetEmail() == "" {
			continue // erased: the address no longer opens
		}
		if _, err := tx.Exec(ctx, `INSERT INTO user_emails (email, user_id, is_primary, added_at, verification_id, email_id) VALUES ($1, $2, $3, $4, '', $5)
			ON CONFLICT (email) DO UPDATE SET user_id = EXCLUDED.user_id, is_primary = EXCLUDED.is_primary, added_at = EXCLUDED.added_at,
			verification_id = EXCLUDED.verification_id, email_id = EXCLUDED.email_id`,
			e.GetEmail(), id, i == 0, e.GetAddedAt().AsTime(), emailID(e.GetAddedAt().AsTime(), id, e.GetEmail())); err != nil {
			return fmt.Errorf("users: UserImported: emails: %w", err)
		}
	}
	for _, l := range ev.GetLinks() {
		subject, err := marshalSealed(l.GetSealedSubject())
		if err != nil {
			return fmt.Errorf("users: UserImported: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO upstream_links (link_id, user_id, provider, subject_sealed, email_sealed, claim_key, source, linked_at)
			VALUES ($1, $2, $3, $4, NULL, $5, $6, $7) ON CONFLICT (link_id) DO NOTHING`,
			l.GetLinkId(), id, l.GetProvider(), subject, l.GetClaimKey(), user.LinkImport, at); err != nil {
			return fmt.Errorf("users: UserImported: links: %w", err)
		}
	}
	return nil
}

// importRegistrationTokens imports registration tokens by their hashes.
func (s *Service) importRegistrationTokens(ctx context.Context, req *accountsv1.ImportRegistrationTokensRequest, actor string) ([]*accountsv1.ImportResult, error) {
	if _, ok := importSources[req.GetSource()]; !ok {
		return nil, errs.InvalidField("source", "source must be synapse")
	}
	if len(req.GetTokens()) > maxImportBatch {
		return nil, errs.InvalidField("tokens", fmt.Sprintf("at most %d tokens per call", maxImportBatch))
	}
	out := make([]*accountsv1.ImportResult, len(req.GetTokens()))
	var (
		writes []eventlog.Write
		at     []int
	)
	for i, t := range req.GetTokens() {
		out[i] = &accountsv1.ImportResult{Id: t.GetTokenId()}
		if _, err := hex.DecodeString(t.GetTokenHash()); !ids.Valid(t.GetTokenId()) || err != nil || len(t.GetTokenHash()) != 64 || t.GetUsesAllowed() < 0 {
			out[i].Outcome, out[i].Message = accountsv1.ImportOutcome_IMPORT_OUTCOME_INVALID, "token_id must be a ULID, token_hash a SHA-256 in hex, uses_allowed at least 0"
			continue
		}
		if req.GetDryRun() {
			out[i].Outcome = accountsv1.ImportOutcome_IMPORT_OUTCOME_WOULD_IMPORT
			continue
		}
		writes = append(writes, eventlog.Write{Expect: eventlog.ExpectNew(), Event: eventlog.Event{
			ID: importEventID(t.GetTokenId(), "regtoken"), Actor: actor,
			Aggregate: eventlog.Ref{Type: regTokenAggregate, ID: t.GetTokenId()},
			Payload: &eventsv1.RegistrationTokenCreated{TokenId: t.GetTokenId(), TokenHash: strings.ToLower(t.GetTokenHash()),
				UsesAllowed: t.GetUsesAllowed(), ExpiresAt: t.GetExpiresAt(), ImportedFrom: req.GetSource()},
		}})
		at = append(at, i)
	}
	if len(writes) == 0 {
		return out, nil
	}
	published, err := s.log.AppendEach(ctx, writes)
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "The import could not be saved right now; try again.", err)
	}
	var last uint64
	for j, p := range published {
		r := out[at[j]]
		switch {
		case p.Err == nil && !p.Duplicate:
			r.Outcome = accountsv1.ImportOutcome_IMPORT_OUTCOME_IMPORTED
		case p.Err == nil:
			r.Outcome = accountsv1.ImportOutcome_IMPORT_OUTCOME_ALREADY_IMPORTED
		case eventlog.IsConflict(p.Err):
			first, err := s.log.FirstID(ctx, writes[j].Event.Aggregate)
			if err != nil {
				return nil, errs.Wrap(errs.KindUnavailable, "The import could not be checked right now; try again.", err)
			}
			if first == writes[j].Event.ID {
				r.Outcome = accountsv1.ImportOutcome_IMPORT_OUTCOME_ALREADY_IMPORTED
			} else {
				r.Outcome, r.Message = accountsv1.ImportOutcome_IMPORT_OUTCOME_CLASH, "the token id belongs to another token"
			}
		default:
			return nil, errs.Wrap(errs.KindUnavailable, "The import could not be saved right now; try again.", p.Err)
		}
		last = max(last, p.Seq)
	}
	if last > 0 {
		if err := s.projections.WaitFor(ctx, regTokensProjection, last); err != nil {
			return nil, errs.Wrap(errs.KindUnavailable, "The import was saved but is not visible yet.", err)
		}
	}
	return out, nil
}

// maxFindUsernames bounds one FindUsernames call.
const maxFindUsernames = 1000

// findUsernames returns the users whose names equal the names asked about,
// or differ from them only in case.
func (s *Service) findUsernames(ctx context.Context, names []string) ([]*accountsv1.FoundUsername, error) {
	if len(names) > maxFindUsernames {
		return nil, errs.InvalidField("usernames", fmt.Sprintf("at most %d usernames per call", maxFindUsernames))
	}
	asked := map[string][]string{}
	lower := make([]string, 0, len(names))
	for _, n := range names {
		l := strings.ToLower(n)
		if _, ok := asked[l]; !ok {
			lower = append(lower, l)
		}
		asked[l] = append(asked[l], n)
	}
	rows, err := s.pool.Query(ctx, `SELECT username, id, imported_from FROM users WHERE lower(username) = ANY($1) ORDER BY username`, lower)
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "Users cannot be read right now.", err)
	}
	defer rows.Close()
	var out []*accountsv1.FoundUsername
	for rows.Next() {
		var name, id, from string
		if err := rows.Scan(&name, &id, &from); err != nil {
			return nil, err
		}
		for _, a := range asked[strings.ToLower(name)] {
			out = append(out, &accountsv1.FoundUsername{Asked: a, Username: name, UserId: id, ImportedFrom: from})
		}
	}
	return out, rows.Err()
}

func (g *grpcServer) ImportUsers(ctx context.Context, req *accountsv1.ImportUsersRequest) (*accountsv1.ImportUsersResponse, error) {
	results, err := g.svc.importUsers(ctx, req, actor(ctx))
	if err != nil {
		return nil, err
	}
	return &accountsv1.ImportUsersResponse{Results: results}, nil
}

func (g *grpcServer) ImportRegistrationTokens(ctx context.Context, req *accountsv1.ImportRegistrationTokensRequest) (*accountsv1.ImportRegistrationTokensResponse, error) {
	results, err := g.svc.importRegistrationTokens(ctx, req, actor(ctx))
	if err != nil {
		return nil, err
	}
	return &accountsv1.ImportRegistrationTokensResponse{Results: results}, nil
}

func (g *grpcServer) FindUsernames(ctx context.Context, req *accountsv1.FindUsernamesRequest) (*accountsv1.FindUsernamesResponse, error) {
	found, err := g.svc.findUsernames(ctx, req.GetUsernames())
	if err != nil {
		return nil, err
	}
	return &accountsv1.FindUsernamesResponse{Found: found}, nil
}

// importBatch is how many events the users and audit read models apply in
// one transaction: imports come in thousands.
const importBatch = 1000

// applyUsersBatch is the users read model's ApplyBatch: runs of
// UserImported in a few statements, every other event with Apply.
func (s *Service) applyUsersBatch(ctx context.Context, tx pgx.Tx, recs []eventlog.Record) error {
	if err := s.personal.PrefetchRecords(ctx, recs); err != nil {
		return err
	}
	apply := s.unsealing(applyUserEvent)
	return projection.RunsOf(recs, isImport,
		func(run []eventlog.Record) error {
			opened := make([]eventlog.Record, len(run))
			for i, rec := range run {
				if err := s.personal.UnsealRecord(ctx, &rec); err != nil {
					return err
				}
				opened[i] = rec
			}
			return applyUsersImported(ctx, tx, opened)
		},
		func(rec eventlog.Record) error { return apply(ctx, tx, rec) })
}

// isImport reports whether a record is a UserImported.
func isImport(rec eventlog.Record) bool {
	//eventcheck:partial — picks the events applied in bulk; Apply handles every other
	_, ok := rec.Event.(*eventsv1.UserImported)
	return ok
}

// applyUsersImported inserts imported users, their addresses and links, one
// statement each for the whole run. A user whose row exists was applied
// before (UserImported is a user's first event): nothing of it changes.
func applyUsersImported(ctx context.Context, tx pgx.Tx, run []eventlog.Record) error {
	n := len(run)
	var (
		ids, names, primaries, displays, hashes, keyIDs, sources = make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
		blobs                                                    = make([][]byte, 0, n)
		personals, admins, locks, deacts                         = make([]bool, 0, n), make([]bool, 0, n), make([]bool, 0, n), make([]bool, 0, n)
		created, updated                                         = make([]time.Time, 0, n), make([]time.Time, 0, n)
		seqs                                                     = make([]int64, 0, n)
	)
	for _, rec := range run {
		ev := rec.Event.(*eventsv1.UserImported) //eventcheck:partial — a run of UserImported only (isImport)
		hash, blob, keyID, personal, err := sealedColumns("", ev.GetSealedPasswordHash())
		if err != nil {
			return fmt.Errorf("users: UserImported: %w", err)
		}
		primary := ""
		if len(ev.GetEmails()) > 0 {
			primary = ev.GetEmails()[0].GetEmail()
		}
		ids, names, primaries, displays = append(ids, rec.Aggregate().ID), append(names, ev.GetUsername()), append(primaries, primary), append(displays, ev.GetDisplayName())
		hashes, blobs, keyIDs, personals = append(hashes, hash), append(blobs, blob), append(keyIDs, keyID), append(personals, personal)
		admins, locks, deacts = append(admins, ev.GetAdmin()), append(locks, ev.GetLocked()), append(deacts, ev.GetDeactivated())
		created, updated, seqs, sources = append(created, ev.GetCreatedAt().AsTime()), append(updated, rec.OccurredAt()), append(seqs, int64(rec.Seq)), append(sources, ev.GetSource())
	}
	rows, err := tx.Query(ctx, `INSERT INTO users (id, username, email, display_name, password_hash, password_sealed, password_key_id, password_personal,
			admin, locked, deactivated, created_at, updated_at, version, imported_from, locked_at, deactivated_at)
		SELECT i, n, e, d, h, b, k, p, a, l, x, c, u, v, s, CASE WHEN l THEN u END, CASE WHEN x THEN u END
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::text[], $8::boolean[],
			$9::boolean[], $10::boolean[], $11::boolean[], $12::timestamptz[], $13::timestamptz[], $14::bigint[], $15::text[])
			AS r(i, n, e, d, h, b, k, p, a, l, x, c, u, v, s)
		ON CONFLICT (id) DO NOTHING RETURNING id`,
		ids, names, primaries, displays, hashes, blobs, keyIDs, personals, admins, locks, deacts, created, updated, seqs, sources)
	if err != nil {
		return fmt.Errorf("users: UserImported: %w", err)
	}
	inserted := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		inserted[id] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("users: UserImported: %w", err)
	}
	var (
		emails, emailUsers, emailIDs                []string
		primary                                     []bool
		added, linkedAt                             []time.Time
		linkIDs, linkUsers, providers, claims, srcs []string
		subjects                                    [][]byte
	)
	for _, rec := range run {
		id := rec.Aggregate().ID
		if !inserted[id] {
			continue
		}
		ev := rec.Event.(*eventsv1.UserImported) //eventcheck:partial — a run of UserImported only (isImport)
		for i, e := range ev.GetEmails() {
			if e.GetEmail() == "" {
				continue // erased: the address no longer opens
			}
			emails, emailUsers, primary, added = append(emails, e.GetEmail()), append(emailUsers, id), append(primary, i == 0), append(added, e.GetAddedAt().AsTime())
			emailIDs = append(emailIDs, emailID(e.GetAddedAt().AsTime(), id, e.GetEmail()))
		}
		for _, l := range ev.GetLinks() {
			subject, err := marshalSealed(l.GetSealedSubject())
			if err != nil {
				return fmt.Errorf("users: UserImported: %w", err)
			}
			linkIDs, linkUsers, providers, claims = append(linkIDs, l.GetLinkId()), append(linkUsers, id), append(providers, l.GetProvider()), append(claims, l.GetClaimKey())
			subjects, srcs, linkedAt = append(subjects, subject), append(srcs, user.LinkImport), append(linkedAt, rec.OccurredAt())
		}
	}
	if len(emails) > 0 {
		// The claims make each address one user's: no two rows of one
		// statement share an address.
		if _, err := tx.Exec(ctx, `INSERT INTO user_emails (email, user_id, is_primary, added_at, verification_id, email_id)
			SELECT e, u, p, a, '', i FROM unnest($1::text[], $2::text[], $3::boolean[], $4::timestamptz[], $5::text[]) AS v(e, u, p, a, i)
			ON CONFLICT (email) DO UPDATE SET user_id = EXCLUDED.user_id, is_primary = EXCLUDED.is_primary, added_at = EXCLUDED.added_at,
			verification_id = EXCLUDED.verification_id, email_id = EXCLUDED.email_id`, emails, emailUsers, primary, added, emailIDs); err != nil {
			return fmt.Errorf("users: UserImported: emails: %w", err)
		}
	}
	if len(linkIDs) > 0 {
		if _, err := tx.Exec(ctx, `INSERT INTO upstream_links (link_id, user_id, provider, subject_sealed, email_sealed, claim_key, source, linked_at)
			SELECT l, u, p, s, NULL, c, src, at FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::text[], $6::text[], $7::timestamptz[])
				AS v(l, u, p, s, c, src, at)
			ON CONFLICT (link_id) DO NOTHING`, linkIDs, linkUsers, providers, subjects, claims, srcs, linkedAt); err != nil {
			return fmt.Errorf("users: UserImported: links: %w", err)
		}
	}
	return nil
}

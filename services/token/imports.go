package token

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/oklog/ulid/v2"
	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/caller"
	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/ids"
	"gatehouse.dev/platform/personal"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
	"gatehouse.dev/services/token/internal/compat"
	"gatehouse.dev/services/token/internal/tokenfmt"
)

// Sessions moved from a homeserver (gatehouse migrate synapse): each of
// Synapse's devices becomes a compat session holding the hashes of the
// device's live tokens (SessionImported), which keep working: the tokens
// carry no MAC of ours, so parseToken recognises Synapse's formats by their
// shape and the index finds them by hash. The importer chooses the session
// ids, and the event's id derives from them: a run again writes nothing
// twice. Nothing is provisioned: the homeserver has the devices.

// maxImportSessions bounds one ImportSessions call.
const maxImportSessions = 2000

// maxImportTokens bounds the tokens of one imported session.
const maxImportTokens = 1000

// parseToken returns the kind of a token Gatehouse minted (its MAC checked)
// or imported from Synapse (by its shape: see tokenfmt.Imported).
func (s *Service) parseToken(token string) (tokenfmt.Kind, error) {
	kind, err := s.minter.Parse(token)
	if err != nil {
		if k := tokenfmt.Imported(token); k != 0 {
			return k, nil
		}
	}
	return kind, err
}

// validHash reports whether h is a SHA-256 in lower-case hex.
func validHash(h string) bool {
	if len(h) != 64 || strings.ToLower(h) != h {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil
}

// importedScope is the scope of an imported session: a compat session's, or
// without a device for a deviceless token.
func importedScope(deviceID string, admin bool) string {
	if deviceID != "" {
		return compat.Scope(deviceID, admin)
	}
	var out []string
	for _, f := range strings.Fields(compat.Scope("x", admin)) {
		if !strings.HasSuffix(f, ":device:x") {
			out = append(out, f)
		}
	}
	return strings.Join(out, " ")
}

// importEvent builds the SessionImported of one session, or says why the
// session is invalid.
func (s *Service) importEvent(in *tokenv1.ImportedSession, source string) (*eventsv1.SessionImported, string) {
	switch {
	case !ids.Valid(in.GetSessionId()):
		return nil, "session_id is not a ULID"
	case !ids.Valid(in.GetUserId()):
		return nil, "user_id is not a ULID"
	case in.GetUsername() == "" || len(in.GetUsername()) > 255:
		return nil, "username must be 1 to 255 bytes"
	case len(in.GetDeviceId()) > 512 || strings.ContainsAny(in.GetDeviceId(), " \t\r\n"):
		return nil, "device_id is not valid"
	case len(in.GetDeviceDisplayName()) > 1024 || len(in.GetUserAgent()) > 4096 || len(in.GetIpAddress()) > 64:
		return nil, "a field is too long"
	case len(in.GetTokens()) > maxImportTokens:
		return nil, fmt.Sprintf("at most %d tokens per session", maxImportTokens)
	}
	ev := &eventsv1.SessionImported{
		Session: &eventsv1.SessionStarted{
			SessionId: in.GetSessionId(), Kind: compatKind, ClientId: compatClientID, UserId: in.GetUserId(), Username: in.GetUsername(),
			Scope: importedScope(in.GetDeviceId(), in.GetAdmin() && s.cfg.CompatAdminScope), DeviceId: in.GetDeviceId(),
			DeviceDisplayName: in.GetDeviceDisplayName(), IpAddress: in.GetIpAddress(), UserAgent: in.GetUserAgent(),
		},
		Source: source, CreatedAt: in.GetCreatedAt(), LastActiveAt: in.GetLastActiveAt(),
	}
	if ev.CreatedAt == nil {
		ev.CreatedAt = timestamppb.New(s.now())
	}
	for _, t := range in.GetTokens() {
		if !validHash(t.GetAccessHash()) || (t.GetRefreshHash() != "" && !validHash(t.GetRefreshHash())) {
			return nil, "token hashes must be SHA-256 in lower-case hex"
		}
		ev.Tokens = append(ev.Tokens, &eventsv1.TokensIssued{
			SessionId: in.GetSessionId(), AccessHash: t.GetAccessHash(), AccessExpiresAt: t.GetAccessExpiresAt(), RefreshHash: t.GetRefreshHash(),
		})
	}
	return ev, ""
}

// importSessions imports sessions; results are in request order.
func (s *Service) importSessions(ctx context.Context, req *tokenv1.ImportSessionsRequest, actor string) ([]*tokenv1.ImportSessionResult, error) {
	if req.GetSource() != "synapse" {
		return nil, errs.InvalidField("source", "source must be synapse")
	}
	if len(req.GetSessions()) > maxImportSessions {
		return nil, errs.InvalidField("sessions", fmt.Sprintf("at most %d sessions per call", maxImportSessions))
	}
	out := make([]*tokenv1.ImportSessionResult, len(req.GetSessions()))
	var (
		writes []eventlog.Write
		at     []int
		owners []personal.Owner
	)
	events := make([]*eventsv1.SessionImported, len(req.GetSessions()))
	for i, in := range req.GetSessions() {
		out[i] = &tokenv1.ImportSessionResult{SessionId: in.GetSessionId()}
		ev, invalid := s.importEvent(in, req.GetSource())
		if invalid != "" {
			out[i].Outcome, out[i].Message = tokenv1.ImportSessionOutcome_IMPORT_SESSION_OUTCOME_INVALID, invalid
			continue
		}
		events[i] = ev
		owners = append(owners, personal.User(in.GetUserId()))
	}
	if req.GetDryRun() {
		return s.dryRunSessions(ctx, events, out)
	}
	// The users' keys, read at once (the accounts import created them).
	if _, err := s.personal.GetAll(ctx, owners); err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, unavailableMsg, err)
	}
	for i, ev := range events {
		if ev == nil {
			continue
		}
		ref := sessionRef(ev.GetSession().GetSessionId())
		sealed, err := s.personal.SealDroppingErased(ctx, ev, s.log.Subject(ref), personal.NoOwner)
		if err != nil {
			return nil, errs.Classify(err, errs.KindUnavailable, unavailableMsg)
		}
		writes = append(writes, eventlog.Write{Expect: eventlog.ExpectNew(), Event: eventlog.Event{
			ID: importEventID(ev.GetSession().GetSessionId()), Aggregate: ref, Actor: actor, Payload: sealed,
		}})
		at = append(at, i)
	}
	if len(writes) == 0 {
		return out, nil
	}
	published, err := s.log.AppendEach(ctx, writes)
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, unavailableMsg, err)
	}
	var last uint64
	for j, p := range published {
		r := out[at[j]]
		switch {
		case p.Err == nil && !p.Duplicate:
			r.Outcome = tokenv1.ImportSessionOutcome_IMPORT_SESSION_OUTCOME_IMPORTED
		case p.Err == nil:
			r.Outcome = tokenv1.ImportSessionOutcome_IMPORT_SESSION_OUTCOME_ALREADY_IMPORTED
		case eventlog.IsConflict(p.Err):
			first, err := s.log.FirstID(ctx, writes[j].Event.Aggregate)
			if err != nil {
				return nil, errs.Wrap(errs.KindUnavailable, unavailableMsg, err)
			}
			if first == writes[j].Event.ID {
				r.Outcome = tokenv1.ImportSessionOutcome_IMPORT_SESSION_OUTCOME_ALREADY_IMPORTED
			} else {
				r.Outcome, r.Message = tokenv1.ImportSessionOutcome_IMPORT_SESSION_OUTCOME_CLASH, "the session id belongs to another session"
			}
		default:
			return nil, errs.Wrap(errs.KindUnavailable, unavailableMsg, p.Err)
		}
		last = max(last, p.Seq)
	}
	if last > 0 {
		if err := s.projections.WaitFor(ctx, sessionsProjection, last); err != nil {
			return nil, errs.Wrap(errs.KindUnavailable, unavailableMsg, err)
		}
	}
	return out, nil
}

// importEventID is the id of the SessionImported of a session: the same in
// every run.
func importEventID(sessionID string) string {
	t := time.UnixMilli(0)
	if u, err := ulid.ParseStrict(sessionID); err == nil {
		t = time.UnixMilli(int64(u.Time()))
	}
	return ids.Derive(t, "import", sessionID, "session")
}

// dryRunSessions says what an import would do, from the read model.
func (s *Service) dryRunSessions(ctx context.Context, events []*eventsv1.SessionImported, out []*tokenv1.ImportSessionResult) ([]*tokenv1.ImportSessionResult, error) {
	var sessionIDs []string
	for _, ev := range events {
		if ev != nil {
			sessionIDs = append(sessionIDs, ev.GetSession().GetSessionId())
		}
	}
	known := map[string]bool{}
	rows, err := s.pool.Query(ctx, `SELECT session_id FROM sessions WHERE session_id = ANY($1)`, sessionIDs)
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, unavailableMsg, err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		known[id] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i, ev := range events {
		switch {
		case ev == nil:
		case known[ev.GetSession().GetSessionId()]:
			out[i].Outcome = tokenv1.ImportSessionOutcome_IMPORT_SESSION_OUTCOME_ALREADY_IMPORTED
		default:
			out[i].Outcome = tokenv1.ImportSessionOutcome_IMPORT_SESSION_OUTCOME_WOULD_IMPORT
		}
	}
	return out, nil
}

// applySessionImported inserts an imported session and its tokens.
func applySessionImported(ctx context.Context, tx pgx.Tx, ev *eventsv1.SessionImported, seq int64) error {
	st := ev.GetSession()
	created := ev.GetCreatedAt().AsTime()
	var lastActive *time.Time
	if ev.GetLastActiveAt() != nil {
		t := ev.GetLastActiveAt().AsTime()
		lastActive = &t
	}
	tag, err := tx.Exec(ctx, `
		INSERT INTO sessions (session_id, kind, client_id, user_id, username, scope, device_id, created_at, device_display_name, ip_address, user_agent, version,
		                      browser_session_id, last_active_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, '', $13) ON CONFLICT (session_id) DO NOTHING`,
		st.GetSessionId(), st.GetKind(), st.GetClientId(), st.GetUserId(), st.GetUsername(), st.GetScope(), st.GetDeviceId(), created,
		st.GetDeviceDisplayName(), st.GetIpAddress(), st.GetUserAgent(), seq, lastActive)
	if err != nil || tag.RowsAffected() == 0 {
		return err // delivered again: its rotated-out tokens stay gone
	}
	for _, t := range ev.GetTokens() {
		if err := insertTokens(ctx, tx, t, created); err != nil {
			return err
		}
	}
	return nil
}

// ImportSessions writes sessions moved from a homeserver.
func (g *grpcServer) ImportSessions(ctx context.Context, req *tokenv1.ImportSessionsRequest) (*tokenv1.ImportSessionsResponse, error) {
	results, err := g.svc.importSessions(ctx, req, caller.Actor(ctx))
	if err != nil {
		return nil, err
	}
	return &tokenv1.ImportSessionsResponse{Results: results}, nil
}

// importBatch is how many events the sessions read model applies in one
// transaction: imports come in thousands.
const importBatch = 1000

// applyImportedRun inserts a run of SessionImported in two statements: the
// sessions, and the tokens of the sessions inserted now (one delivered
// again keeps its rotated-out tokens gone). The records are unsealed.
func applyImportedRun(ctx context.Context, tx pgx.Tx, run []eventlog.Record) error {
	var (
		ids, kinds, clients, users, names, scopes, devices, displays, ips, agents []string
		created                                                                   []time.Time
		active                                                                    []*time.Time
		seqs                                                                      []int64
		hashes, tokenSessions, tokenKinds                                         []string
		issued                                                                    []time.Time
		expires                                                                   []*time.Time
	)
	for _, rec := range run {
		ev := rec.Event.(*eventsv1.SessionImported) //eventcheck:partial — a run of SessionImported only
		st := ev.GetSession()
		at := ev.GetCreatedAt().AsTime()
		ids, kinds, clients, users = append(ids, st.GetSessionId()), append(kinds, st.GetKind()), append(clients, st.GetClientId()), append(users, st.GetUserId())
		names, scopes, devices, displays = append(names, st.GetUsername()), append(scopes, st.GetScope()), append(devices, st.GetDeviceId()), append(displays, st.GetDeviceDisplayName())
		ips, agents, created, seqs = append(ips, st.GetIpAddress()), append(agents, st.GetUserAgent()), append(created, at), append(seqs, int64(rec.Seq))
		var last *time.Time
		if ev.GetLastActiveAt() != nil {
			t := ev.GetLastActiveAt().AsTime()
			last = &t
		}
		active = append(active, last)
		for _, t := range ev.GetTokens() {
			if t.GetAccessHash() != "" {
				var exp *time.Time
				if t.GetAccessExpiresAt() != nil {
					e := t.GetAccessExpiresAt().AsTime()
					exp = &e
				}
				hashes, tokenSessions, tokenKinds, issued, expires = append(hashes, t.GetAccessHash()), append(tokenSessions, st.GetSessionId()), append(tokenKinds, "access_token"), append(issued, at), append(expires, exp)
			}
			if t.GetRefreshHash() != "" {
				hashes, tokenSessions, tokenKinds, issued, expires = append(hashes, t.GetRefreshHash()), append(tokenSessions, st.GetSessionId()), append(tokenKinds, "refresh_token"), append(issued, at), append(expires, nil)
			}
		}
	}
	rows, err := tx.Query(ctx, `
		INSERT INTO sessions (session_id, kind, client_id, user_id, username, scope, device_id, created_at, device_display_name, ip_address, user_agent, version,
		                      browser_session_id, last_active_at)
		SELECT i, k, c, u, n, sc, d, cr, dn, ip, ua, v, '', la FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
			$8::timestamptz[], $9::text[], $10::text[], $11::text[], $12::bigint[], $13::timestamptz[]) AS t(i, k, c, u, n, sc, d, cr, dn, ip, ua, v, la)
		ON CONFLICT (session_id) DO NOTHING RETURNING session_id`,
		ids, kinds, clients, users, names, scopes, devices, created, displays, ips, agents, seqs, active)
	if err != nil {
		return fmt.Errorf("sessions: SessionImported: %w", err)
	}
	inserted, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("sessions: SessionImported: %w", err)
	}
	if len(hashes) > 0 { // the tokens of the sessions inserted now: one delivered again keeps its rotated-out tokens gone
		if _, err := tx.Exec(ctx, `INSERT INTO tokens (token_hash, session_id, kind, issued_at, expires_at)
			SELECT t.* FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[]) AS t(h, s, k, i, e)
			WHERE t.s = ANY($6)
			ON CONFLICT (token_hash) DO NOTHING`, hashes, tokenSessions, tokenKinds, issued, expires, inserted); err != nil {
			return fmt.Errorf("sessions: SessionImported: tokens: %w", err)
		}
	}
	return nil
}

package token

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/projection"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/token/internal/session"
)

// The token read models apply runs of events in bulk: one statement, or a
// few, for a whole run of them, where applying each on its own takes two to
// six round trips to PostgreSQL inside the batch's transaction. Under load,
// client_credentials issues a token per request and every refresh appends
// its session's new state, so the projection leader finds tens of
// SessionStarted or of states in each batch (issue 16); an import brings
// thousands of SessionImported. Every other event is applied on its own, as
// Apply does, in stream order.

// bulkClass is how rec is applied in bulk with the events like it next to
// it: a session's start, an import, or an event carrying its session's
// state; "" for an event applied on its own.
func bulkClass(rec eventlog.Record) string {
	switch rec.Event.(type) { //eventcheck:partial — picks the events applied in bulk; Apply handles every other
	case *eventsv1.SessionStarted:
		return "started"
	case *eventsv1.SessionImported:
		return "imported"
	}
	if eventsv1.SnapshotOf(rec.Event) != nil {
		return "state"
	}
	return ""
}

// applySnapshotRun applies a run of events carrying their session's state
// as applying each in turn would (a token hash belongs to one session): in
// parts in which each session, and each token, appears once (a session or a
// token met again starts the next part), each part in one go
// (applySnapshots).
func applySnapshotRun(ctx context.Context, tx pgx.Tx, run []eventlog.Record) error {
	seen := make(map[string]struct{}, 3*len(run))
	from := 0
	for i, rec := range run {
		snap := eventsv1.SnapshotOf(rec.Event)
		keys := make([]string, 0, 1+len(snap.GetTokens()))
		keys = append(keys, "session "+snap.GetSession().GetSessionId())
		for _, t := range snap.GetTokens() {
			keys = append(keys, "token "+t.GetHash())
		}
		if slices.ContainsFunc(keys, func(k string) bool { _, again := seen[k]; return again }) {
			if err := applySnapshots(ctx, tx, run[from:i]); err != nil {
				return fmt.Errorf("sessions: %d states from seq %d: %w", i-from, run[from].Seq, err)
			}
			clear(seen)
			from = i
		}
		for _, k := range keys {
			seen[k] = struct{}{}
		}
	}
	if err := applySnapshots(ctx, tx, run[from:]); err != nil {
		return fmt.Errorf("sessions: %d states from seq %d: %w", len(run)-from, run[from].Seq, err)
	}
	return nil
}

// unsealAll opens the personal fields of recs in place, their owners' keys
// read at once first.
func (s *Service) unsealAll(ctx context.Context, recs []eventlog.Record) error {
	if err := s.personal.PrefetchRecords(ctx, recs); err != nil {
		return err
	}
	for i := range recs {
		if err := s.personal.UnsealRecord(ctx, &recs[i]); err != nil {
			return err
		}
	}
	return nil
}

// applySessionsBatch is the sessions read model's ApplyBatch: runs of
// SessionStarted, of SessionImported and of states in one statement or a
// few each, every other event on its own.
func (s *Service) applySessionsBatch(ctx context.Context, tx pgx.Tx, recs []eventlog.Record) error {
	if err := s.unsealAll(ctx, recs); err != nil {
		return err
	}
	return projection.RunsBy(recs, bulkClass, func(class string, run []eventlog.Record) error {
		switch class {
		case "imported":
			return applyImportedRun(ctx, tx, run)
		case "started":
			return applyStartedRun(ctx, tx, run)
		case "state":
			return applySnapshotRun(ctx, tx, run)
		}
		for _, rec := range run {
			if err := applySessionEvent(ctx, tx, rec); err != nil {
				return err
			}
		}
		return nil
	})
}

// applyStartedRun inserts a run of SessionStarted (unsealed) in one
// statement: the sessions not there yet, and the tokens of those inserted
// now — as applySessionEvent does for each, so that a start delivered again
// does not bring back rotated-out tokens.
func applyStartedRun(ctx context.Context, tx pgx.Tx, run []eventlog.Record) error {
	n := len(run)
	var (
		ids, kinds, clients, users, names, scopes = make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
		devices, displays, ips, agents, browsers  = make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
		owners                                    = make([]string, 0, n)
		created                                   = make([]time.Time, 0, n)
		usable                                    = make([]*time.Time, 0, n)
		seqs                                      = make([]int64, 0, n)
		hashes, tokenSessions, tokenKinds         = make([]string, 0, 2*n), make([]string, 0, 2*n), make([]string, 0, 2*n)
		issued                                    = make([]time.Time, 0, 2*n)
		expires                                   = make([]*time.Time, 0, 2*n)
		seen                                      = make(map[string]struct{}, n)
	)
	for _, rec := range run {
		ev := rec.Event.(*eventsv1.SessionStarted) //eventcheck:partial — a run of SessionStarted only
		if _, dup := seen[ev.GetSessionId()]; dup {
			continue // applied one by one, a second start of a session changes nothing
		}
		seen[ev.GetSessionId()] = struct{}{}
		at := rec.OccurredAt()
		ids, kinds, clients, users = append(ids, ev.GetSessionId()), append(kinds, ev.GetKind()), append(clients, ev.GetClientId()), append(users, ev.GetUserId())
		names, scopes, devices, displays = append(names, ev.GetUsername()), append(scopes, ev.GetScope()), append(devices, ev.GetDeviceId()), append(displays, ev.GetDeviceDisplayName())
		ips, agents, browsers, owners = append(ips, ev.GetIpAddress()), append(agents, ev.GetUserAgent()), append(browsers, ev.GetBrowserSessionId()), append(owners, ev.GetOwnerUserId())
		created, seqs, usable = append(created, at), append(seqs, int64(rec.Seq)), append(usable, usableUntil(session.UsableUntil(ev)))
		t := ev.GetTokens()
		if t.GetAccessHash() != "" {
			var exp *time.Time // NULL: a compat access token issued without a refresh token never expires
			if t.GetAccessExpiresAt() != nil {
				e := t.GetAccessExpiresAt().AsTime()
				exp = &e
			}
			hashes, tokenSessions, tokenKinds, issued, expires = append(hashes, t.GetAccessHash()), append(tokenSessions, ev.GetSessionId()), append(tokenKinds, "access_token"), append(issued, at), append(expires, exp)
		}
		if t.GetRefreshHash() != "" {
			hashes, tokenSessions, tokenKinds, issued, expires = append(hashes, t.GetRefreshHash()), append(tokenSessions, ev.GetSessionId()), append(tokenKinds, "refresh_token"), append(issued, at), append(expires, nil)
		}
	}
	// The tokens' check of their session (a foreign key) sees the sessions
	// the statement's first part inserted.
	if _, err := tx.Exec(ctx, `
		WITH started AS (
			INSERT INTO sessions (session_id, kind, client_id, user_id, username, scope, device_id, created_at, device_display_name, ip_address, user_agent, version,
			                      browser_session_id, owner_user_id, usable_until)
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::timestamptz[], $9::text[], $10::text[],
				$11::text[], $12::bigint[], $13::text[], $14::text[], $20::timestamptz[])
			ON CONFLICT (session_id) DO NOTHING RETURNING session_id)
		INSERT INTO tokens (token_hash, session_id, kind, issued_at, expires_at)
		SELECT t.* FROM unnest($15::text[], $16::text[], $17::text[], $18::timestamptz[], $19::timestamptz[]) AS t(h, s, k, i, e)
		WHERE t.s IN (SELECT session_id FROM started)
		ON CONFLICT (token_hash) DO NOTHING`,
		ids, kinds, clients, users, names, scopes, devices, created, displays, ips, agents, seqs, browsers, owners,
		hashes, tokenSessions, tokenKinds, issued, expires, usable); err != nil {
		return fmt.Errorf("sessions: %d SessionStarted: %w", len(ids), err)
	}
	return nil
}

package token

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/testkit"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/token/migrations"
)

// A run of events carrying their session's state, applied in one go
// (applySnapshotRun), leaves the rows that applying each in turn
// (applySessionEvent) leaves: whatever repeats in the run, a stale state
// after a newer one, ends with and without a last use. A token hash belongs
// to one session (the hash of a random token); were two sessions to list
// one, the run still applies, and each session holds the tokens its last
// state lists.
func TestSnapshotRunsApplyAsOneByOne(t *testing.T) {
	ctx := context.Background()
	pool := testkit.Schema(t, Schema, migrations.FS)
	base := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	at := func(min int) *timestamppb.Timestamp {
		return timestamppb.New(base.Add(time.Duration(min) * time.Minute))
	}
	access := func(h string, issued int) *eventsv1.SessionToken {
		return &eventsv1.SessionToken{Hash: h, IssuedAt: at(issued), ExpiresAt: at(issued + 5)}
	}
	refresh := func(h string, issued int) *eventsv1.SessionToken {
		return &eventsv1.SessionToken{Hash: h, Refresh: true, IssuedAt: at(issued)}
	}
	consumed := func(h string, issued, used int) *eventsv1.SessionToken {
		return &eventsv1.SessionToken{Hash: h, Refresh: true, IssuedAt: at(issued), ConsumedAt: at(used), ConsumedAfter: 1}
	}
	used := func(min int, ip string) *eventsv1.SessionLastUse {
		return &eventsv1.SessionLastUse{At: at(min), IpAddress: ip, IpAt: at(min)}
	}
	type state struct {
		session string
		seq     uint64
		snap    *eventsv1.SessionSnapshot
	}
	live := func(session string, seq uint64, use *eventsv1.SessionLastUse, tokens ...*eventsv1.SessionToken) state {
		return state{session, seq, &eventsv1.SessionSnapshot{
			Session:   &eventsv1.SessionStarted{SessionId: session, Kind: "oauth", ClientId: "client", UserId: "user-" + session, Username: "u" + session},
			CreatedAt: at(0), DeviceDisplayName: fmt.Sprintf("device %d", seq), Tokens: tokens, LastUse: use}}
	}
	ended := func(s state) state {
		s.snap.Ended, s.snap.EndedAt, s.snap.EndReason = true, at(int(s.seq)), "revoked"
		return s
	}
	tests := []struct {
		name        string
		before, run []state
		// shared: a token two sessions list; applied one by one, the
		// second session's state does not take it and the first's later
		// state drops it, so only the run's rows are checked.
		shared bool
		// holds is what the rows must say, whichever way they were applied.
		holds []string
	}{
		{name: "sessions interleaved", run: []state{
			live("a", 10, used(1, "192.0.2.1"), access("a1", 0), refresh("r1", 0)),
			live("b", 11, nil, access("b1", 0), refresh("s1", 0)),
			live("a", 12, used(2, ""), consumed("r1", 0, 2), access("a2", 2), refresh("r2", 2)),
			live("b", 13, used(3, "192.0.2.2"), consumed("s1", 0, 3), access("b2", 3), refresh("s2", 3)),
		}},
		{name: "one session again and again", run: []state{
			live("a", 10, nil, access("a1", 0), refresh("r1", 0)),
			live("a", 11, used(1, "192.0.2.1"), consumed("r1", 0, 1), access("a2", 1), refresh("r2", 1)),
			live("a", 12, used(2, "192.0.2.9"), consumed("r1", 0, 1), consumed("r2", 1, 2), access("a3", 2), refresh("r3", 2)),
		}},
		{name: "a stale state after a newer one", before: []state{
			live("a", 20, used(9, "192.0.2.1"), access("a9", 9), refresh("r9", 9)),
		}, run: []state{
			live("a", 21, used(10, "192.0.2.3"), consumed("r9", 9, 10), access("a10", 10), refresh("r10", 10)),
			live("b", 22, nil, access("b1", 0), refresh("s1", 0)),
		}},
		{name: "a state older than the row", before: []state{
			live("a", 30, nil, access("a9", 9), refresh("r9", 9)),
		}, run: []state{
			live("a", 25, used(1, "192.0.2.1"), access("a1", 0), refresh("r1", 0)),
			live("b", 31, nil, access("b1", 0)),
		}, holds: []string{`"device_display_name":"device 30"`, `"token_hash":"a9"`, `"version":30`}},
		{name: "a token two sessions list", run: []state{
			live("a", 10, nil, access("shared", 0), refresh("r1", 0)),
			live("b", 11, nil, access("shared", 0), refresh("s1", 0)),
			live("a", 12, nil, access("a2", 1), refresh("r2", 1)),
		}, shared: true},
		{name: "ends with and without a last use", before: []state{
			live("a", 5, used(1, "192.0.2.1"), access("a1", 0), refresh("r1", 0)),
			live("b", 6, used(1, "192.0.2.2"), access("b1", 0)),
			live("c", 7, used(1, "192.0.2.3"), access("c1", 0)),
		}, run: []state{
			ended(live("a", 10, nil, access("a1", 0), refresh("r1", 0))),
			ended(live("b", 11, used(4, "192.0.2.4"), access("b1", 0))),
			live("c", 12, nil, access("c1", 0)),
			live("d", 13, used(0, ""), access("d1", 0)),
		}, holds: []string{`"end_reason":"revoked"`, `"ip_address":"192.0.2.4"`}},
	}
	records := func(states []state) []eventlog.Record {
		out := make([]eventlog.Record, len(states))
		for i, s := range states {
			out[i] = eventlog.Record{Seq: s.seq, Subject: "token.session." + s.session,
				Envelope: &eventsv1.Envelope{OccurredAt: at(int(s.seq))},
				Event:    &eventsv1.TokensIssued{SessionId: s.session, State: s.snap}}
		}
		return out
	}
	rows := func(t *testing.T, tx pgx.Tx, apply func([]eventlog.Record) error, before, run []eventlog.Record) string {
		t.Helper()
		for _, rec := range before {
			if err := applySessionEvent(ctx, tx, rec); err != nil {
				t.Fatal(err)
			}
		}
		if err := apply(run); err != nil {
			t.Fatal(err)
		}
		var dump string
		if err := tx.QueryRow(ctx, `SELECT concat_ws(E'\n',
			(SELECT json_agg(s ORDER BY s.session_id)::text FROM sessions s),
			(SELECT json_agg(t ORDER BY t.token_hash)::text FROM tokens t),
			(SELECT json_agg(a ORDER BY a.session_id)::text FROM session_activity a))`).Scan(&dump); err != nil {
			t.Fatal(err)
		}
		return dump
	}
	inTx := func(t *testing.T, fn func(tx pgx.Tx) string) string {
		t.Helper()
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		return fn(tx)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, run := records(tt.before), records(tt.run)
			oneByOne := inTx(t, func(tx pgx.Tx) string {
				return rows(t, tx, func(recs []eventlog.Record) error {
					for _, rec := range recs {
						if err := applySessionEvent(ctx, tx, rec); err != nil {
							return err
						}
					}
					return nil
				}, before, run)
			})
			inBulk := inTx(t, func(tx pgx.Tx) string {
				return rows(t, tx, func(recs []eventlog.Record) error { return applySnapshotRun(ctx, tx, recs) }, before, run)
			})
			if tt.shared {
				holds := inTx(t, func(tx pgx.Tx) string {
					rows(t, tx, func(recs []eventlog.Record) error { return applySnapshotRun(ctx, tx, recs) }, before, run)
					var missing string
					if err := tx.QueryRow(ctx, `SELECT coalesce(string_agg(h || ' of ' || s, ', '), '') FROM unnest($1::text[], $2::text[]) AS k(h, s)
						WHERE NOT EXISTS (SELECT 1 FROM tokens WHERE token_hash = h AND session_id = s)`,
						[]string{"shared", "s1", "a2", "r2"}, []string{"b", "b", "a", "a"}).Scan(&missing); err != nil {
						t.Fatal(err)
					}
					return missing
				})
				if holds != "" {
					t.Fatalf("tokens the sessions' last states list are not theirs: %s\n%s", holds, inBulk)
				}
				return
			}
			for _, h := range tt.holds {
				if !strings.Contains(oneByOne, h) {
					t.Fatalf("the rows do not say %s:\n%s", h, oneByOne)
				}
			}
			if inBulk != oneByOne {
				t.Fatalf("applied in one go:\n%s\none by one:\n%s", inBulk, oneByOne)
			}
		})
	}
}

package token

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/config"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/personal"
	"gatehouse.dev/platform/pg"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/token/internal/session"
)

// Storage that follows live sessions, not their history (issue 16). Every
// session event after the first carries the session's whole state
// (SessionSnapshot, sessionWrites), so with Config.CompactSessions the
// TOKEN stream keeps only the last message of each subject (JetStream's
// MaxMsgsPerSubject 1): a session refreshed a thousand times holds one
// message. An ended session's last event expires after
// Config.EndedSessionRetention (a message TTL; a client's own session's
// sooner, endedRetention), and the read model drops the
// session's rows at the same age (sweepEnded), so a rebuild still equals
// the live read model and a session's subject does not outlive it.
//
// A stream that kept history until now is compacted once, at start: every
// session whose last event carries no state gets a SessionSnapshotted first,
// then the limit is set and JetStream drops the older messages. Replicas of
// an earlier version must be stopped first: an event they append without a
// state after the limit is set loses the session's start.

// endedRetention is how long a session of kind stays once ended, in the
// stream and the read model, when compacting: a client's own
// (client_credentials) less long, config.EndedClientSessionRetention.
func (c Config) endedRetention(kind string) time.Duration {
	if kind == "client_credentials" {
		return config.EndedClientSessionRetention(c.EndedSessionRetention, c.ActivityRetention)
	}
	return c.EndedSessionRetention
}

// sweepEndedEvery is how often the read model drops long-ended sessions.
const sweepEndedEvery = time.Hour

// openTokenLog opens the TOKEN stream, compacting it first when asked to.
func openTokenLog(ctx context.Context, cfg Config, js jetstream.JetStream, keys *personal.Store, pool *pgxpool.Pool, logger *slog.Logger, opts ...eventlog.Option) (*eventlog.Log, error) {
	streamCfg := eventlog.StreamOf(eventsv1.Token, cfg.Replicas)
	streamCfg.AllowTTL = true // activity batches expire (activity_fold.go), and so do ended sessions when compacting
	if !cfg.CompactSessions {
		return eventlog.Open(ctx, js, streamCfg, opts...)
	}
	if st, err := eventlog.FindStream(ctx, js, streamCfg.Name); err == nil && st.CachedInfo().Config.MaxMsgsPerSubject != 1 {
		log, err := eventlog.Open(ctx, js, streamCfg, opts...)
		if err != nil {
			return nil, err
		}
		began := time.Now()
		n, err := snapshotSessions(ctx, log, keys, cfg.endedRetention, time.Now, lastActiveIn(pool))
		if err != nil {
			return nil, fmt.Errorf("token: compacting the TOKEN stream: %w", err)
		}
		logger.Info("TOKEN stream compacted: each session's last event now holds its state", "snapshots", n, "took", time.Since(began).Round(time.Millisecond))
	} else if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, err
	}
	streamCfg.LastPerSubject = true
	return eventlog.Open(ctx, js, streamCfg, opts...)
}

// snapshotSessions writes a SessionSnapshotted for every session whose
// last event carries no state, and returns how many it wrote; each carries
// the session's last use as lastActive finds it (nil: none). An ended
// session's expires when it would have, had it been written at its end. A
// session changed meanwhile got a state from its new event. retention is
// how long an ended session of a kind stays.
func snapshotSessions(ctx context.Context, log *eventlog.Log, keys *personal.Store, retention func(kind string) time.Duration, now func() time.Time,
	lastActive func(context.Context, string) (time.Time, error)) (int, error) {
	n := 0
	err := log.LastOfEach(ctx, log.Subjects(eventsv1.TokenSession.Type), func(last eventlog.Record) error {
		if eventsv1.SnapshotOf(last.Event) != nil {
			return nil
		}
		ref := last.Aggregate()
		history, version, err := log.Load(ctx, ref)
		if err != nil {
			return err
		}
		st := session.Fold(history)
		if !st.Exists() {
			return nil
		}
		if lastActive != nil {
			at, err := lastActive(ctx, ref.ID)
			if err != nil {
				return err
			}
			st.NoteUse(at, "", time.Time{})
		}
		ev, err := resealSnapshot(ctx, keys, log.Subject(ref), st, &eventsv1.SessionSnapshotted{SessionId: ref.ID, State: st.Snapshot()})
		if err != nil {
			return err
		}
		w := eventlog.Write{Expect: eventlog.ExpectVersion(version), Event: eventlog.Event{Aggregate: ref, Actor: "system:token", Payload: ev}}
		if st.Ended {
			w.TTL = max(retention(st.Started.GetKind())-now().Sub(st.EndedAt()), time.Second)
		}
		if _, err := log.Append(ctx, w); err != nil && !eventlog.IsConflict(err) {
			return err
		}
		n++
		return nil
	})
	return n, err
}

// resealSnapshot seals the personal fields of an event carrying st's
// snapshot for their place in it: the start's, sealed where the start was
// read from (st.SealedAt), are opened and sealed again.
func resealSnapshot(ctx context.Context, keys *personal.Store, subject string, st session.State, ev proto.Message) (proto.Message, error) {
	clear := proto.Clone(ev)
	snap := eventsv1.SnapshotOf(clear)
	if snap.GetSession() != nil && st.SealedAt != "" {
		if err := keys.Unseal(ctx, snap.GetSession(), st.SealedAt); err != nil {
			return nil, err
		}
	}
	// The last use's address, carried from the session's previous snapshot,
	// was sealed at the same place (activity_fold.go).
	if lu := snap.GetLastUse(); lu.GetSealedIpAddress() != nil && lu.GetIpAddress() == "" {
		if err := keys.Unseal(ctx, lu, lastUsePlace(subject)); err != nil {
			return nil, err
		}
	}
	return keys.SealDroppingErased(ctx, clear, subject, personal.NoOwner)
}

// sweepEnded drops, every sweepEndedEvery, the sessions ended longer ago
// than the retention, with their tokens (the audit trail has a retention of
// its own, audit_stream.go): their last event
// has expired from the stream, so a rebuild would not hold them either.
func (s *Service) sweepEnded(ctx context.Context) {
	pg.Every(ctx, sweepEndedEvery, s.logger, "dropped long-ended sessions", func(ctx context.Context) (int64, error) {
		return s.dropEnded(ctx, s.now())
	})
}

// dropEnded deletes the sessions whose end is older than their kind's
// retention at now, and their tokens and activity, and returns how many
// sessions. It deletes pg.DropChunk sessions a statement, each found by its
// end (an index), so that a sweep of millions (a busy client's tokens) holds
// no long transaction and reads no live session. (Not pg.DropWhere: a chunk
// is chosen among the sessions once, and its tokens and activity go with it;
// deleting them by a subquery over every long-ended session would read that
// whole set again for each chunk.)
func (s *Service) dropEnded(ctx context.Context, now time.Time) (int64, error) {
	const chunk = `WITH gone AS (SELECT session_id FROM sessions
			WHERE ended_at < $1 OR (kind = 'client_credentials' AND ended_at < $2) LIMIT $3),
		t AS (DELETE FROM tokens WHERE session_id IN (SELECT session_id FROM gone)),
		a AS (DELETE FROM session_activity WHERE session_id IN (SELECT session_id FROM gone))
		DELETE FROM sessions WHERE session_id IN (SELECT session_id FROM gone)`
	cutoff, clients := now.Add(-s.cfg.endedRetention("")), now.Add(-s.cfg.endedRetention("client_credentials"))
	var dropped int64
	for {
		tag, err := s.pool.Exec(ctx, chunk, cutoff, clients, pg.DropChunk)
		if err != nil {
			return dropped, fmt.Errorf("token: drop long-ended sessions: %w", err)
		}
		dropped += tag.RowsAffected()
		if tag.RowsAffected() < pg.DropChunk {
			return dropped, nil
		}
	}
}

// lastActiveIn reads a session's last use from the read model as versions
// before session_activity kept it (sessions.last_active_at, which the
// activity batches raised) and as this one does: what a stream compacted on
// upgrade keeps of it, with the batches of before (kept for ever).
func lastActiveIn(pool *pgxpool.Pool) func(context.Context, string) (time.Time, error) {
	return func(ctx context.Context, id string) (time.Time, error) {
		var at *time.Time
		err := pool.QueryRow(ctx, `SELECT GREATEST(s.last_active_at, a.last_active_at) FROM sessions s`+activityJoin+` WHERE s.session_id = $1`, id).Scan(&at)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return time.Time{}, nil
		case err != nil:
			return time.Time{}, err
		case at == nil:
			return time.Time{}, nil
		}
		return *at, nil
	}
}

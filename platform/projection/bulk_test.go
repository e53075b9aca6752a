package projection_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/projection"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// A projection with ApplyBatch gets whole batches, in order, and builds the
// same read model as Apply on each; a rebuild goes through it too.
func TestApplyBatch(t *testing.T) {
	e := setup(t)
	var batches []int
	bulk := names
	bulk.Name = "bulk_names"
	bulk.Batch = 1000
	bulk.ApplyBatch = func(ctx context.Context, tx pgx.Tx, recs []eventlog.Record) error {
		batches = append(batches, len(recs))
		return projection.RunsOf(recs,
			func(rec eventlog.Record) bool { _, ok := rec.Event.(*eventsv1.DisplayNameSet); return ok },
			func(run []eventlog.Record) error {
				ids, names, seqs := []string{}, []string{}, []int64{}
				for _, rec := range run {
					ev := rec.Event.(*eventsv1.DisplayNameSet)
					ids, names, seqs = append(ids, ev.GetUserId()), append(names, ev.GetDisplayName()), append(seqs, int64(rec.Seq))
				}
				// One statement for the run; rows of one user keep the last.
				_, err := tx.Exec(ctx, `
					INSERT INTO names (user_id, name, applied, last_seq)
					SELECT DISTINCT ON (id) id, name, count(*) OVER (PARTITION BY id), seq
					FROM unnest($1::text[], $2::text[], $3::bigint[]) AS v(id, name, seq) ORDER BY id, seq DESC
					ON CONFLICT (user_id) DO UPDATE SET name = EXCLUDED.name, applied = names.applied + EXCLUDED.applied,
						last_seq = EXCLUDED.last_seq`, ids, names, seqs)
				return err
			},
			func(rec eventlog.Record) error { return names.Apply(ctx, tx, rec) })
	}
	last := e.appendNames(t, 7, 600) // a backlog, applied in big batches
	set, stop := e.runSet(t, bulk)
	defer stop()
	waitSet(t, set, bulk.Name, last)
	assertModel(t, e.readModel(t), 7, 600)
	if !slices.ContainsFunc(batches, func(n int) bool { return n > 1 }) {
		t.Fatalf("batches of %v: ApplyBatch never got more than one event", batches)
	}
	if _, err := set.Rebuild(e.ctx, bulk.Name); err != nil {
		t.Fatal(err)
	}
	assertModel(t, e.readModel(t), 7, 600)
}

// A reactor's Relevant keeps Handle from events that need nothing, and the
// checkpoint still reaches the end of the stream once caught up.
func TestReactorRelevant(t *testing.T) {
	e := setup(t)
	f := &effects{}
	r := e.reactor(f)
	r.Relevant = func(rec eventlog.Record) bool {
		ev, ok := rec.Event.(*eventsv1.DisplayNameSet)
		return ok && ev.GetDisplayName() == "name-0"
	}
	last := e.appendNames(t, 3, 2500) // a backlog: the checkpoint moves lazily over it
	set, stop := e.runSet(t, r)
	defer stop()
	waitSet(t, set, "mailer", last)
	if got := f.handled(); !slices.Equal(got, []uint64{1}) {
		t.Fatalf("handled %v, want only the relevant event 1", got)
	}
	// Caught up: an irrelevant event moves the checkpoint at once.
	more := e.appendNames(t, 3, 2)
	ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
	defer cancel()
	if err := set.WaitFor(ctx, "mailer", more); err != nil {
		t.Fatalf("the checkpoint did not reach %d: %v", more, err)
	}
	if cp, err := set.Checkpoint(e.ctx, "mailer"); err != nil || cp != more {
		t.Fatal(fmt.Sprint(cp, err))
	}
}

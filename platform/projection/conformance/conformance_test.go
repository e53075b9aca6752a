package conformance_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/pg"
	"gatehouse.dev/platform/projection"
	"gatehouse.dev/platform/projection/conformance"
	"gatehouse.dev/platform/testkit"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// deviceNames is a small read model written the way the suite asks: the
// display name of each session's device, a row changing only for an event
// later than the last one applied to it.
var deviceNames = projection.Projection{
	Name:     "device_names",
	Subjects: []string{eventsv1.TokenSession.Subjects()},
	Apply: func(ctx context.Context, tx pgx.Tx, rec eventlog.Record) error {
		var err error
		switch ev := rec.Event.(type) {
		case *eventsv1.SessionStarted:
			_, err = tx.Exec(ctx, `INSERT INTO device_names (session_id, name, ended, version) VALUES ($1, $2, false, $3)
				ON CONFLICT (session_id) DO NOTHING`, ev.GetSessionId(), ev.GetDeviceDisplayName(), int64(rec.Seq))
		case *eventsv1.SessionRenamed:
			_, err = tx.Exec(ctx, `UPDATE device_names SET name = $2, version = $3 WHERE session_id = $1 AND version < $3`,
				ev.GetSessionId(), ev.GetDeviceDisplayName(), int64(rec.Seq))
		case *eventsv1.SessionEnded:
			_, err = tx.Exec(ctx, `UPDATE device_names SET ended = true, version = $2 WHERE session_id = $1 AND version < $2`,
				ev.GetSessionId(), int64(rec.Seq))
		case *eventsv1.SessionImported:
			_, err = tx.Exec(ctx, `INSERT INTO device_names (session_id, name, ended, version) VALUES ($1, $2, false, $3)
				ON CONFLICT (session_id) DO NOTHING`, ev.GetSession().GetSessionId(), ev.GetSession().GetDeviceDisplayName(), int64(rec.Seq))
		case *eventsv1.TokensIssued:
			// A rotation leaves the name as it is.
		case *eventsv1.SessionSnapshotted:
			// The session's state written again (this read model ignores snapshots).
		default:
			return eventlog.Unhandled(rec)
		}
		if err != nil {
			return fmt.Errorf("device names: %w", err)
		}
		return nil
	},
	Tables: []string{"device_names"},
}

func TestSuitePassesAConformingProjection(t *testing.T) { runSuite(t, deviceNames) }

// A projection whose Version was raised passes too, from a fresh database
// (no upgrade build races the suite's rebuilds) as from the previous version.
func TestSuitePassesAProjectionOfALaterVersion(t *testing.T) {
	v2 := deviceNames
	v2.Version = 2
	runSuite(t, v2)
}

// runSuite runs the suite on p (the device_names read model) with a
// history of every token session event.
func runSuite(t *testing.T, p projection.Projection) {
	ctx := context.Background()
	pool, err := pg.Connect(ctx, testkit.Postgres(t), "svc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := pool.Exec(ctx, `CREATE TABLE device_names (session_id text PRIMARY KEY, name text NOT NULL, ended boolean NOT NULL, version bigint NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	log, err := eventlog.Open(ctx, testkit.NATS(t), eventlog.StreamOf(eventsv1.Token, 1))
	if err != nil {
		t.Fatal(err)
	}
	session := func(id string, ev proto.Message) eventlog.Event {
		return eventlog.Event{Aggregate: eventlog.Ref{Type: eventsv1.TokenSession.Type, ID: id}, Actor: "test", Payload: ev}
	}
	conformance.Run(t, conformance.Case{
		Projection: p, Contract: eventsv1.Token, Log: log, Pool: pool,
		Events: []eventlog.Event{
			session("s1", &eventsv1.SessionStarted{SessionId: "s1", DeviceDisplayName: "phone"}),
			session("s2", &eventsv1.SessionStarted{SessionId: "s2"}),
			session("s1", &eventsv1.SessionRenamed{SessionId: "s1", DeviceDisplayName: "old phone"}),
			session("s1", &eventsv1.TokensIssued{SessionId: "s1", AccessHash: "a2"}),
			session("s1", &eventsv1.SessionRenamed{SessionId: "s1", DeviceDisplayName: "new phone"}),
			session("s2", &eventsv1.SessionEnded{SessionId: "s2"}),
			session("s3", &eventsv1.SessionImported{Session: &eventsv1.SessionStarted{SessionId: "s3", DeviceDisplayName: "imported phone"}}),
			session("s3", &eventsv1.SessionRenamed{SessionId: "s3", DeviceDisplayName: "renamed"}),
			session("s3", &eventsv1.SessionSnapshotted{SessionId: "s3"}),
		},
	})
}

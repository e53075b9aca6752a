package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/projection"
	"gatehouse.dev/platform/testkit"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	projectionsv1 "gatehouse.dev/proto/gatehouse/projections/v1"
)

// The checks of the node loss drill after the faults: the streams on every
// NATS node, and the projections against rebuilds.

// connectNATS connects the test to the cluster, as the services do.
func (d *scaled) connectNATS(t *testing.T) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(d.nats.urls(), nats.UserInfo(d.nats.user, d.nats.password))
	if err != nil {
		t.Fatalf("connect to the NATS cluster: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// streamLeader is the node leading a stream's replicas.
func (d *scaled) streamLeader(t *testing.T, stream string) *natsNode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := d.connectNATS(t).Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info := s.CachedInfo()
	if info.Config.Replicas != 3 || info.Cluster == nil {
		t.Fatalf("stream %s has %d replicas, want 3", stream, info.Config.Replicas)
	}
	for _, n := range d.nats.nodes {
		if n.name == info.Cluster.Leader {
			return n
		}
	}
	t.Fatalf("stream %s is led by %q, not one of the nodes", stream, info.Cluster.Leader)
	return nil
}

// nodeStreams is what one node holds of each stream (its /jsz).
func (n *natsNode) streams() (map[string]jetstream.StreamState, error) {
	resp, err := http.Get("http://" + n.monitor + "/jsz?accounts=true&streams=true")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var jsz struct {
		Accounts []struct {
			Streams []struct {
				Name  string                `json:"name"`
				State jetstream.StreamState `json:"state"`
			} `json:"stream_detail"`
		} `json:"account_details"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&jsz); err != nil {
		return nil, err
	}
	out := map[string]jetstream.StreamState{}
	for _, a := range jsz.Accounts {
		for _, s := range a.Streams {
			out[s.Name] = s.State
		}
	}
	return out, nil
}

// eventStreams are the streams that keep their messages: the services'
// events and the personal keys.
var eventStreams = []string{eventsv1.Accounts.Name, eventsv1.Authorize.Name, eventsv1.Token.Name, eventsv1.Notify.Name, eventsv1.PersonalKeys.Name}

// checkStreams waits until every node holds every stream with the same
// messages (the node that was killed caught up), then reads every event
// stream: each event is stored once (its id, JetStream's message id,
// appears once) and the token stream holds at least one issue of tokens
// for every token pair answered 200.
func (d *scaled) checkStreams(t *testing.T, pairs int) {
	t.Helper()
	began := time.Now()
	if err := d.nats.waitHealthy(30 * time.Second); err != nil {
		t.Fatalf("the NATS cluster is not healthy after the drill: %v", err)
	}
	var agreed map[string]jetstream.StreamState
	err := waitFor(30*time.Second, func() (bool, error) {
		var first map[string]jetstream.StreamState
		for i, n := range d.nats.nodes {
			got, err := n.streams()
			if err != nil {
				return false, err
			}
			if i == 0 {
				first = got
				continue
			}
			for name, st := range first {
				if !slices.Contains(eventStreams, name) {
					continue // counts that expire (RATELIMITS), at a different moment on each node
				}
				if g := got[name]; g.Msgs != st.Msgs || g.LastSeq != st.LastSeq {
					return false, fmt.Errorf("stream %s: %s holds %d messages up to %d, %s %d up to %d",
						name, n.name, g.Msgs, g.LastSeq, d.nats.nodes[0].name, st.Msgs, st.LastSeq)
				}
			}
		}
		agreed = first
		return true, nil
	})
	if err != nil {
		t.Fatalf("the NATS nodes do not agree on the streams: %v", err)
	}
	t.Logf("the NATS nodes agree on every stream %v after the drill", time.Since(began).Round(time.Millisecond))

	js := d.connectNATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var summary []string
	types := map[string]int{}
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range agreed {
			if !yield(k) {
				return
			}
		}
	}) {
		st := agreed[name]
		if st.Msgs == 0 || !slices.Contains(eventStreams, name) {
			continue
		}
		seen := map[string]uint64{}
		events, dups := 0, 0
		for next := uint64(1); next <= st.LastSeq; {
			msgs, err := jetstreamext.GetBatch(ctx, js, name, 256, jetstreamext.GetBatchSeq(next))
			if err != nil {
				t.Fatalf("read %s: %v", name, err)
			}
			n := 0
			for m, err := range msgs {
				if errors.Is(err, jetstreamext.ErrNoMessages) {
					break
				}
				if err != nil {
					t.Fatalf("read %s: %v", name, err)
				}
				n++
				next = m.Sequence + 1
				typ := m.Header.Get(eventlog.HeaderEventType)
				if typ == "" {
					continue
				}
				id := m.Header.Get(jetstream.MsgIDHeader)
				if prev, ok := seen[id]; ok {
					dups++
					t.Errorf("stream %s: event %s (%s) stored twice, at %d and %d", name, id, typ, prev, m.Sequence)
				}
				seen[id] = m.Sequence
				events++
				if name == "TOKEN" {
					types[typ[strings.LastIndex(typ, ".")+1:]]++
				}
			}
			if n == 0 {
				t.Fatalf("read %s: nothing after %d of %d", name, next-1, st.LastSeq)
			}
		}
		summary = append(summary, fmt.Sprintf("%s %d (%d events, %d twice)", name, st.Msgs, events, dups))
	}
	t.Logf("every NATS node holds the same streams: %s", strings.Join(summary, ", "))
	issues := types["SessionStarted"] + types["TokensIssued"]
	t.Logf("TOKEN: %d sessions started, %d later issues of tokens, %d sessions ended; %d token pairs answered 200",
		types["SessionStarted"], types["TokensIssued"], types["SessionEnded"], pairs)
	switch {
	case compacted(t, js):
		// Only each session's last event is kept: the tokens answered 200 were
		// checked one by one by introspection instead.
		t.Logf("TOKEN keeps each session's last event only (oauth.compact_sessions)")
	case issues < pairs:
		t.Errorf("the TOKEN stream records %d issues of tokens, fewer than the %d token pairs answered 200", issues, pairs)
	}
}

// projectionClients are the ProjectionsService of every service (through
// its gRPC front) and the names of their projections (reactors left out).
func (d *scaled) projectionClients(ctx context.Context, t *testing.T) (map[string]projectionsv1.ProjectionsServiceClient, []string) {
	t.Helper()
	clients := map[string]projectionsv1.ProjectionsServiceClient{}
	var names []string
	for _, svc := range scaledServices {
		c := projectionsv1.NewProjectionsServiceClient(testkit.DialAutoTo(t, d.grpc[svc].addr(), []byte(d.secret)))
		clients[svc] = c
		list, err := c.ListProjections(ctx, &projectionsv1.ListProjectionsRequest{})
		if err != nil {
			t.Fatalf("list the projections of %s: %v", svc, err)
		}
		for _, p := range list.GetProjections() {
			if p.GetKind() == projection.KindProjection {
				names = append(names, p.GetName())
			}
		}
	}
	return clients, names
}

// waitProjections waits until every projection of every service is live
// and has applied its stream, and so has every audit recorder: a reactor,
// but what it appends to AUDIT is what the audit read models follow, so a
// recorder still catching up (after PostgreSQL came back) moves their heads
// during the rebuilds that follow.
func (d *scaled) waitProjections(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	clients, _ := d.projectionClients(ctx, t)
	began := time.Now()
	var lagging []string // what was behind, second by second
	err := waitFor(15*time.Second, func() (ok bool, err error) {
		defer func() {
			if err != nil && (len(lagging) == 0 || time.Since(began) > time.Duration(len(lagging))*time.Second) {
				lagging = append(lagging, fmt.Sprintf("+%.0fs %v", time.Since(began).Seconds(), err))
			}
		}()
		for svc, c := range clients {
			list, err := c.ListProjections(ctx, &projectionsv1.ListProjectionsRequest{})
			if err != nil {
				return false, err
			}
			for _, p := range list.GetProjections() {
				feeds := p.GetKind() == projection.KindProjection || strings.HasSuffix(p.GetName(), "_audit_recorder")
				if feeds && (p.GetState() != "live" || p.GetCheckpoint() < p.GetHead()) {
					return false, fmt.Errorf("%s: %s at %d of %d, %s", svc, p.GetName(), p.GetCheckpoint(), p.GetHead(), p.GetState())
				}
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("the projections did not catch up: %v", err)
	}
	took := time.Since(began)
	t.Logf("every projection caught up with its stream in %v", took.Round(time.Millisecond))
	if took > 5*time.Second {
		t.Logf("behind meanwhile:\n%s", strings.Join(lagging, "\n"))
		d.logProjections(t)
	}
}

// logProjections logs what the replicas said of their projections and
// reactors, to tell why one stalled.
func (d *scaled) logProjections(t *testing.T) {
	t.Helper()
	for _, svc := range scaledServices {
		for i, r := range d.replicas[svc] {
			for _, line := range strings.Split(r.log.String(), "\n") {
				if strings.Contains(line, "projection") || strings.Contains(line, "reactor") {
					t.Logf("%s replica %d: %s", svc, i, line)
				}
			}
		}
	}
}

// checkProjections waits until every projection of every service has
// applied its stream, reads their tables, rebuilds every projection from the
// streams (blue/green, as `gatehouse projections rebuild` does) and reads
// them again: a rebuild must give the very same rows. A service's tables
// are compared only when no event reached its projections during the
// rebuild (the swap replaces the live tables, so a later round compares a
// rebuild applied on with another rebuild, and says so); the token service's
// — sessions and their last use, which a rebuild from a compacted stream
// once lost — must be compared against the live tables themselves, so the
// check first waits until no session activity is being written.
func (d *scaled) checkProjections(t *testing.T) {
	t.Helper()
	d.waitProjections(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	clients, names := d.projectionClients(ctx, t)
	db, err := pgx.Connect(ctx, d.pg.url())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	d.waitQuiet(ctx, t, clients, "token", 3*time.Second)
	d.waitProjections(t)
	checked := map[string]string{} // service → how its tables were compared
	for round := 1; len(checked) < len(scaledServices); round++ {
		if round > 3 {
			t.Fatalf("events kept arriving during three rebuilds; compared: %v", checked)
		}
		before := d.headsOf(ctx, t, clients)
		live := dumpReadModels(ctx, t, db)
		d.rebuildAll(ctx, t, clients, names)
		rebuilt := dumpReadModels(ctx, t, db)
		after := d.headsOf(ctx, t, clients)
		rows := 0
		for _, svc := range scaledServices {
			if _, done := checked[svc]; done {
				continue
			}
			if after[svc] != before[svc] {
				t.Logf("round %d: events reached %s's projections during the rebuild (%s, then %s): again", round, svc, before[svc], after[svc])
				continue
			}
			checked[svc] = "against the live tables"
			if round > 1 {
				checked[svc] = "against an earlier rebuild applied on"
			}
			for table, want := range live {
				if !strings.HasPrefix(table, svc+".") {
					continue
				}
				rows += len(want)
				if got := rebuilt[table]; !slices.Equal(want, got) {
					t.Errorf("%s differs from its rebuild: %d rows live, %d rebuilt; live only: %v; rebuilt only: %v",
						table, len(want), len(got), firstMissing(want, got), firstMissing(got, want))
				}
			}
			for table := range rebuilt {
				if _, ok := live[table]; !ok && strings.HasPrefix(table, svc+".") {
					t.Errorf("%s appeared with the rebuild", table)
				}
			}
		}
		t.Logf("round %d: %d rows of the read models compared with their rebuilds; compared so far: %v", round, rows, checked)
		if round > 1 {
			d.waitProjections(t)
		}
	}
	if how := checked["token"]; how != "against the live tables" {
		t.Errorf("the token service's read models were compared %s, not against the live tables", how)
	}
}

// headsOf names the newest event of every projection's subjects, by
// service.
func (d *scaled) headsOf(ctx context.Context, t *testing.T, clients map[string]projectionsv1.ProjectionsServiceClient) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, svc := range scaledServices {
		list, err := clients[svc].ListProjections(ctx, &projectionsv1.ListProjectionsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var heads []string
		for _, p := range list.GetProjections() {
			heads = append(heads, fmt.Sprintf("%s@%d", p.GetName(), p.GetHead()))
		}
		out[svc] = strings.Join(heads, " ")
	}
	return out
}

// waitQuiet waits until no event has reached a service's projections for
// quiet (at most a minute).
func (d *scaled) waitQuiet(ctx context.Context, t *testing.T, clients map[string]projectionsv1.ProjectionsServiceClient, svc string, quiet time.Duration) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	last, since := d.headsOf(ctx, t, clients)[svc], time.Now()
	for time.Since(since) < quiet {
		if time.Now().After(deadline) {
			t.Fatalf("events kept reaching %s's projections for a minute: %s", svc, last)
		}
		time.Sleep(200 * time.Millisecond)
		if now := d.headsOf(ctx, t, clients)[svc]; now != last {
			last, since = now, time.Now()
		}
	}
}

// rebuildAll rebuilds every projection at once (blue/green, as `gatehouse
// projections rebuild` does) and waits until every rebuilt read model is live.
func (d *scaled) rebuildAll(ctx context.Context, t *testing.T, clients map[string]projectionsv1.ProjectionsServiceClient, names []string) {
	t.Helper()
	started := time.Now()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		targets = map[string]uint64{}
	)
	for _, name := range names {
		wg.Go(func() {
			svc, _, _ := strings.Cut(name, ".")
			resp, err := clients[svc].RebuildProjection(ctx, &projectionsv1.RebuildProjectionRequest{Name: name, Background: true})
			if err != nil {
				t.Errorf("rebuild %s: %v", name, err)
				return
			}
			mu.Lock()
			targets[name] = resp.GetTarget()
			mu.Unlock()
		})
	}
	wg.Wait()
	err := waitFor(60*time.Second, func() (bool, error) {
		for svc, c := range clients {
			list, err := c.ListProjections(ctx, &projectionsv1.ListProjectionsRequest{})
			if err != nil {
				return false, err
			}
			for _, p := range list.GetProjections() {
				target, asked := targets[p.GetName()]
				if asked && (p.GetBuild() != nil || p.GetState() != "live" || p.GetCheckpoint() < target) {
					return false, fmt.Errorf("%s: %s still building (%s)", svc, p.GetName(), buildProgress(p.GetBuild()))
				}
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("the rebuilds did not finish: %v", err)
	}
	t.Logf("rebuilt %d projections (%s) in %v", len(names), strings.Join(names, ", "), time.Since(started).Round(time.Millisecond))
}

// bookkeeping are the tables of the platform's machinery, not read models.
var bookkeeping = []string{"projection_checkpoints", "projection_builds", "projection_versions", "schema_migrations"}

// dumpReadModels reads every table of the services' schemas, row by row as
// JSON in a fixed order.
func dumpReadModels(ctx context.Context, t *testing.T, db *pgx.Conn) map[string][]string {
	t.Helper()
	rows, err := db.Query(ctx, `SELECT table_schema, table_name FROM information_schema.tables
		WHERE table_type = 'BASE TABLE' AND table_schema = ANY($1) ORDER BY 1, 2`, scaledServices)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (pgx.Identifier, error) {
		var schema, name string
		err := r.Scan(&schema, &name)
		return pgx.Identifier{schema, name}, err
	})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, id := range tables {
		if slices.Contains(bookkeeping, id[1]) {
			continue
		}
		rows, err := db.Query(ctx, `SELECT to_jsonb(t)::text FROM `+id.Sanitize()+` t ORDER BY 1`)
		if err != nil {
			t.Fatalf("read %s: %v", id.Sanitize(), err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("read %s: %v", id.Sanitize(), err)
		}
		out[id[0]+"."+id[1]] = lines
	}
	return out
}

// firstMissing is the first row of a that b lacks.
func firstMissing(a, b []string) string {
	for _, r := range a {
		if !slices.Contains(b, r) {
			return r
		}
	}
	return "-"
}

// buildProgress describes a build under way.
func buildProgress(b *projectionsv1.Build) string {
	if b == nil {
		return "swapping"
	}
	return fmt.Sprintf("%d/%d", b.GetPosition(), b.GetTarget())
}

// compacted reports whether the TOKEN stream keeps only the last message of
// each subject (oauth.compact_sessions).
func compacted(t *testing.T, js jetstream.JetStream) bool {
	t.Helper()
	st, err := js.Stream(context.Background(), eventsv1.Token.Name)
	if err != nil {
		t.Fatalf("TOKEN: %v", err)
	}
	return st.CachedInfo().Config.MaxMsgsPerSubject == 1
}

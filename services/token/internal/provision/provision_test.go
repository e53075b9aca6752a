package provision

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/ids"
	"gatehouse.dev/platform/personal"
	"gatehouse.dev/platform/pg"
	"gatehouse.dev/platform/projection"
	"gatehouse.dev/platform/sealed"
	"gatehouse.dev/platform/testkit"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/token/internal/homeserver"
	"gatehouse.dev/services/token/internal/session"
)

func TestMain(m *testing.M) { testkit.Main(m) }

const secret = "the-homeserver-shared-secret"

// standInHomeserver is a stand-in for Synapse's /_synapse/mas/ API (no real
// homeserver runs here): it checks the shared secret, keeps each user's
// devices, records every call and answers with the status the test chose.
type standInHomeserver struct {
	mu      sync.Mutex
	calls   []hsCall
	devices map[string][]string // localpart → device ids
	// answer, when set, picks the status of a call (0: the usual answer);
	// attempt counts the calls of that op on that device, from 1.
	answer   func(op, device string, attempt int) int
	attempts map[string]int
}

// hsCall is one call the stand-in received.
type hsCall struct {
	op, localpart, device, displayName string
	status                             int
}

func newStandIn(t *testing.T) (*standInHomeserver, string) {
	t.Helper()
	h := &standInHomeserver{devices: map[string][]string{}, attempts: map[string]int{}}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return h, srv.URL
}

func (h *standInHomeserver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+secret {
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"errcode":"M_FORBIDDEN","error":"This endpoint must only be called by MAS"}`)
		return
	}
	op, ok := strings.CutPrefix(r.URL.Path, "/_synapse/mas/")
	if !ok || r.Method != http.MethodPost {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	var body struct {
		Localpart   string `json:"localpart"`
		DeviceID    string `json:"device_id"`
		DisplayName string `json:"display_name"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	key := op + "/" + body.DeviceID
	h.attempts[key]++
	status := 0
	if h.answer != nil {
		status = h.answer(op, body.DeviceID, h.attempts[key])
	}
	if status == 0 {
		status = http.StatusOK
		switch op {
		case "upsert_device":
			if !slices.Contains(h.devices[body.Localpart], body.DeviceID) {
				h.devices[body.Localpart] = append(h.devices[body.Localpart], body.DeviceID)
			}
		case "delete_device":
			h.devices[body.Localpart] = slices.DeleteFunc(h.devices[body.Localpart], func(d string) bool { return d == body.DeviceID })
		}
	}
	h.calls = append(h.calls, hsCall{op: op, localpart: body.Localpart, device: body.DeviceID, displayName: body.DisplayName, status: status})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	switch {
	case status >= 500:
		io.WriteString(w, `{"errcode":"M_UNKNOWN","error":"Service unavailable"}`)
	case status >= 400:
		io.WriteString(w, `{"errcode":"M_INVALID_PARAM","error":"Invalid device ID"}`)
	default:
		io.WriteString(w, `{}`)
	}
}

// devicesOf are the devices the homeserver holds for a user.
func (h *standInHomeserver) devicesOf(localpart string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Sorted(slices.Values(h.devices[localpart]))
}

// callsOf are the calls of op received, in order.
func (h *standInHomeserver) callsOf(op string) []hsCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []hsCall
	for _, c := range h.calls {
		if c.op == op {
			out = append(out, c)
		}
	}
	return out
}

// streamSessions answers like the token service's sessions read model, from
// the sessions' own histories in the TOKEN stream (the test knows their ids).
type streamSessions struct {
	log *eventlog.Log
	mu  sync.Mutex
	ids []string
}

func (ss *streamSessions) add(id string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.ids = append(ss.ids, id)
}

func (ss *streamSessions) live(ctx context.Context) ([]*eventsv1.SessionStarted, error) {
	ss.mu.Lock()
	known := slices.Clone(ss.ids)
	ss.mu.Unlock()
	var out []*eventsv1.SessionStarted
	for _, id := range known {
		history, _, err := ss.log.Load(ctx, eventlog.Ref{Type: eventsv1.TokenSession.Type, ID: id})
		if err != nil {
			return nil, err
		}
		if st := session.Fold(history); st.Exists() && !st.Ended {
			out = append(out, st.Started)
		}
	}
	return out, nil
}

func (ss *streamSessions) DeviceInUse(ctx context.Context, _ uint64, started *eventsv1.SessionStarted) (bool, error) {
	live, err := ss.live(ctx)
	return slices.ContainsFunc(live, func(s *eventsv1.SessionStarted) bool {
		return s.GetUserId() == started.GetUserId() && s.GetDeviceId() == started.GetDeviceId() && s.GetSessionId() != started.GetSessionId()
	}), err
}

func (ss *streamSessions) LiveDevices(ctx context.Context, userID string) ([]string, error) {
	live, err := ss.live(ctx)
	devices := []string{}
	for _, s := range live {
		if s.GetUserId() == userID && s.GetDeviceId() != "" && !slices.Contains(devices, s.GetDeviceId()) {
			devices = append(devices, s.GetDeviceId())
		}
	}
	slices.Sort(devices)
	return devices, err
}

// logBuffer collects the provisioner's log lines (JSON) for the test to read.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// audits are the log lines with the given audit name.
func (b *logBuffer) audits(name string) []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for line := range strings.SplitSeq(b.buf.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["audit"] == name {
			out = append(out, m)
		}
	}
	return out
}

// env is a provisioner running its reactors on real NATS and PostgreSQL
// against a stand-in homeserver.
type env struct {
	ctx      context.Context
	tokens   *eventlog.Log
	hs       *standInHomeserver
	sessions *streamSessions
	logs     *logBuffer
	p        *Provisioner
	set      *projection.Set
}

func setup(t *testing.T, answer func(op, device string, attempt int) int) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	js := testkit.NATS(t)
	tokens, err := eventlog.Open(ctx, js, eventlog.StreamOf(eventsv1.Token, 0))
	if err != nil {
		t.Fatal(err)
	}
	accounts, err := eventlog.Open(ctx, js, eventlog.StreamOf(eventsv1.Accounts, 0))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := personal.Open(ctx, js, sealed.NewRandomKeyring(), personal.Config{})
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pg.Connect(ctx, testkit.Postgres(t), "token")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := projection.Setup(ctx, pool); err != nil {
		t.Fatal(err)
	}
	hs, url := newStandIn(t)
	hs.answer = answer
	e := &env{ctx: ctx, tokens: tokens, hs: hs, sessions: &streamSessions{log: tokens}, logs: &logBuffer{}}
	logger := slog.New(slog.NewJSONHandler(e.logs, nil))
	e.p, err = New(Config{HomeserverURL: url, Secret: secret}, Deps{
		AccountsLog: accounts, TokenLog: tokens, Personal: keys, Sessions: e.sessions,
		ClientName: func(_ context.Context, id string) string {
			if id == "client-1" {
				return "Element"
			}
			return ""
		},
		Logger: logger, Homeserver: []homeserver.Option{homeserver.WithTimeout(2 * time.Second)},
	})
	if err != nil || e.p == nil {
		t.Fatalf("New: %v, %v", e.p, err)
	}
	if e.set, err = projection.NewSet(ctx, pool, tokens, logger, e.p.Reactors()...); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); e.set.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return e
}

// start appends a session of user alice on device and returns its id and sequence.
func (e *env) start(t *testing.T, device string) (string, uint64) {
	t.Helper()
	id := ids.New()
	e.sessions.add(id)
	return id, e.append(t, id, &eventsv1.SessionStarted{
		SessionId: id, UserId: "user-alice", Username: "alice", DeviceId: device, Kind: "oauth", ClientId: "client-1",
	})
}

// end appends the end of a session and returns its sequence.
func (e *env) end(t *testing.T, id string) uint64 {
	t.Helper()
	return e.append(t, id, &eventsv1.SessionEnded{SessionId: id, Reason: "logout"})
}

func (e *env) append(t *testing.T, id string, ev proto.Message) uint64 {
	t.Helper()
	got, err := e.tokens.Append(e.ctx, eventlog.Write{Expect: eventlog.ExpectAny(), Event: eventlog.Event{
		Aggregate: eventlog.Ref{Type: eventsv1.TokenSession.Type, ID: id}, Actor: "test", Payload: ev,
	}})
	if err != nil {
		t.Fatal(err)
	}
	return got.Last()
}

// handled waits until the sessions feed has handled every event up to seq.
func (e *env) handled(t *testing.T, seq uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
	defer cancel()
	if err := e.set.WaitFor(ctx, checkpointSessions, seq); err != nil {
		t.Fatalf("the sessions feed did not handle event %d: %v", seq, err)
	}
}

// A device two live sessions hold stays on the homeserver when one of them
// ends, and goes when the last one does.
func TestSessionEndedKeepsADeviceAnotherSessionHolds(t *testing.T) {
	e := setup(t, nil)
	first, _ := e.start(t, "SHARED")
	second, seq := e.start(t, "SHARED")
	e.handled(t, seq)
	if got := e.hs.devicesOf("alice"); !slices.Equal(got, []string{"SHARED"}) {
		t.Fatalf("devices after two starts: %v", got)
	}

	e.handled(t, e.end(t, first))
	if got := e.hs.callsOf("delete_device"); len(got) != 0 {
		t.Fatalf("the device was deleted while another session holds it: %v", got)
	}
	if got := e.hs.devicesOf("alice"); !slices.Equal(got, []string{"SHARED"}) {
		t.Fatalf("devices after the first end: %v", got)
	}

	e.handled(t, e.end(t, second))
	if got := e.hs.devicesOf("alice"); len(got) != 0 {
		t.Fatalf("devices after the last end: %v, want none", got)
	}
}

// A change the homeserver refuses for good (a 4xx) is logged as an audit line
// and skipped: the events behind it go through.
func TestRefusedChangeIsSkippedAndLogged(t *testing.T) {
	e := setup(t, func(op, device string, _ int) int {
		if op == "upsert_device" && device == "REFUSED" {
			return http.StatusBadRequest
		}
		return 0
	})
	_, refusedSeq := e.start(t, "REFUSED")
	_, seq := e.start(t, "ACCEPTED")
	e.handled(t, seq)
	if got := e.hs.devicesOf("alice"); !slices.Equal(got, []string{"ACCEPTED"}) {
		t.Fatalf("devices: %v, want only ACCEPTED", got)
	}
	if n := len(e.hs.callsOf("upsert_device")); n != 2 {
		t.Fatalf("%d upsert_device calls, want 2 (a refusal is not retried)", n)
	}
	lines := e.logs.audits("homeserver_change_refused")
	if len(lines) != 1 {
		t.Fatalf("audit lines: %v, want one", lines)
	}
	if got := lines[0]["seq"]; got != float64(refusedSeq) || lines[0]["event"] != "gatehouse.events.v1.SessionStarted" {
		t.Fatalf("audit line %v, want seq %d of the SessionStarted", lines[0], refusedSeq)
	}
}

// While the homeserver answers 503, the event is tried again and nothing
// behind it moves; then both go through, in order.
func TestUnavailableHomeserverIsRetried(t *testing.T) {
	const outages = 2
	e := setup(t, func(op, device string, attempt int) int {
		if op == "upsert_device" && device == "FIRST" && attempt <= outages {
			return http.StatusServiceUnavailable
		}
		return 0
	})
	e.start(t, "FIRST")
	_, seq := e.start(t, "SECOND")
	e.handled(t, seq)
	var order []string
	for _, c := range e.hs.callsOf("upsert_device") {
		order = append(order, fmt.Sprintf("%s:%d", c.device, c.status))
	}
	want := []string{"FIRST:503", "FIRST:503", "FIRST:200", "SECOND:200"}
	if !slices.Equal(order, want) {
		t.Fatalf("upsert_device calls %v, want %v", order, want)
	}
	if got := e.hs.devicesOf("alice"); !slices.Equal(got, []string{"FIRST", "SECOND"}) {
		t.Fatalf("devices: %v", got)
	}
	if lines := e.logs.audits("homeserver_change_refused"); len(lines) != 0 {
		t.Fatalf("an outage was logged as a refusal: %v", lines)
	}
}

// Started makes the device at once, named after the client, and reports an
// outage without retrying it; with provisioning off it does nothing.
func TestStartedUpsertsTheDeviceAtOnce(t *testing.T) {
	e := setup(t, func(op, device string, _ int) int {
		if op == "upsert_device" && device == "DOWN" {
			return http.StatusServiceUnavailable
		}
		return 0
	})
	ev := &eventsv1.SessionStarted{SessionId: ids.New(), UserId: "user-alice", Username: "alice", DeviceId: "NOW", Kind: "oauth", ClientId: "client-1"}
	if err := e.p.Started(e.ctx, ev); err != nil {
		t.Fatal(err)
	}
	calls := e.hs.callsOf("upsert_device")
	if len(calls) != 1 || calls[0].device != "NOW" || calls[0].displayName != "Element" {
		t.Fatalf("upsert_device calls %v, want NOW named Element", calls)
	}
	if n := len(e.hs.callsOf("provision_user")); n != 1 {
		t.Fatalf("%d provision_user calls, want 1 (the user exists before its device)", n)
	}

	ev.DeviceId = "DOWN"
	err := e.p.Started(e.ctx, ev)
	if !homeserver.IsRetryable(err) {
		t.Fatalf("Started with the homeserver down: %v, want a retryable error", err)
	}
	if n := len(e.hs.callsOf("upsert_device")); n != 2 {
		t.Fatalf("%d upsert_device calls, want 2 (Started does not retry)", n)
	}

	var off *Provisioner
	if err := off.Started(e.ctx, ev); err != nil || off.Reactors() != nil {
		t.Fatalf("provisioning off: Started %v, Reactors %v", err, off.Reactors())
	}
}

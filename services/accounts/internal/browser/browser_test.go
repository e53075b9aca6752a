package browser

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/accounts/internal/user"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func record(seq uint64, at time.Time, ev proto.Message) eventlog.Record {
	env := &eventsv1.Envelope{Id: "ev", AggregateType: "browser", AggregateId: "s1", OccurredAt: timestamppb.New(at)}
	typeName := "gatehouse.events.v9.FromTheFuture"
	if ev != nil {
		typeName = string(ev.ProtoReflect().Descriptor().FullName())
	}
	env.Payload = &anypb.Any{TypeUrl: "type.googleapis.com/" + typeName}
	return eventlog.Record{Seq: seq, Subject: "accounts.browser.s1", Envelope: env, Event: ev}
}

var hash = HashSecret("secret")

func alice() user.State { return user.State{ID: "u1", Username: "alice", Version: 1} }

func started() State {
	return State{ID: "s1", UserID: "u1", SecretHash: hash, UserAgent: "Firefox", IPAddress: "192.0.2.1", StartedAt: t0, Version: 4}
}

func startCmd() StartCommand {
	return StartCommand{SessionID: "s1", SecretHash: hash, UserAgent: "Firefox", IPAddress: "192.0.2.1"}
}

func TestDecisions(t *testing.T) {
	tests := []struct {
		name      string
		decide    func() ([]proto.Message, error)
		want      []proto.Message
		wantErr   bool
		wantKind  errs.Kind
		wantField string
	}{
		{
			name:   "start",
			decide: func() ([]proto.Message, error) { return Start(State{}, alice(), startCmd()) },
			want: []proto.Message{&eventsv1.BrowserSessionStarted{
				SessionId: "s1", UserId: "u1", SecretHash: hash, UserAgent: "Firefox", IpAddress: "192.0.2.1",
			}},
		},
		{
			name: "start cleans the user agent and the address",
			decide: func() ([]proto.Message, error) {
				cmd := startCmd()
				cmd.UserAgent, cmd.IPAddress = " Evil\nAgent\xff ", "::ffff:192.0.2.7"
				return Start(State{}, alice(), cmd)
			},
			want: []proto.Message{&eventsv1.BrowserSessionStarted{
				SessionId: "s1", UserId: "u1", SecretHash: hash, UserAgent: "Evil Agent\uFFFD", IpAddress: "192.0.2.7",
			}},
		},
		{
			name: "start without address",
			decide: func() ([]proto.Message, error) {
				return Start(State{}, alice(), StartCommand{SessionID: "s1", SecretHash: hash})
			},
			want: []proto.Message{&eventsv1.BrowserSessionStarted{SessionId: "s1", UserId: "u1", SecretHash: hash}},
		},
		{
			name:     "start for unknown user",
			decide:   func() ([]proto.Message, error) { return Start(State{}, user.State{}, startCmd()) },
			wantErr:  true,
			wantKind: errs.KindNotFound,
		},
		{
			name: "start for locked user",
			decide: func() ([]proto.Message, error) {
				u := alice()
				u.Locked = true
				return Start(State{}, u, startCmd())
			},
			wantErr:  true,
			wantKind: errs.KindFailedPrecondition,
		},
		{
			name: "start for deactivated user",
			decide: func() ([]proto.Message, error) {
				u := alice()
				u.Deactivated = true
				return Start(State{}, u, startCmd())
			},
			wantErr:  true,
			wantKind: errs.KindFailedPrecondition,
		},
		{
			name: "start with bad address",
			decide: func() ([]proto.Message, error) {
				cmd := startCmd()
				cmd.IPAddress = "localhost"
				return Start(State{}, alice(), cmd)
			},
			wantErr: true, wantKind: errs.KindInvalid, wantField: "ip_address",
		},
		{
			name:     "start an existing session",
			decide:   func() ([]proto.Message, error) { return Start(started(), alice(), startCmd()) },
			wantErr:  true,
			wantKind: errs.KindAlreadyExists,
		},
		{
			name: "start without secret hash",
			decide: func() ([]proto.Message, error) {
				cmd := startCmd()
				cmd.SecretHash = "secret"
				return Start(State{}, alice(), cmd)
			},
			wantErr:  true,
			wantKind: errs.KindInternal,
		},
		{
			name:   "end",
			decide: func() ([]proto.Message, error) { return End(started(), ReasonLogout) },
			want:   []proto.Message{&eventsv1.BrowserSessionEnded{SessionId: "s1", UserId: "u1", Reason: "logout"}},
		},
		{
			name: "end an ended session",
			decide: func() ([]proto.Message, error) {
				s := started()
				s.Ended, s.EndReason = true, ReasonLogout
				return End(s, ReasonDeactivated)
			},
		},
		{
			name:     "end unknown session",
			decide:   func() ([]proto.Message, error) { return End(State{}, ReasonLogout) },
			wantErr:  true,
			wantKind: errs.KindNotFound,
		},
		{
			name:     "end without reason",
			decide:   func() ([]proto.Message, error) { return End(started(), "") },
			wantErr:  true,
			wantKind: errs.KindInternal,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.decide()
			if tt.wantErr {
				if errs.KindOf(err) != tt.wantKind || errs.FieldOf(err) != tt.wantField {
					t.Fatalf("error = %v (kind %v, field %q), want kind %v field %q", err, errs.KindOf(err), errs.FieldOf(err), tt.wantKind, tt.wantField)
				}
				if tt.wantKind != errs.KindInternal && errs.PublicMessage(err) == errs.PublicMessage(&errs.Error{Kind: tt.wantKind}) {
					t.Errorf("public message %q is the kind's default", errs.PublicMessage(err))
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("events = %v, want %v", got, tt.want)
			}
			for i := range got {
				if !proto.Equal(got[i], tt.want[i]) {
					t.Errorf("event %d = %v, want %v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestFold(t *testing.T) {
	start := record(4, t0, &eventsv1.BrowserSessionStarted{
		SessionId: "s1", UserId: "u1", SecretHash: hash, UserAgent: "Firefox", IpAddress: "192.0.2.1",
	})
	ended := func(seq uint64, reason string) eventlog.Record {
		return record(seq, t0.Add(time.Hour), &eventsv1.BrowserSessionEnded{SessionId: "s1", UserId: "u1", Reason: reason})
	}
	tests := []struct {
		name    string
		history []eventlog.Record
		want    State
	}{
		{name: "empty", want: State{}},
		{name: "started", history: []eventlog.Record{start}, want: started()},
		{
			name:    "ended",
			history: []eventlog.Record{start, ended(9, "logout")},
			want:    func() State { s := started(); s.Ended, s.EndReason, s.Version = true, "logout", 9; return s }(),
		},
		{
			name:    "ended twice keeps the first reason",
			history: []eventlog.Record{start, ended(9, "logout"), ended(11, "deactivated")},
			want:    func() State { s := started(); s.Ended, s.EndReason, s.Version = true, "logout", 11; return s }(),
		},
		{
			name:    "unknown event advances the version",
			history: []eventlog.Record{start, record(12, t0, nil)},
			want:    func() State { s := started(); s.Version = 12; return s }(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Fold(tt.history)
			if !got.StartedAt.Equal(tt.want.StartedAt) {
				t.Fatalf("StartedAt = %v, want %v", got.StartedAt, tt.want.StartedAt)
			}
			got.StartedAt, tt.want.StartedAt = time.Time{}, time.Time{}
			if got != tt.want {
				t.Errorf("Fold() = %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestSecrets(t *testing.T) {
	a, ha := NewSecret()
	b, hb := NewSecret()
	if a == b || ha == hb {
		t.Fatal("two secrets are equal")
	}
	if len(a) != 43 || !WellFormedSecret(a) || HashSecret(a) != ha || len(ha) != 64 {
		t.Fatalf("secret %q hash %q", a, ha)
	}
	if strings.Contains(ha, a) {
		t.Fatal("hash contains the secret")
	}
	for _, bad := range []string{"", "short", a + "A", a[:42] + "=", a[:42] + "+", strings.Repeat("é", 21) + "a"} {
		if WellFormedSecret(bad) {
			t.Errorf("WellFormedSecret(%q) = true", bad)
		}
	}
}

func TestNormalizeIP(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"192.0.2.1", "192.0.2.1"},
		{"2001:DB8::1", "2001:db8::1"},
		{"::ffff:192.0.2.1", "192.0.2.1"},
	}
	for _, tt := range tests {
		if got, err := NormalizeIP(tt.in); err != nil || got != tt.want {
			t.Errorf("NormalizeIP(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"localhost", "192.0.2.1:80", "300.1.1.1", " 192.0.2.1"} {
		if _, err := NormalizeIP(bad); errs.KindOf(err) != errs.KindInvalid || errs.FieldOf(err) != "ip_address" {
			t.Errorf("NormalizeIP(%q) error = %v", bad, err)
		}
	}
}

func TestCleanUserAgent(t *testing.T) {
	long := strings.Repeat("é", MaxUserAgentLength) // 2 bytes each
	tests := []struct{ name, in, want string }{
		{"plain", "Mozilla/5.0 (X11; Linux x86_64)", "Mozilla/5.0 (X11; Linux x86_64)"},
		{"controls", "a\tb\r\nc\x00", "a b  c"},
		{"invalid UTF-8", "a\xffb", "a\uFFFDb"},
		{"long", long, strings.Repeat("é", MaxUserAgentLength/2)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CleanUserAgent(tt.in); got != tt.want {
				t.Errorf("CleanUserAgent(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
	odd := "a" + long // cut falls inside a character
	if got := CleanUserAgent(odd); len(got) > MaxUserAgentLength || !strings.HasPrefix(got, "aé") || !utf8Valid(got) {
		t.Errorf("CleanUserAgent cut badly: %d bytes", len(got))
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "?") == s }

func TestLive(t *testing.T) {
	tests := []struct {
		name             string
		started, lastAct time.Time
		now              time.Time
		want             bool
	}{
		{"fresh", t0, t0, t0.Add(time.Minute), true},
		{"idle just under the limit", t0, t0, t0.Add(MaxIdle - time.Second), true},
		{"idle at the limit", t0, t0, t0.Add(MaxIdle), false},
		{"busy but old", t0, t0.Add(MaxAge - time.Hour), t0.Add(MaxAge), false},
		{"busy and young", t0, t0.Add(20 * 24 * time.Hour), t0.Add(25 * 24 * time.Hour), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Live(tt.started, tt.lastAct, tt.now); got != tt.want {
				t.Errorf("Live = %v, want %v", got, tt.want)
			}
		})
	}
}

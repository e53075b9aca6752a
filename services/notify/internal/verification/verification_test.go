package verification

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

const (
	vid  = "01JABCDEFGHJKMNPQRSTVWXYZ0"
	uid  = "01JZZZZZZZZZZZZZZZZZZZZZZZ"
	reg  = eventsv1.VerificationPurpose_VERIFICATION_PURPOSE_REGISTRATION
	add  = eventsv1.VerificationPurpose_VERIFICATION_PURPOSE_ADD_EMAIL
	reco = eventsv1.VerificationPurpose_VERIFICATION_PURPOSE_RECOVERY
)

var (
	key = Key(bytes.Repeat([]byte{7}, KeySize))
	t0  = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
)

// record wraps an event as the log returns it.
func record(seq uint64, at time.Time, ev proto.Message) eventlog.Record {
	env := &eventsv1.Envelope{Id: "ev", AggregateType: "verification", AggregateId: vid, OccurredAt: timestamppb.New(at)}
	env.Payload = &anypb.Any{TypeUrl: "type.googleapis.com/" + string(ev.ProtoReflect().Descriptor().FullName())}
	return eventlog.Record{Seq: seq, Subject: "notify.verification." + vid, Envelope: env, Event: ev}
}

// history folds events decided at the given times into a state.
type step struct {
	at time.Time
	ev proto.Message
}

func fold(steps ...step) State {
	var recs []eventlog.Record
	for i, s := range steps {
		recs = append(recs, record(uint64(i+1), s.at, s.ev))
	}
	return Fold(recs)
}

// started is a verification of purpose started at t0.
func started(t *testing.T, purpose eventsv1.VerificationPurpose, userID string) []step {
	t.Helper()
	evs, err := Start(State{}, StartCommand{ID: vid, Email: "Alice@Example.org", Purpose: purpose, UserID: userID, Locale: "en"}, key, t0)
	if err != nil || len(evs) != 1 {
		t.Fatalf("Start = %v, %v", evs, err)
	}
	return []step{{t0, evs[0]}}
}

// then appends the events of one decision made at at.
func then(t *testing.T, steps []step, at time.Time, decide func(State) ([]proto.Message, error)) []step {
	t.Helper()
	evs, _ := decide(fold(steps...))
	out := append([]step(nil), steps...)
	for _, ev := range evs {
		out = append(out, step{at, ev})
	}
	return out
}

func reissue(at time.Time) func(State) ([]proto.Message, error) {
	return func(s State) ([]proto.Message, error) { return Reissue(s, key, at) }
}

func wrongCode(at time.Time) func(State) ([]proto.Message, error) {
	return func(s State) ([]proto.Message, error) {
		code := "000000"
		if key.Code(s.ID, s.Issue) == code {
			code = "000001"
		}
		return CheckCode(s, code, key, at)
	}
}

func TestCodesAndTickets(t *testing.T) {
	c1 := key.Code(vid, 1)
	if len(c1) != CodeLength || strings.Trim(c1, "0123456789") != "" {
		t.Fatalf("code %q is not %d digits", c1, CodeLength)
	}
	if key.Code(vid, 1) != c1 {
		t.Error("codes are not deterministic")
	}
	t1 := key.Ticket(vid, 1)
	if err := ValidateTicket(t1); err != nil {
		t.Fatalf("ticket %q: %v", t1, err)
	}
	other := Key(bytes.Repeat([]byte{8}, KeySize))
	for name, pair := range map[string][2]string{
		"code of another issue":       {c1, key.Code(vid, 2)},
		"code of another id":          {c1, key.Code("01JABCDEFGHJKMNPQRSTVWXYZ1", 1)},
		"code under another key":      {c1, other.Code(vid, 1)},
		"ticket of another issue":     {t1, key.Ticket(vid, 2)},
		"ticket under another key":    {t1, other.Ticket(vid, 1)},
		"code hash of another id":     {CodeHash(vid, c1), CodeHash(uid, c1)},
		"ticket hash of other ticket": {TicketHash(t1), TicketHash(key.Ticket(vid, 2))},
	} {
		if pair[0] == pair[1] {
			t.Errorf("%s: both %q", name, pair[0])
		}
	}
}

// TestCodesAreUniform checks each digit position with a chi-squared test
// over many derived codes (df = 9; 27.9 is the 0.1% critical value).
func TestCodesAreUniform(t *testing.T) {
	const n = 20000
	var counts [CodeLength][10]int
	for i := range n {
		code := key.Code(vid, uint32(i))
		for p := range CodeLength {
			counts[p][code[p]-'0']++
		}
	}
	for p := range CodeLength {
		chi := 0.0
		for _, c := range counts[p] {
			d := float64(c) - n/10.0
			chi += d * d / (n / 10.0)
		}
		if chi > 27.9 {
			t.Errorf("digit %d: chi-squared %.1f, counts %v", p, chi, counts[p])
		}
	}
}

func TestValidation(t *testing.T) {
	tests := []struct {
		name  string
		err   error
		field string
	}{
		{"empty id", ValidateID(""), "verification_id"},
		{"bad id", ValidateID("abc"), "verification_id"},
		{"lower-case id", ValidateID(strings.ToLower(vid)), "verification_id"},
		{"empty code", func() error { _, err := NormalizeCode(""); return err }(), "code"},
		{"short code", func() error { _, err := NormalizeCode("12345"); return err }(), "code"},
		{"letters in code", func() error { _, err := NormalizeCode("12a456"); return err }(), "code"},
		{"unicode digits in code", func() error { _, err := NormalizeCode("١٢٣٤٥٦"); return err }(), "code"},
		{"empty ticket", ValidateTicket(""), "ticket"},
		{"short ticket", ValidateTicket("abc"), "ticket"},
		{"ticket with symbol", ValidateTicket(strings.Repeat("a", 31) + "/"), "ticket"},
		{"locale", ValidateLocale("en_US"), "locale"},
		{"long locale", ValidateLocale("en-" + strings.Repeat("a", 40)), "locale"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { assertError(t, tt.err, errs.KindInvalid, tt.field) })
	}
	for _, ok := range []string{"en", "pt-BR", "zh-Hant-TW", ""} {
		if err := ValidateLocale(ok); err != nil {
			t.Errorf("locale %q: %v", ok, err)
		}
	}
	if code, err := NormalizeCode(" 123 456 "); err != nil || code != "123456" {
		t.Errorf("NormalizeCode with spaces = %q, %v", code, err)
	}
	if code, err := NormalizeCode("123-456"); err != nil || code != "123456" {
		t.Errorf("NormalizeCode with hyphen = %q, %v", code, err)
	}
}

func TestStart(t *testing.T) {
	exp, at0 := timestamppb.New(t0.Add(CodeTTL)), timestamppb.New(t0)
	tests := []struct {
		name      string
		state     State
		cmd       StartCommand
		key       Key
		want      proto.Message
		wantKind  errs.Kind
		wantField string
	}{
		{
			name: "registration",
			cmd:  StartCommand{ID: vid, Email: " Alice@Example.ORG ", Purpose: reg, Locale: "en"},
			want: &eventsv1.VerificationStarted{VerificationId: vid, Email: "alice@example.org", Purpose: reg,
				ExpiresAt: exp, Locale: "en", IssuedAt: at0},
		},
		{
			name: "add email",
			cmd:  StartCommand{ID: vid, Email: "alice@example.org", Purpose: add, UserID: uid},
			want: &eventsv1.VerificationStarted{VerificationId: vid, Email: "alice@example.org", Purpose: add, UserId: uid,
				ExpiresAt: exp, IssuedAt: at0},
		},
		{
			name: "recovery of an account",
			cmd:  StartCommand{ID: vid, Email: "alice@example.org", Purpose: reco, UserID: uid},
			want: &eventsv1.VerificationStarted{VerificationId: vid, Email: "alice@example.org", Purpose: reco, UserId: uid,
				TicketHash: TicketHash(key.Ticket(vid, 1)), ExpiresAt: timestamppb.New(t0.Add(TicketTTL)), IssuedAt: at0},
		},
		{
			name: "recovery of an unknown address records no ticket",
			cmd:  StartCommand{ID: vid, Email: "nobody@example.org", Purpose: reco},
			want: &eventsv1.VerificationStarted{VerificationId: vid, Email: "nobody@example.org", Purpose: reco,
				ExpiresAt: timestamppb.New(t0.Add(TicketTTL)), IssuedAt: at0},
		},
		{name: "no purpose", cmd: StartCommand{ID: vid, Email: "a@example.org"}, wantKind: errs.KindInvalid, wantField: "purpose"},
		{name: "unknown purpose", cmd: StartCommand{ID: vid, Email: "a@example.org", Purpose: 42}, wantKind: errs.KindInvalid, wantField: "purpose"},
		{name: "bad email", cmd: StartCommand{ID: vid, Email: "alice", Purpose: reg}, wantKind: errs.KindInvalid, wantField: "email"},
		{name: "email with name", cmd: StartCommand{ID: vid, Email: "Alice <a@example.org>", Purpose: reg}, wantKind: errs.KindInvalid, wantField: "email"},
		{name: "email header injection", cmd: StartCommand{ID: vid, Email: "a@example.org\r\nBcc: x@example.org", Purpose: reg}, wantKind: errs.KindInvalid, wantField: "email"},
		{name: "long email", cmd: StartCommand{ID: vid, Email: strings.Repeat("a", 250) + "@x.org", Purpose: reg}, wantKind: errs.KindInvalid, wantField: "email"},
		{name: "add email without user", cmd: StartCommand{ID: vid, Email: "a@example.org", Purpose: add}, wantKind: errs.KindInvalid, wantField: "user_id"},
		{name: "bad user id", cmd: StartCommand{ID: vid, Email: "a@example.org", Purpose: reco, UserID: "alice"}, wantKind: errs.KindInvalid, wantField: "user_id"},
		{name: "bad locale", cmd: StartCommand{ID: vid, Email: "a@example.org", Purpose: reg, Locale: "../../etc"}, wantKind: errs.KindInvalid, wantField: "locale"},
		{name: "started twice", state: State{Issue: 1}, cmd: StartCommand{ID: vid, Email: "a@example.org", Purpose: reg}, wantKind: errs.KindAlreadyExists},
		{name: "no id", cmd: StartCommand{Email: "a@example.org", Purpose: reg}, wantKind: errs.KindInternal},
		{name: "short key", cmd: StartCommand{ID: vid, Email: "a@example.org", Purpose: reg}, key: Key("short"), wantKind: errs.KindInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := key
			if tt.key != nil {
				k = tt.key
			}
			got, err := Start(tt.state, tt.cmd, k, t0)
			if tt.want == nil {
				assertError(t, err, tt.wantKind, tt.wantField)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			assertEvents(t, got, tt.want)
		})
	}
}

func TestReissue(t *testing.T) {
	code := started(t, reg, "")
	later := t0.Add(ResendInterval)
	fiveResends := code
	for i := range MaxResends {
		fiveResends = then(t, fiveResends, t0.Add(time.Duration(i+1)*time.Minute), reissue(t0.Add(time.Duration(i+1)*time.Minute)))
	}
	locked := code
	for range MaxAttempts {
		locked = then(t, locked, t0, wrongCode(t0))
	}
	confirmed := then(t, code, t0, func(s State) ([]proto.Message, error) { return CheckCode(s, key.Code(vid, 1), key, t0) })

	tests := []struct {
		name     string
		steps    []step
		at       time.Time
		want     proto.Message
		wantKind errs.Kind
		wantMsg  string
	}{
		{name: "after the interval", steps: code, at: later, want: &eventsv1.VerificationCodeReissued{
			VerificationId: vid, Issue: 2, ExpiresAt: timestamppb.New(later.Add(CodeTTL)), IssuedAt: timestamppb.New(later)}},
		{name: "after expiry", steps: code, at: t0.Add(time.Hour), want: &eventsv1.VerificationCodeReissued{
			VerificationId: vid, Issue: 2, ExpiresAt: timestamppb.New(t0.Add(time.Hour + CodeTTL)), IssuedAt: timestamppb.New(t0.Add(time.Hour))}},
		{name: "recovery", steps: started(t, reco, uid), at: later, want: &eventsv1.VerificationCodeReissued{
			VerificationId: vid, Issue: 2, TicketHash: TicketHash(key.Ticket(vid, 2)), ExpiresAt: timestamppb.New(later.Add(TicketTTL)), IssuedAt: timestamppb.New(later)}},
		{name: "recovery of unknown address", steps: started(t, reco, ""), at: later, want: &eventsv1.VerificationCodeReissued{
			VerificationId: vid, Issue: 2, ExpiresAt: timestamppb.New(later.Add(TicketTTL)), IssuedAt: timestamppb.New(later)}},
		{name: "too soon", steps: code, at: t0.Add(ResendInterval - 1500*time.Millisecond), wantKind: errs.KindRateLimited, wantMsg: "Wait 2 seconds"},
		{name: "too many", steps: fiveResends, at: t0.Add(time.Hour), wantKind: errs.KindFailedPrecondition, wantMsg: "No more than 5"},
		{name: "locked", steps: locked, at: later, wantKind: errs.KindFailedPrecondition, wantMsg: "Too many wrong codes"},
		{name: "confirmed", steps: confirmed, at: later, wantKind: errs.KindFailedPrecondition, wantMsg: "already been verified"},
		{name: "unknown", at: later, wantKind: errs.KindNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Reissue(fold(tt.steps...), key, tt.at)
			if tt.want == nil {
				assertError(t, err, tt.wantKind, "")
				if !strings.Contains(errs.PublicMessage(err), tt.wantMsg) {
					t.Errorf("message %q lacks %q", errs.PublicMessage(err), tt.wantMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			assertEvents(t, got, tt.want)
		})
	}
	if s := fold(fiveResends...); s.Issue != MaxResends+1 || s.ResendsLeft() != 0 {
		t.Errorf("after %d resends: issue %d, %d left", MaxResends, s.Issue, s.ResendsLeft())
	}
}

func TestCheckCode(t *testing.T) {
	code := started(t, reg, "")
	resent := then(t, code, t0.Add(time.Minute), reissue(t0.Add(time.Minute)))
	oneWrong := then(t, code, t0, wrongCode(t0))
	fourWrong := code
	for range MaxAttempts - 1 {
		fourWrong = then(t, fourWrong, t0, wrongCode(t0))
	}
	locked := then(t, fourWrong, t0, wrongCode(t0))
	confirmed := then(t, code, t0, func(s State) ([]proto.Message, error) { return CheckCode(s, key.Code(vid, 1), key, t0) })
	right1, right2 := key.Code(vid, 1), key.Code(vid, 2)
	wrong := "000000"
	if wrong == right1 || wrong == right2 {
		wrong = "000001"
	}
	confirm := &eventsv1.VerificationConfirmed{VerificationId: vid, Email: "alice@example.org", Purpose: reg}

	tests := []struct {
		name      string
		steps     []step
		code      string
		at        time.Time
		want      proto.Message // appended, with or without an error
		wantKind  errs.Kind     // KindInternal (zero) with want: success
		wantField string
		wantMsg   string
	}{
		{name: "right code", steps: code, code: right1, at: t0.Add(time.Minute), want: confirm},
		{name: "right code with spaces", steps: code, code: right1[:3] + " " + right1[3:], at: t0, want: confirm},
		{name: "right code after a wrong one", steps: oneWrong, code: right1, at: t0, want: confirm},
		{name: "new code after resend", steps: resent, code: right2, at: t0.Add(time.Minute), want: confirm},
		{name: "old code after resend", steps: resent, code: right1, at: t0.Add(time.Minute),
			want: &eventsv1.VerificationAttemptFailed{VerificationId: vid, Attempts: 1}, wantKind: errs.KindInvalid, wantField: "code", wantMsg: "4 attempts left"},
		{name: "wrong code", steps: code, code: wrong, at: t0,
			want: &eventsv1.VerificationAttemptFailed{VerificationId: vid, Attempts: 1}, wantKind: errs.KindInvalid, wantField: "code", wantMsg: "4 attempts left"},
		{name: "fifth wrong code", steps: fourWrong, code: wrong, at: t0,
			want: &eventsv1.VerificationAttemptFailed{VerificationId: vid, Attempts: 5}, wantKind: errs.KindInvalid, wantField: "code", wantMsg: "no attempts left"},
		{name: "right code when locked", steps: locked, code: right1, at: t0, wantKind: errs.KindFailedPrecondition, wantMsg: "Too many wrong codes"},
		{name: "expired", steps: code, code: right1, at: t0.Add(CodeTTL), wantKind: errs.KindFailedPrecondition, wantMsg: "expired"},
		{name: "used", steps: confirmed, code: right1, at: t0, wantKind: errs.KindFailedPrecondition, wantMsg: "already been used"},
		{name: "recovery has no code", steps: started(t, reco, uid), code: right1, at: t0, wantKind: errs.KindFailedPrecondition, wantMsg: "link"},
		{name: "malformed code is no attempt", steps: code, code: "12345", at: t0, wantKind: errs.KindInvalid, wantField: "code"},
		{name: "unknown", code: right1, at: t0, wantKind: errs.KindNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CheckCode(fold(tt.steps...), tt.code, key, tt.at)
			if tt.want != nil {
				assertEvents(t, got, tt.want)
			} else if len(got) != 0 {
				t.Errorf("events = %v, want none", got)
			}
			if tt.wantKind == errs.KindInternal {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			assertError(t, err, tt.wantKind, tt.wantField)
			if !strings.Contains(errs.PublicMessage(err), tt.wantMsg) {
				t.Errorf("message %q lacks %q", errs.PublicMessage(err), tt.wantMsg)
			}
		})
	}
}

func TestCheckTicket(t *testing.T) {
	rec := started(t, reco, uid)
	resent := then(t, rec, t0.Add(time.Minute), reissue(t0.Add(time.Minute)))
	used := then(t, rec, t0, func(s State) ([]proto.Message, error) { return CheckTicket(s, key.Ticket(vid, 1), t0) })
	confirm := &eventsv1.VerificationConfirmed{VerificationId: vid, Email: "alice@example.org", Purpose: reco, UserId: uid}
	tests := []struct {
		name     string
		steps    []step
		ticket   string
		at       time.Time
		want     proto.Message
		wantKind errs.Kind
		wantMsg  string
	}{
		{name: "right ticket", steps: rec, ticket: key.Ticket(vid, 1), at: t0.Add(9 * time.Minute), want: confirm},
		{name: "new ticket after resend", steps: resent, ticket: key.Ticket(vid, 2), at: t0.Add(time.Minute), want: confirm},
		{name: "old ticket after resend", steps: resent, ticket: key.Ticket(vid, 1), at: t0.Add(time.Minute), wantKind: errs.KindFailedPrecondition, wantMsg: "replaced"},
		{name: "expired", steps: rec, ticket: key.Ticket(vid, 1), at: t0.Add(TicketTTL), wantKind: errs.KindFailedPrecondition, wantMsg: "expired"},
		{name: "used", steps: used, ticket: key.Ticket(vid, 1), at: t0, wantKind: errs.KindFailedPrecondition, wantMsg: "already been used"},
		{name: "unknown address has no ticket", steps: started(t, reco, ""), ticket: key.Ticket(vid, 1), at: t0, wantKind: errs.KindNotFound},
		{name: "code verification", steps: started(t, reg, ""), ticket: key.Ticket(vid, 1), at: t0, wantKind: errs.KindNotFound},
		{name: "malformed", steps: rec, ticket: "short", at: t0, wantKind: errs.KindInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CheckTicket(fold(tt.steps...), tt.ticket, tt.at)
			if tt.want != nil {
				if err != nil {
					t.Fatal(err)
				}
				assertEvents(t, got, tt.want)
				return
			}
			field := ""
			if tt.wantKind == errs.KindInvalid {
				field = "ticket"
			}
			assertError(t, err, tt.wantKind, field)
			if !strings.Contains(errs.PublicMessage(err), tt.wantMsg) {
				t.Errorf("message %q lacks %q", errs.PublicMessage(err), tt.wantMsg)
			}
		})
	}
}

func TestDelivery(t *testing.T) {
	code := started(t, reg, "")
	delivered := append(append([]step(nil), code...), step{t0, &eventsv1.EmailDelivered{VerificationId: vid, Issue: 1, MessageId: "<m1>"}})
	refused := append(append([]step(nil), code...), step{t0, &eventsv1.EmailDeliveryFailed{VerificationId: vid, Issue: 1, Reason: "550 no such user"}})
	resent := then(t, code, t0.Add(time.Minute), reissue(t0.Add(time.Minute)))
	confirmed := then(t, code, t0, func(s State) ([]proto.Message, error) { return CheckCode(s, key.Code(vid, 1), key, t0) })
	locked := code
	for range MaxAttempts {
		locked = then(t, locked, t0, wrongCode(t0))
	}
	tests := []struct {
		name  string
		steps []step
		issue uint32
		at    time.Time
		want  bool
		why   string
	}{
		{"fresh", code, 1, t0, true, ""},
		{"recovery of an account", started(t, reco, uid), 1, t0, true, ""},
		{"delivered", delivered, 1, t0, false, "already delivered"},
		{"refused", refused, 1, t0, false, "refused"},
		{"superseded", resent, 1, t0.Add(time.Minute), false, "superseded"},
		{"reissued", resent, 2, t0.Add(time.Minute), true, ""},
		{"unknown address", started(t, reco, ""), 1, t0, false, "no account"},
		{"confirmed", confirmed, 1, t0, false, "confirmed"},
		{"locked", locked, 1, t0, false, "locked"},
		{"expired", code, 1, t0.Add(CodeTTL), false, "expired"},
		{"no verification", nil, 1, t0, false, "no such"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := ShouldDeliver(fold(tt.steps...), tt.issue, tt.at)
			if got != tt.want || !strings.Contains(why, tt.why) {
				t.Errorf("ShouldDeliver = %v, %q; want %v, %q", got, why, tt.want, tt.why)
			}
		})
	}

	s := fold(code...)
	assertEvents(t, Delivered(s, 1, "<m1>"), &eventsv1.EmailDelivered{VerificationId: vid, Issue: 1, MessageId: "<m1>"})
	assertEvents(t, DeliveryFailed(s, 1, "550"), &eventsv1.EmailDeliveryFailed{VerificationId: vid, Issue: 1, Reason: "550"})
	for name, evs := range map[string][]proto.Message{
		"delivered twice":         Delivered(fold(delivered...), 1, "<m1>"),
		"failed after delivery":   DeliveryFailed(fold(delivered...), 1, "550"),
		"delivered after refusal": Delivered(fold(refused...), 1, "<m1>"),
		"issue not yet made":      Delivered(s, 2, "<m2>"),
		"issue zero":              Delivered(s, 0, "<m0>"),
	} {
		if len(evs) != 0 {
			t.Errorf("%s: decided %v, want nothing", name, evs)
		}
	}
	if got := fold(delivered...).Delivered[1]; got != "<m1>" {
		t.Errorf("delivered message id = %q", got)
	}
}

// assertError checks that err is an errs error of kind, naming field, with a
// public message.
func assertError(t *testing.T, err error, kind errs.Kind, field string) {
	t.Helper()
	if err == nil {
		t.Fatalf("error = nil, want kind %v", kind)
	}
	if got := errs.KindOf(err); got != kind {
		t.Errorf("kind = %v, want %v (error %v)", got, kind, err)
	}
	if got := errs.FieldOf(err); got != field {
		t.Errorf("field = %q, want %q", got, field)
	}
	if generic := errs.PublicMessage(&errs.Error{Kind: kind}); kind != errs.KindInternal && errs.PublicMessage(err) == generic {
		t.Errorf("public message %q is the kind's default", generic)
	}
}

// assertEvents compares decided events with the expected ones.
func assertEvents(t *testing.T, got []proto.Message, want ...proto.Message) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("events = %v, want %v", got, want)
	}
	for i := range got {
		if !proto.Equal(got[i], want[i]) {
			t.Errorf("event %d = %v\nwant %v", i, got[i], want[i])
		}
	}
}

// Events record nothing of a code: a code is checked by deriving it again
// from the key. Codes issued by a version that recorded a (brute-forceable)
// hash still check against that hash, whatever the key is now.
func TestCodesAreNotRecorded(t *testing.T) {
	steps := started(t, reg, "")
	ev := steps[0].ev.(*eventsv1.VerificationStarted)
	raw, _ := proto.Marshal(ev)
	if ev.GetCodeHash() != "" || bytes.Contains(raw, []byte(key.Code(vid, 1))) {
		t.Fatalf("the started event records the code: %v", ev)
	}
	other := Key(bytes.Repeat([]byte{9}, KeySize))
	if _, err := CheckCode(fold(steps...), key.Code(vid, 1), other, t0); errs.KindOf(err) != errs.KindInvalid {
		t.Fatalf("the code of another key: %v", err)
	}
	if got, err := CheckCode(fold(steps...), key.Code(vid, 1), key, t0); err != nil || len(got) != 1 {
		t.Fatalf("the right code: %v, %v", got, err)
	}

	legacy := &eventsv1.VerificationStarted{VerificationId: vid, Email: "alice@example.org", Purpose: reg,
		CodeHash: CodeHash(vid, "314159"), ExpiresAt: timestamppb.New(t0.Add(CodeTTL)), IssuedAt: timestamppb.New(t0)}
	old := fold(step{t0, legacy})
	if got, err := CheckCode(old, "314159", other, t0); err != nil || len(got) != 1 {
		t.Fatalf("a code recorded by its hash, checked after the key changed: %v, %v", got, err)
	}
	if _, err := CheckCode(old, key.Code(vid, 1), key, t0); errs.KindOf(err) != errs.KindInvalid {
		t.Fatalf("a derived code replaced the recorded hash: %v", err)
	}
}

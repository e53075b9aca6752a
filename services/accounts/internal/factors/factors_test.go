package factors

import (
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// fold applies events as records at now, one second apart.
func fold(now time.Time, events ...proto.Message) State {
	var s State
	for i, ev := range events {
		s.Apply(eventlog.Record{Seq: uint64(i + 1), Event: ev, Envelope: &eventsv1.Envelope{OccurredAt: timestamppb.New(now.Add(time.Duration(i) * time.Second))}})
	}
	return s
}

func code(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totpOpts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTOTPWindowIsOneStepEachSide(t *testing.T) {
	secret, uri, err := NewTOTP("Gatehouse", "@alice:example.org")
	if err != nil {
		t.Fatal(err)
	}
	if len(secret) != 32 || uri == "" {
		t.Fatalf("secret %q (want 160 bits in base32), uri %q", secret, uri)
	}
	now := time.Unix(1_800_000_000, 0)
	current := now.Unix() / 30
	for _, tc := range []struct {
		name   string
		offset time.Duration
		ok     bool
		step   int64
	}{
		{"current step", 0, true, current},
		{"one step behind", -30 * time.Second, true, current - 1},
		{"one step ahead", 30 * time.Second, true, current + 1},
		{"two steps behind", -60 * time.Second, false, 0},
		{"two steps ahead", 60 * time.Second, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			step, ok := CheckTOTP(secret, code(t, secret, now.Add(tc.offset)), now)
			if ok != tc.ok || ok && step != tc.step {
				t.Fatalf("CheckTOTP = %d, %v; want %d, %v", step, ok, tc.step, tc.ok)
			}
		})
	}
	for _, bad := range []string{"", "12345", "1234567", "abcdef"} {
		if _, ok := CheckTOTP(secret, bad, now); ok {
			t.Errorf("code %q accepted", bad)
		}
	}
	if _, ok := CheckTOTP("", "123456", now); ok {
		t.Error("a code accepted without a secret")
	}
}

func TestTOTPStepIsSpentOnce(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	s := fold(now, &eventsv1.TOTPEnabled{UserId: "u", Secret: "S", Step: 100})
	if _, err := UseTOTP(s, 100); errs.KindOf(err) != errs.KindUnauthenticated {
		t.Fatalf("the enrolment's step again: %v", err)
	}
	evs, err := UseTOTP(s, 101)
	if err != nil || len(evs) != 1 {
		t.Fatalf("next step: %v %v", evs, err)
	}
	s = fold(now, &eventsv1.TOTPEnabled{UserId: "u", Secret: "S", Step: 100}, evs[0])
	for _, step := range []int64{99, 100, 101} {
		if _, err := UseTOTP(s, step); errs.KindOf(err) != errs.KindUnauthenticated {
			t.Errorf("step %d after 101 was spent: %v", step, err)
		}
	}
	if _, err := UseTOTP(s, 102); err != nil {
		t.Errorf("step 102: %v", err)
	}
	if _, err := UseTOTP(State{}, 5); errs.KindOf(err) != errs.KindFailedPrecondition {
		t.Errorf("without TOTP: %v", err)
	}
}

func TestRecoveryCodesAreSpentOnce(t *testing.T) {
	now := time.Now()
	hashes := []string{"h0", "h1", "h2", "h3", "h4", "h5", "h6", "h7", "h8", "h9"}
	if _, err := GenerateRecoveryCodes("u", hashes[:9], Notice{}); err == nil {
		t.Fatal("nine codes accepted")
	}
	gen, err := GenerateRecoveryCodes("u", hashes, Notice{})
	if err != nil {
		t.Fatal(err)
	}
	s := fold(now, gen[0])
	used, err := UseRecoveryCode(s, 4, Notice{})
	if err != nil {
		t.Fatal(err)
	}
	s = fold(now, gen[0], used[0])
	if s.RecoveryCodesLeft() != 9 {
		t.Fatalf("%d codes left", s.RecoveryCodesLeft())
	}
	for _, i := range []int{4, -1, 10} {
		if _, err := UseRecoveryCode(s, i, Notice{}); errs.KindOf(err) != errs.KindUnauthenticated {
			t.Errorf("code %d: %v", i, err)
		}
	}
	// New codes replace the old ones as a whole.
	s = fold(now, gen[0], used[0], gen[0])
	if s.RecoveryCodesLeft() != 10 {
		t.Fatalf("after new codes, %d left", s.RecoveryCodesLeft())
	}
}

func TestPasskeyUseRules(t *testing.T) {
	now := time.Now()
	added := &eventsv1.PasskeyAdded{UserId: "u", PasskeyId: "p1", CredentialId: []byte("c1"), PublicKey: []byte("k"), SignCount: 5, Name: "Key", ChallengeHash: "reg"}
	s := fold(now, added)
	for _, tc := range []struct {
		name string
		a    Assertion
		kind errs.Kind
	}{
		{"counter forward", Assertion{PasskeyID: "p1", SignCount: 6, ChallengeHash: "c1"}, -1},
		{"counter the same (cloned)", Assertion{PasskeyID: "p1", SignCount: 5, ChallengeHash: "c1"}, errs.KindPermissionDenied},
		{"counter backwards", Assertion{PasskeyID: "p1", SignCount: 4, ChallengeHash: "c1"}, errs.KindPermissionDenied},
		{"someone else's passkey", Assertion{PasskeyID: "p2", SignCount: 9, ChallengeHash: "c1"}, errs.KindPermissionDenied},
		{"the registration's challenge", Assertion{PasskeyID: "p1", SignCount: 9, ChallengeHash: "reg"}, errs.KindPermissionDenied},
		{"no challenge", Assertion{PasskeyID: "p1", SignCount: 9}, errs.KindPermissionDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := UsePasskey(s, tc.a, now)
			if tc.kind == -1 && err != nil || tc.kind != -1 && (err == nil || errs.KindOf(err) != tc.kind) {
				t.Fatalf("UsePasskey: %v, want kind %q", err, tc.kind)
			}
		})
	}
	used, _ := UsePasskey(s, Assertion{PasskeyID: "p1", SignCount: 6, ChallengeHash: "c1"}, now)
	s = fold(now, added, used[0])
	if _, err := UsePasskey(s, Assertion{PasskeyID: "p1", SignCount: 7, ChallengeHash: "c1"}, now.Add(time.Second)); errs.KindOf(err) != errs.KindPermissionDenied {
		t.Fatalf("a spent challenge again: %v", err)
	}
	if p, _ := s.Passkey("p1"); p.SignCount != 6 || p.LastUsedAt.IsZero() {
		t.Fatalf("after use: %+v", p)
	}
	// Authenticators without a counter (0 every time) are fine.
	zero := fold(now, &eventsv1.PasskeyAdded{UserId: "u", PasskeyId: "p1", CredentialId: []byte("c1"), PublicKey: []byte("k")})
	if _, err := UsePasskey(zero, Assertion{PasskeyID: "p1", ChallengeHash: "c9"}, now); err != nil {
		t.Fatalf("counterless authenticator: %v", err)
	}
	if _, err := AddPasskey(s, NewPasskey{UserID: "u", PasskeyID: "p3", CredentialID: []byte("c1"), PublicKey: []byte("k"), ChallengeHash: "r2"}, now); errs.KindOf(err) != errs.KindAlreadyExists {
		t.Fatalf("the same credential twice: %v", err)
	}
}

func TestNeedOf(t *testing.T) {
	with := fold(time.Now(), &eventsv1.TOTPEnabled{UserId: "u", Secret: "S", Step: 1})
	byUser := fold(time.Now(), &eventsv1.SecondFactorRequirementSet{UserId: "u", Required: true})
	for _, tc := range []struct {
		name  string
		p     Policy
		admin bool
		s     State
		want  Need
	}{
		{"optional, none", Optional, true, State{}, NeedNothing},
		{"optional, has TOTP", Optional, false, with, NeedVerify},
		{"admins, an admin without", RequiredForAdmins, true, State{}, NeedEnrol},
		{"admins, a person without", RequiredForAdmins, false, State{}, NeedNothing},
		{"everyone, a person without", Required, false, State{}, NeedEnrol},
		{"everyone, has TOTP", Required, false, with, NeedVerify},
		{"the person asked for it", Optional, false, byUser, NeedEnrol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := NeedOf(tc.p, tc.admin, tc.s); got != tc.want {
				t.Fatalf("NeedOf = %v, want %v", got, tc.want)
			}
		})
	}
	if Satisfies([]string{MethodPassword}) || !Satisfies([]string{MethodPassword, MethodTOTP}) || !Satisfies([]string{MethodPasskey}) {
		t.Fatal("Satisfies")
	}
}

func TestAdminRequirementIsTheAdminsToLift(t *testing.T) {
	s := fold(time.Now(), &eventsv1.SecondFactorRequirementSet{UserId: "u", Required: true, ByAdmin: true})
	evs, err := SetRequired(s, "u", false, false)
	if err != nil || len(evs) != 0 {
		t.Fatalf("the person lifting their own (unset) requirement: %v %v", evs, err)
	}
	if NeedOf(Optional, false, s) != NeedEnrol {
		t.Fatal("the administrator's requirement does not hold")
	}
	evs, _ = SetRequired(s, "u", false, true)
	if len(evs) != 1 {
		t.Fatal("the administrator cannot lift it")
	}
}

func TestRenamePasskey(t *testing.T) {
	now := time.Now()
	s := fold(now, &eventsv1.PasskeyAdded{UserId: "u", PasskeyId: "p1", CredentialId: []byte("c1"), PublicKey: []byte("k"), Name: "Key"})
	for _, tc := range []struct {
		id, name string
		kind     errs.Kind
	}{
		{"p2", "Phone", errs.KindNotFound},
		{"p1", "", errs.KindInvalid},
		{"p1", strings.Repeat("x", 65), errs.KindInvalid},
		{"p1", "bad\x00name", errs.KindInvalid},
	} {
		if _, err := RenamePasskey(s, "u", tc.id, tc.name); errs.KindOf(err) != tc.kind {
			t.Errorf("rename %s to %q: %v, want %v", tc.id, tc.name, err, tc.kind)
		}
	}
	evs, err := RenamePasskey(s, "u", "p1", "  Phone ")
	if err != nil || len(evs) != 1 {
		t.Fatalf("rename: %v %v", evs, err)
	}
	s = fold(now, &eventsv1.PasskeyAdded{UserId: "u", PasskeyId: "p1", CredentialId: []byte("c1"), PublicKey: []byte("k"), Name: "Key"}, evs[0])
	if p, _ := s.Passkey("p1"); p.Name != "Phone" {
		t.Fatalf("after renaming: %q", p.Name)
	}
}

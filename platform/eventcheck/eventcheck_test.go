package eventcheck_test

import (
	"strings"
	"testing"

	"gatehouse.dev/platform/eventcheck"
)

func TestCheckFindsForgottenEvents(t *testing.T) {
	problems, err := eventcheck.Check("testdata/consumers")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"consumers.go:11:2: type switch names SessionStarted, SessionEnded of token.session.* but not TokensIssued, SessionRenamed, SessionImported, SessionSnapshotted",
		"consumers.go:44:2: type assertion names VerificationConfirmed of notify.verification.* but not VerificationStarted, VerificationCodeReissued, VerificationAttemptFailed, EmailDelivered, EmailDeliveryFailed",
	}
	if len(problems) != len(want) {
		t.Fatalf("problems:\n%s", strings.Join(problems, "\n"))
	}
	for i, w := range want {
		if !strings.Contains(problems[i], w) {
			t.Errorf("problem %d = %q\nwant it to contain %q", i, problems[i], w)
		}
	}
}

func TestCheckNeedsGoFiles(t *testing.T) {
	if _, err := eventcheck.Check(t.TempDir()); err == nil {
		t.Fatal("an empty tree passed")
	}
}

package e2e

import (
	"strings"
	"testing"
)

// Restart the whole process, after a clean stop and after a crash: every user
// and audit entry is still there.
func TestServeKeepsEverythingAcrossRestarts(t *testing.T) {
	dir := dataDir(t)
	s := startServe(t, dir)
	mustCLI(t, s, "user", "add", "--username", "alice", "--password", "alice's password", "--email", "alice@example.com", "--admin")
	mustCLI(t, s, "user", "add", "--username", "bob", "--password", "bob's password")
	mustCLI(t, s, "user", "lock", "bob", "--reason", "testing")
	// The audit projection follows the stream on its own (commands wait only
	// for the users read model), so reads wait until it holds every event.
	entries := 5 // the accounts keys made on first start: 2 (proofs, claims), alice's registration, bob's, the lock (claims make none)
	auditBefore := auditOf(t, s, entries)
	if !strings.Contains(auditBefore, "locked: testing") {
		t.Fatalf("audit before restart:\n%s", auditBefore)
	}

	for _, how := range []string{"stop", "crash"} {
		if how == "stop" {
			s.stop(t)
		} else {
			s.crash()
		}
		s = startServe(t, dir)
		list := mustCLI(t, s, "user", "list")
		for _, want := range []string{"alice", "alice@example.com", "bob", "locked"} {
			if !strings.Contains(list, want) {
				t.Fatalf("after %s: user list lacks %q:\n%s", how, want, list)
			}
		}
		audit := auditOf(t, s, entries)
		if audit != auditBefore {
			t.Fatalf("after %s: audit changed:\nbefore:\n%s\nafter:\n%s", how, auditBefore, audit)
		}
		// A new command lands after the restart too.
		mustCLI(t, s, "user", "unlock", "bob")
		mustCLI(t, s, "user", "lock", "bob", "--reason", "testing")
		entries += 2
		auditBefore = auditOf(t, s, entries)
	}

	// A rebuild from the stream gives the same read model.
	listBefore := mustCLI(t, s, "user", "list")
	out := mustCLI(t, s, "projections", "rebuild", "accounts.users")
	if !strings.Contains(out, "rebuilt accounts.users") {
		t.Fatalf("rebuild output: %s", out)
	}
	if list := mustCLI(t, s, "user", "list"); list != listBefore {
		t.Fatalf("after rebuild:\n%s\nbefore:\n%s", list, listBefore)
	}
	if out := mustCLI(t, s, "projections", "list"); !strings.Contains(out, "accounts.accounts_audit") || !strings.Contains(out, "accounts.users") {
		t.Fatalf("projections list:\n%s", out)
	}
}

package e2e

import (
	"strings"
	"testing"
)

// Bad input to every CLI command gets a clear message and exit code, never a panic.
func TestCLIBadInput(t *testing.T) {
	s := startServe(t, dataDir(t))
	mustCLI(t, s, "user", "add", "--username", "carol", "--password", "carol's password")
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown command", []string{"frobnicate"}, 2, "unknown command"},
		{"user without subcommand", []string{"user"}, 2, "subcommand"},
		{"unknown user subcommand", []string{"user", "explode"}, 2, "unknown user subcommand"},
		{"add without username", []string{"user", "add", "--password", "long enough"}, 2, "--username is required"},
		{"add invalid username", []string{"user", "add", "--username", "Carol!", "--password", "long enough"}, 1, "Usernames may only contain"},
		{"add taken username", []string{"user", "add", "--username", "carol", "--password", "long enough"}, 1, "already taken"},
		{"add short password", []string{"user", "add", "--username", "dave", "--password", "short"}, 1, "at least 8 characters"},
		{"add unknown flag", []string{"user", "add", "--username", "dave", "--colour", "blue"}, 2, "flag provided but not defined"},
		{"lock without user", []string{"user", "lock"}, 2, "expected 1 argument"},
		{"lock unknown user", []string{"user", "lock", "nobody"}, 1, "No such user"},
		{"set-password without password", []string{"user", "set-password", "carol"}, 2, "new password is required"},
		{"list bad status", []string{"user", "list", "--status", "sleepy"}, 2, "--status must be"},
		{"rebuild unknown projection", []string{"projections", "rebuild", "accounts.nothing"}, 1, "no projection named"},
		{"rebuild without name", []string{"projections", "rebuild"}, 2, "expected 1 argument"},
		{"projections unknown", []string{"projections", "explode"}, 2, "unknown projections subcommand"},
		{"config unknown", []string{"config", "explode"}, 2, "unknown config subcommand"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := s.cli(t, tt.args...)
			if code != tt.code || !strings.Contains(errOut, tt.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d mentioning %q", code, errOut, tt.code, tt.want)
			}
		})
	}
}

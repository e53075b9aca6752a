package eventsv1_test

import (
	"path"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// Every event message of the contract is held by exactly one aggregate, of
// the stream its .proto file is named for: an event added to a .proto file
// and forgotten in streams.go fails here (and the event log would refuse to
// append it).
func TestEveryEventBelongsToOneAggregate(t *testing.T) {
	streams := map[string]eventsv1.Stream{}
	for _, s := range eventsv1.Streams() {
		streams[s.Prefix+".proto"] = s
	}
	seen := 0
	protoregistry.GlobalFiles.RangeFilesByPackage("gatehouse.events.v1", func(fd protoreflect.FileDescriptor) bool {
		file := path.Base(fd.Path())
		if file == "envelope.proto" || file == "sealed.proto" { // the wrapper and the sealed-secret parts of events, no events
			return true
		}
		s, ok := streams[file]
		if !ok {
			t.Errorf("%s: no stream in streams.go is named for this file", fd.Path())
			return true
		}
		msgs := fd.Messages()
		for i := range msgs.Len() {
			name := msgs.Get(i).FullName()
			if slices.ContainsFunc(eventsv1.Parts, func(m proto.Message) bool { return m.ProtoReflect().Descriptor().FullName() == name }) {
				continue
			}
			seen++
			var holders []string
			for _, a := range s.Aggregates {
				if a.Holds(name) {
					holders = append(holders, a.Subjects())
				}
			}
			for _, other := range eventsv1.Streams() {
				if other.Name == s.Name {
					continue
				}
				for _, a := range other.Aggregates {
					if a.Holds(name) {
						holders = append(holders, a.Subjects())
					}
				}
			}
			if len(holders) != 1 {
				t.Errorf("%s (%s) is held by %v: list it under exactly one aggregate of %s in streams.go", name, file, holders, s.Name)
			}
		}
		return true
	})
	if seen < 40 {
		t.Fatalf("only %d event messages found: is the registry empty?", seen)
	}
}

func TestSubjectsAndFilters(t *testing.T) {
	if got := eventsv1.AccountsUser.Subject("01J"); got != "accounts.user.01J" {
		t.Errorf("Subject = %q", got)
	}
	if got := eventsv1.AccountsUser.Subjects(); got != "accounts.user.*" {
		t.Errorf("Subjects = %q", got)
	}
	if got := eventsv1.Token.All(); got != "token.>" {
		t.Errorf("All = %q", got)
	}
	names := func(filters ...string) []string {
		var out []string
		for _, ev := range eventsv1.Token.EventsOn(filters...) {
			out = append(out, string(ev.ProtoReflect().Descriptor().Name()))
		}
		return out
	}
	tests := []struct {
		filters []string
		want    string
	}{
		{[]string{"token.session.*"}, "SessionStarted TokensIssued SessionRenamed SessionEnded SessionImported SessionSnapshotted"},
		{[]string{"token.session.*", "token.activity.*"}, "SessionStarted TokensIssued SessionRenamed SessionEnded SessionImported SessionSnapshotted SessionsActive"},
		{[]string{"token.logintoken.*", "token.logintoken.*"}, "LoginTokenIssued LoginTokenUsed"},
		{[]string{"token.>"}, "SessionStarted TokensIssued SessionRenamed SessionEnded SessionImported SessionSnapshotted SessionsActive SigningKeysGenerated ClientAssertionUsed LoginTokenIssued LoginTokenUsed"},
		{[]string{"accounts.user.*"}, ""},
		{[]string{"token.session.01J"}, "SessionStarted TokensIssued SessionRenamed SessionEnded SessionImported SessionSnapshotted"},
	}
	for _, tt := range tests {
		if got := strings.Join(names(tt.filters...), " "); got != tt.want {
			t.Errorf("EventsOn(%v) = %q, want %q", tt.filters, got, tt.want)
		}
	}
	_, a, ok := eventsv1.AggregateOf("gatehouse.events.v1.UserLocked")
	if !ok || a.Type != "user" {
		t.Errorf("AggregateOf(UserLocked) = %v %v", a.Type, ok)
	}
	if !slices.ContainsFunc(eventsv1.Streams(), func(s eventsv1.Stream) bool { return s.Name == "NOTIFY" }) {
		t.Error("NOTIFY missing from Streams")
	}
}

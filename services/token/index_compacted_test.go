package token

import (
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/eventlog"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/token/internal/tokenfmt"
)

// On a compacted TOKEN stream a tail that lags (a NATS leader lost, a
// replica starting from the read model's checkpoint) finds only a
// session's last event: the refreshes between are gone. The index must
// still forget every token those refreshes rotated out, from the state the
// last event carries (found by the node loss drill: rotated-out access
// tokens answered active on one replica).
func TestIndexForgetsTokensRotatedOutByEventsItNeverSaw(t *testing.T) {
	hash := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	a0, r0, a1, r1, a2, r2 := hash("a0"), hash("r0"), hash("a1"), hash("r1"), hash("a2"), hash("r2")
	now := time.Now()
	rec := func(ev proto.Message) eventlog.Record {
		payload, err := anypb.New(ev)
		if err != nil {
			t.Fatal(err)
		}
		return eventlog.Record{Event: ev, Envelope: &eventsv1.Envelope{OccurredAt: timestamppb.New(now), Payload: payload}}
	}
	started := &eventsv1.SessionStarted{SessionId: "s1", ClientId: "c", UserId: "u", Scope: "openid",
		Tokens: &eventsv1.TokensIssued{SessionId: "s1", AccessHash: a0, RefreshHash: r0}}
	// The second refresh, whose state is the session after it; the first
	// (a1, r1) was compacted away before the tail got to it.
	second := &eventsv1.TokensIssued{SessionId: "s1", AccessHash: a2, RefreshHash: r2, RevokesAccessHash: a1, ReplacesRefreshHash: r1,
		State: &eventsv1.SessionSnapshot{Session: started, Tokens: []*eventsv1.SessionToken{
			{Hash: a2}, {Hash: r2, Refresh: true, AccessHash: a2},
			{Hash: r0, Refresh: true, ConsumedAt: timestamppb.New(now)}, {Hash: r1, Refresh: true, ConsumedAt: timestamppb.New(now)},
		}}}
	for _, tc := range []struct {
		name   string
		events []proto.Message
		live   []string
		gone   []string
	}{
		{"every event seen", []proto.Message{started, second}, []string{a2}, []string{a0, r0, a1, r1}},
		{"the session's last event only", []proto.Message{second}, []string{a2}, []string{a0, r0, a1, r1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := newIndex(nil, nil, nil, slog.New(slog.DiscardHandler))
			if len(tc.events) == 1 {
				// The session as the read model held it before the first
				// refresh (the index's snapshot at start).
				if err := x.learn(rec(started)); err != nil {
					t.Fatal(err)
				}
			}
			for _, ev := range tc.events {
				if err := x.learn(rec(ev)); err != nil {
					t.Fatal(err)
				}
			}
			for _, h := range tc.live {
				if _, status := x.find(mustKey(t, h)); status != tokenLive {
					t.Errorf("token %s… is not live", h[:8])
				}
			}
			for _, h := range tc.gone {
				if _, status := x.find(mustKey(t, h)); status == tokenLive {
					t.Errorf("token %s… rotated out is live", h[:8])
				}
			}
			// Refresh tokens are not held (index.lookupRefresh answers them).
			if _, status := x.find(mustKey(t, r2)); status != tokenUnknown {
				t.Errorf("the live refresh token is in memory (%d)", status)
			}
			if x.size() != 1 {
				t.Errorf("%d tokens in memory, want the access token alone", x.size())
			}
		})
	}
}

// mustKey is the index key of a SHA-256 hash in hex.
func mustKey(t *testing.T, hash string) tokenKey {
	t.Helper()
	key, ok := keyOf(hash)
	if !ok {
		t.Fatalf("%q is no token hash", hash)
	}
	return key
}

// A session learned from its state alone (an event that carries it, when the
// index did not know the session) is held only while it has an access token
// to answer: refresh tokens are not held, and an access token expired past
// expiredGrace is gone, so the session would only take memory.
func TestIndexHoldsSessionsWithAccessTokensOnly(t *testing.T) {
	now := time.Now()
	access, refresh := tokenfmt.HashString("access"), tokenfmt.HashString("refresh")
	started := &eventsv1.SessionStarted{SessionId: "s1", ClientId: "c", UserId: "u", Scope: "openid"}
	for _, tc := range []struct {
		name    string
		expires time.Time // zero: never
		held    bool
	}{
		{"a live access token", now.Add(5 * time.Minute), true},
		{"one expired within the grace", now.Add(-time.Minute), true},
		{"one expired long ago", now.Add(-time.Hour), false},
		{"one that never expires", time.Time{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := &eventsv1.SessionToken{Hash: access, IssuedAt: timestamppb.New(now.Add(-2 * time.Hour))}
			if !tc.expires.IsZero() {
				tok.ExpiresAt = timestamppb.New(tc.expires)
			}
			x := newIndex(nil, nil, nil, slog.New(slog.DiscardHandler))
			err := x.learn(eventlog.Record{Event: &eventsv1.SessionRenamed{SessionId: "s1", State: &eventsv1.SessionSnapshot{
				Session: started, Tokens: []*eventsv1.SessionToken{tok, {Hash: refresh, Refresh: true, AccessHash: access}},
			}}, Envelope: &eventsv1.Envelope{OccurredAt: timestamppb.New(now)}})
			if err != nil {
				t.Fatal(err)
			}
			_, held := x.sessions["s1"]
			if held != tc.held || x.size() != map[bool]int{true: 1}[tc.held] {
				t.Fatalf("session held %v with %d tokens, want held %v", held, x.size(), tc.held)
			}
		})
	}
}

package eventlog

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// FuzzDecode feeds Decode any stored body: a message written by an older or
// newer binary, one cut short, or bytes that are no event at all. It never
// panics; what it accepts has an envelope and a payload, and decodes the
// same again once written back.
func FuzzDecode(f *testing.F) {
	for _, seed := range []proto.Message{
		&eventsv1.SessionStarted{SessionId: "s", ClientId: "c", Tokens: &eventsv1.TokensIssued{AccessHash: "a", RefreshHash: "r"}},
		&eventsv1.UserRegistered{UserId: "u", Username: "alice"},
		&eventsv1.SessionEnded{SessionId: "s", Reason: "revoked"},
	} {
		payload, err := anypb.New(seed)
		if err != nil {
			f.Fatal(err)
		}
		body, err := proto.Marshal(&eventsv1.Envelope{Id: "01J", OccurredAt: timestamppb.Now(), Payload: payload})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(body)
		f.Add(body[:len(body)/2])
	}
	unknown, err := proto.Marshal(&eventsv1.Envelope{Id: "01K", Payload: &anypb.Any{TypeUrl: "type.googleapis.com/gatehouse.events.v9.FromTheFuture", Value: []byte{8, 1}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(unknown)
	f.Add([]byte{})
	f.Add([]byte("not protobuf at all"))
	f.Fuzz(func(t *testing.T, body []byte) {
		rec, err := Decode(7, "token.session.s", body)
		if err != nil {
			return
		}
		if rec.Envelope == nil || rec.Envelope.GetPayload() == nil || rec.Seq != 7 || rec.Subject != "token.session.s" {
			t.Fatalf("accepted without an envelope, a payload or its position: %+v", rec)
		}
		_, _, _ = rec.Type(), rec.ID(), rec.OccurredAt()
		again, err := proto.Marshal(rec.Envelope)
		if err != nil {
			t.Fatalf("an accepted envelope does not marshal: %v", err)
		}
		back, err := Decode(7, "token.session.s", again)
		if err != nil {
			t.Fatalf("an accepted event, written back, is refused: %v", err)
		}
		if back.Type() != rec.Type() || (back.Event == nil) != (rec.Event == nil) {
			t.Fatalf("written back, %s (known %v) became %s (known %v)", rec.Type(), rec.Event != nil, back.Type(), back.Event != nil)
		}
	})
}

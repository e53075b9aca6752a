package eventlog

import (
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
)

// Skipping events before decoding them. Every message carries its event's
// type in a header (HeaderEventType), so a consumer that does nothing with
// some types can step over them without decoding the envelope and the
// payload: an import's users reach every follower of accounts.user.*, and
// most of those have nothing to do with them.

// Types is a set of event types, by protobuf full name.
type Types map[string]struct{}

// TypesOf is the set of the events' types.
func TypesOf(events ...proto.Message) Types {
	t := make(Types, len(events))
	for _, ev := range events {
		t[string(ev.ProtoReflect().Descriptor().FullName())] = struct{}{}
	}
	return t
}

// Has reports whether the set holds the type (a protobuf full name).
func (t Types) Has(name string) bool {
	_, ok := t[name]
	return ok
}

// Decoding says which event types a consumer decodes: given a type's full
// name, whether it wants the event. nil decodes every event.
type Decoding func(eventType string) bool

// Except decodes every type but these.
func Except(t Types) Decoding { return func(name string) bool { return !t.Has(name) } }

// DecodeMsgFor decodes a message delivered by a consumer, unless want turns
// its type down: then the record is Skipped, with its position alone (Seq,
// Subject, Pending). A message without the type header (an expiry marker) is
// always decoded.
func DecodeMsgFor(msg jetstream.Msg, want Decoding) (Record, error) {
	if want != nil {
		if typ := msg.Headers().Get(HeaderEventType); typ != "" && !want(typ) {
			meta, err := msg.Metadata()
			if err != nil {
				return Record{}, err
			}
			return Record{Seq: meta.Sequence.Stream, Subject: msg.Subject(), Pending: meta.NumPending, Skipped: true}, nil
		}
	}
	return DecodeMsg(msg)
}

// ReadOption changes how Read delivers events.
type ReadOption func(*readOptions)

type readOptions struct{ want Decoding }

// WithDecoding makes Read decode only the events want accepts; the others
// reach fn Skipped (their position alone), so a caller still moves past them.
func WithDecoding(want Decoding) ReadOption { return func(o *readOptions) { o.want = want } }

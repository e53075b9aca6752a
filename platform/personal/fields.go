package personal

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/sealed"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// secretFields are fields with a sealed_ sibling that are secrets, not
// personal data to open on every load: the service that owns them seals and
// opens them itself (the accounts service, password hashes).
var secretFields = map[protoreflect.Name]bool{"password_hash": true}

// sealedSecretName is the full name of the SealedSecret message.
var sealedSecretName = (&eventsv1.SealedSecret{}).ProtoReflect().Descriptor().FullName()

// SealValue seals one value under the owner's key for the place named by
// where (a user's key must exist: ErrErased when it does not; a flow's is
// created when needed). The result names the key (SealedSecret.personal_key).
func (s *Store) SealValue(ctx context.Context, owner Owner, plaintext []byte, where string) (*eventsv1.SealedSecret, error) {
	var (
		key *sealed.Key
		err error
	)
	if owner.IsFlow() {
		key, err = s.Create(ctx, owner)
	} else {
		key, err = s.Get(ctx, owner)
	}
	if err != nil {
		return nil, err
	}
	v, err := key.Seal(plaintext, where)
	if err != nil {
		return nil, err
	}
	v.PersonalKey = string(owner)
	return v, nil
}

// OpenValue opens a value sealed for where: under the personal key it names,
// or, when it names none, under the keyring (values sealed before personal
// keys). ErrErased when its personal key is gone.
func (s *Store) OpenValue(ctx context.Context, v *eventsv1.SealedSecret, where string) ([]byte, error) {
	if v.GetPersonalKey() == "" {
		return s.keyring.Open(v, where)
	}
	key, err := s.Get(ctx, Owner(v.GetPersonalKey()))
	if err != nil {
		return nil, err
	}
	if key.ID() != v.GetKeyId() {
		return nil, ErrErased // sealed under an earlier key of that owner, since destroyed
	}
	return key.Open(v, where)
}

// Seal returns a copy of an event whose personal fields are sealed: each
// string field <x> that has a SealedSecret sibling sealed_<x> and is set is
// sealed at "<subject>/<x>" (nested messages: "<subject>/<field>/<index>/<x>")
// under owner's key, or under the user's key in a message whose user_id is
// set, and emptied. Fields of NoOwner stay in clear. A user's key must exist
// (ErrErased otherwise); a flow's is created.
func (s *Store) Seal(ctx context.Context, event proto.Message, subject string, owner Owner) (proto.Message, error) {
	out := proto.Clone(event)
	if err := s.walk(ctx, out.ProtoReflect(), subject, owner, s.sealField(false)); err != nil {
		return nil, err
	}
	return out, nil
}

// SealWithFallback is Seal for a flow that may concern a user who has no
// personal key (registered before personal keys, or erased meanwhile): where
// a user's key is missing, the field is sealed under fallback (a flow's key,
// created when needed) instead.
func (s *Store) SealWithFallback(ctx context.Context, event proto.Message, subject string, fallback Owner) (proto.Message, error) {
	out := proto.Clone(event)
	seal := s.sealField(false)
	err := s.walk(ctx, out.ProtoReflect(), subject, fallback, func(ctx context.Context, m protoreflect.Message, f, sibling protoreflect.FieldDescriptor, where string, owner Owner) error {
		err := seal(ctx, m, f, sibling, where, owner)
		if errors.Is(err, ErrErased) && owner != fallback {
			return seal(ctx, m, f, sibling, where, fallback)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SealDroppingErased is Seal for data noted about many people at once (a
// batch of sessions' activity): a field whose owner's key is gone (the
// person was erased meanwhile) is dropped instead of failing the whole event.
func (s *Store) SealDroppingErased(ctx context.Context, event proto.Message, subject string, owner Owner) (proto.Message, error) {
	out := proto.Clone(event)
	if err := s.walk(ctx, out.ProtoReflect(), subject, owner, s.sealField(true)); err != nil {
		return nil, err
	}
	return out, nil
}

// Unseal opens, in place, the personal fields of an event stored under
// subject: each set sealed_<x> is opened into <x>. A field whose key is gone
// is left empty, its sealed sibling still set (Erased).
func (s *Store) Unseal(ctx context.Context, event proto.Message, subject string) error {
	if event == nil {
		return nil
	}
	return s.walk(ctx, event.ProtoReflect(), subject, NoOwner, s.openField)
}

// UnsealRecord opens the personal fields of a record's event in place.
func (s *Store) UnsealRecord(ctx context.Context, rec *eventlog.Record) error {
	if err := s.Unseal(ctx, rec.Event, rec.Subject); err != nil {
		return fmt.Errorf("%s at seq %d: %w", rec.Type(), rec.Seq, err)
	}
	return nil
}

// UnsealHistory opens the personal fields of every record in place.
func (s *Store) UnsealHistory(ctx context.Context, history []eventlog.Record) error {
	for i := range history {
		if err := s.UnsealRecord(ctx, &history[i]); err != nil {
			return err
		}
	}
	return nil
}

// Owners returns whose keys Seal would seal an event's personal fields
// under (owner for the fields of messages that name no user), each once.
func Owners(event proto.Message, owner Owner) []Owner {
	var out []Owner
	seen := map[Owner]bool{}
	collect := func(_ context.Context, m protoreflect.Message, f, _ protoreflect.FieldDescriptor, _ string, o Owner) error {
		if m.Get(f).String() != "" && o != NoOwner && !seen[o] {
			seen[o] = true
			out = append(out, o)
		}
		return nil
	}
	(&Store{}).walk(context.Background(), event.ProtoReflect(), "", owner, collect)
	return out
}

// Holds reports whether events of this one's type can carry personal data
// (a personal field, or a message holding one): for the others, sealing,
// opening and redacting change nothing.
func Holds(event proto.Message) bool {
	return event != nil && len(planOf(event.ProtoReflect().Descriptor()).steps) > 0
}

// Redacted returns a copy of an event without its personal data, as it reads
// once erased: every personal field empty, its sealed sibling set (to an
// empty SealedSecret where the event held the field in clear), so Erased
// reports it. nil for nil.
func Redacted(event proto.Message) proto.Message {
	if event == nil {
		return nil
	}
	out := proto.Clone(event)
	redact(out.ProtoReflect())
	return out
}

// redact empties the personal fields of m and of the event messages it holds.
func redact(m protoreflect.Message) {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		f := fields.Get(i)
		if sibling := personalSibling(fields, f); sibling != nil {
			if m.Get(f).String() != "" && !m.Has(sibling) {
				m.Set(sibling, protoreflect.ValueOfMessage((&eventsv1.SealedSecret{}).ProtoReflect()))
			}
			m.Clear(f)
			continue
		}
		if f.Kind() != protoreflect.MessageKind || f.IsMap() || f.Message().FullName() == sealedSecretName ||
			f.Message().ParentFile().Package() != sealedSecretName.Parent() {
			continue
		}
		switch {
		case f.IsList():
			list := m.Get(f).List()
			for j := range list.Len() {
				redact(list.Get(j).Message())
			}
		case m.Has(f):
			redact(m.Mutable(f).Message())
		}
	}
}

// Erased reports whether a personal field was sealed and no longer opens.
func Erased(clear string, v *eventsv1.SealedSecret) bool { return clear == "" && v != nil }

// fieldFunc seals or opens one personal field: m.<f> and its sibling.
type fieldFunc func(ctx context.Context, m protoreflect.Message, f, sibling protoreflect.FieldDescriptor, where string, owner Owner) error

// walk calls fn on every personal field of m and of the event messages it
// holds, with each field's place and owner.
func (s *Store) walk(ctx context.Context, m protoreflect.Message, where string, owner Owner, fn fieldFunc) error {
	p := planOf(m.Descriptor())
	if len(p.steps) == 0 {
		return nil
	}
	if p.userID != nil {
		if id := m.Get(p.userID).String(); id != "" {
			owner = User(id)
		}
	}
	for _, st := range p.steps {
		if st.sibling != nil {
			if err := fn(ctx, m, st.field, st.sibling, where+st.suffix, owner); err != nil {
				return err
			}
			continue
		}
		switch {
		case st.field.IsList():
			list := m.Get(st.field).List()
			for j := range list.Len() {
				if err := s.walk(ctx, list.Get(j).Message(), where+st.suffix+"/"+strconv.Itoa(j), owner, fn); err != nil {
					return err
				}
			}
		case m.Has(st.field):
			if err := s.walk(ctx, m.Mutable(st.field).Message(), where+st.suffix, owner, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

// plan is what walk visits in messages of one type, worked out once per
// type (walk runs on every event an import writes and every projection
// reads: looking the fields up each time cost more than the sealing).
type plan struct {
	// userID is the message's user_id string field, nil when it has none.
	userID protoreflect.FieldDescriptor
	// steps are, in field order, the personal fields (sibling set) and the
	// event messages that hold some, directly or deeper (sibling nil).
	steps []planStep
}

// planStep is one field walk visits.
type planStep struct {
	field, sibling protoreflect.FieldDescriptor
	suffix         string // "/<field name>"
}

// plans caches the plan of each message type, by full name. It is the one
// package-level value that changes: it only memoises what the compiled-in
// descriptors already fix (as protobuf's own registry does), so two stores
// can never see different plans.
var plans sync.Map

// planOf returns the plan of messages of type md.
func planOf(md protoreflect.MessageDescriptor) *plan {
	if p, ok := plans.Load(md.FullName()); ok {
		return p.(*plan)
	}
	p := buildPlan(md, map[protoreflect.FullName]bool{})
	got, _ := plans.LoadOrStore(md.FullName(), p)
	return got.(*plan)
}

// buildPlan works out the plan of md; visiting holds the types being worked
// out (a type that holds itself is kept as a step, to be safe).
func buildPlan(md protoreflect.MessageDescriptor, visiting map[protoreflect.FullName]bool) *plan {
	visiting[md.FullName()] = true
	defer delete(visiting, md.FullName())
	p := &plan{}
	fields := md.Fields()
	if f := fields.ByName("user_id"); f != nil && f.Kind() == protoreflect.StringKind && !f.IsList() {
		p.userID = f
	}
	for i := range fields.Len() {
		f := fields.Get(i)
		suffix := "/" + string(f.Name())
		if sibling := personalSibling(fields, f); sibling != nil {
			p.steps = append(p.steps, planStep{field: f, sibling: sibling, suffix: suffix})
			continue
		}
		if f.Kind() != protoreflect.MessageKind || f.IsMap() || f.Message().FullName() == sealedSecretName ||
			f.Message().ParentFile().Package() != sealedSecretName.Parent() {
			continue
		}
		child := f.Message()
		if !visiting[child.FullName()] {
			if cp, ok := plans.Load(child.FullName()); ok {
				if len(cp.(*plan).steps) == 0 {
					continue
				}
			} else if len(buildPlan(child, visiting).steps) == 0 {
				continue
			}
		}
		p.steps = append(p.steps, planStep{field: f, suffix: suffix})
	}
	return p
}

// personalSibling returns the sealed_<x> sibling of a personal string field
// <x>, nil when f is not one.
func personalSibling(fields protoreflect.FieldDescriptors, f protoreflect.FieldDescriptor) protoreflect.FieldDescriptor {
	if f.Kind() != protoreflect.StringKind || f.IsList() || secretFields[f.Name()] {
		return nil
	}
	sibling := fields.ByName("sealed_" + f.Name())
	if sibling == nil || sibling.IsList() || sibling.Message() == nil || sibling.Message().FullName() != sealedSecretName {
		return nil
	}
	return sibling
}

// sealField returns the function that seals a set field under owner's key
// (a NoOwner field stays in clear); with drop, a field whose owner's key is
// gone is emptied.
func (s *Store) sealField(drop bool) fieldFunc {
	return func(ctx context.Context, m protoreflect.Message, f, sibling protoreflect.FieldDescriptor, where string, owner Owner) error {
		v := m.Get(f).String()
		if v == "" || owner == NoOwner {
			return nil
		}
		sv, err := s.SealValue(ctx, owner, []byte(v), where)
		if drop && errors.Is(err, ErrErased) {
			m.Clear(f)
			return nil
		}
		if err != nil {
			return fmt.Errorf("personal: seal %s: %w", where, err)
		}
		m.Set(sibling, protoreflect.ValueOfMessage(sv.ProtoReflect()))
		m.Clear(f)
		return nil
	}
}

// openField opens a sealed field into its clear sibling; a field whose key is
// gone is left empty.
func (s *Store) openField(ctx context.Context, m protoreflect.Message, f, sibling protoreflect.FieldDescriptor, where string, _ Owner) error {
	if !m.Has(sibling) {
		return nil
	}
	sv, ok := m.Get(sibling).Message().Interface().(*eventsv1.SealedSecret)
	if !ok {
		return fmt.Errorf("personal: %s is not a SealedSecret", sibling.FullName())
	}
	b, err := s.OpenValue(ctx, sv, where)
	switch {
	case errors.Is(err, ErrErased):
		m.Clear(f)
		return nil
	case err != nil:
		return fmt.Errorf("personal: open %s: %w", where, err)
	}
	m.Set(f, protoreflect.ValueOfString(string(b)))
	return nil
}

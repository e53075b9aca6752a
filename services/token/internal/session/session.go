// Package session is the session aggregate of the token service: a session
// starts with its first tokens, rotates its refresh token on every use, and
// ends. A pure reducer with pure decisions; the service does the I/O.
package session

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// State is a session folded from its events.
type State struct {
	Started *eventsv1.SessionStarted
	// SealedAt is where Started's personal fields were sealed: the place
	// (platform/personal) of the event Started was read from.
	SealedAt string
	Ended    bool
	// DisplayName is the device's display name.
	DisplayName string
	// CurrentRefresh and CurrentAccess are the hashes of the live token pair.
	CurrentRefresh, CurrentAccess string
	// consumed maps each rotated-out refresh hash still remembered (the
	// ReuseMemory newest, oldest first in order) to when it was rotated out.
	consumed map[string]consumption
	order    []string
	// imported maps the refresh tokens an imported session came with (by
	// hash) to the access token issued with each: any of them refreshes
	// once, like CurrentRefresh.
	imported map[string]string
	// live are the tokens in use, by hash, in the order they were issued.
	live      map[string]*eventsv1.SessionToken
	liveOrder []string
	// createdAt, endedAt, endReason and lastActive are the rest of what a
	// snapshot carries.
	createdAt, endedAt, lastActive time.Time
	endReason                      string
	// audit is the trail of the session's audit events (audit.go).
	audit []*eventsv1.AuditEntry
	// lastUse is the session's last use as its last snapshot carried it,
	// raised by NoteUse (its address possibly still sealed).
	lastUse *eventsv1.SessionLastUse
	Version uint64
}

// ReuseMemory is how many of a session's rotated-out refresh tokens are
// remembered, so that presenting one again ends the session (MSC2964): a
// session's snapshot, and its rows in the read model, stay the same size
// however often it is refreshed. An older one is merely invalid.
const ReuseMemory = 4

// consumption is when a refresh token was rotated out: at, and after which
// version of the session (a rotation appended after version v has a stream
// sequence above v, and nothing of the session lies between).
type consumption struct {
	after uint64
	at    time.Time
	// issued is when the token was issued (nil: unknown).
	issued *timestamppb.Timestamp
}

// Fold rebuilds a session from its history. An event carrying the
// session's snapshot (SessionSnapshot) replaces what came before it, so the
// last event alone is enough: what the TOKEN stream keeps.
func Fold(history []eventlog.Record) State {
	s := State{}
	s.reset()
	for _, rec := range history {
		s.Version = rec.Seq
		if snap := eventsv1.SnapshotOf(rec.Event); snap != nil {
			s.restore(snap)
			s.SealedAt = rec.Subject + "/state/session"
			s.noteAudit(rec)
			continue
		}
		switch ev := rec.Event.(type) {
		case *eventsv1.SessionStarted:
			s.Started, s.SealedAt = ev, rec.Subject
			s.createdAt = rec.OccurredAt()
			s.DisplayName = ev.GetDeviceDisplayName()
			s.issue(ev.GetTokens(), rec.OccurredAt(), false)
		case *eventsv1.SessionImported:
			s.Started, s.SealedAt = ev.GetSession(), rec.Subject+"/session"
			s.createdAt = ev.GetCreatedAt().AsTime()
			s.lastActive = ev.GetLastActiveAt().AsTime()
			if ev.GetLastActiveAt() == nil {
				s.lastActive = time.Time{}
			}
			s.DisplayName = ev.GetSession().GetDeviceDisplayName()
			s.imported = map[string]string{}
			for _, t := range ev.GetTokens() {
				if t.GetRefreshHash() != "" {
					s.imported[t.GetRefreshHash()] = t.GetAccessHash()
				}
				s.issue(t, ev.GetCreatedAt().AsTime(), true)
			}
		case *eventsv1.TokensIssued:
			s.rotate(ev, rec.Seq-1, rec.OccurredAt())
		case *eventsv1.SessionRenamed:
			s.DisplayName = ev.GetDeviceDisplayName()
		case *eventsv1.SessionEnded:
			s.Ended, s.endedAt, s.endReason = true, rec.OccurredAt(), ev.GetReason()
		case *eventsv1.SessionSnapshotted:
			// One without a state changes nothing (with one: restored above).
		}
		s.noteAudit(rec)
	}
	return s
}

// reset empties the state's maps.
func (s *State) reset() {
	s.consumed, s.order = map[string]consumption{}, nil
	s.live, s.liveOrder = map[string]*eventsv1.SessionToken{}, nil
	s.imported = nil
}

// issue adds an issue's tokens to the live ones: the current pair, or
// tokens an imported session came with.
func (s *State) issue(t *eventsv1.TokensIssued, at time.Time, imported bool) {
	if h := t.GetAccessHash(); h != "" {
		s.addLive(&eventsv1.SessionToken{Hash: h, IssuedAt: timestamppb.New(at), ExpiresAt: t.GetAccessExpiresAt(), Imported: imported})
	}
	if h := t.GetRefreshHash(); h != "" {
		s.addLive(&eventsv1.SessionToken{Hash: h, Refresh: true, IssuedAt: timestamppb.New(at), AccessHash: t.GetAccessHash(), Imported: imported})
	}
	if !imported {
		s.CurrentRefresh, s.CurrentAccess = t.GetRefreshHash(), t.GetAccessHash()
	}
}

// clone is a copy of the state sharing nothing it changes.
func (s State) clone() State {
	s.consumed, s.imported, s.live = maps.Clone(s.consumed), maps.Clone(s.imported), maps.Clone(s.live)
	s.order, s.liveOrder, s.audit = slices.Clone(s.order), slices.Clone(s.liveOrder), slices.Clone(s.audit)
	return s
}

func (s *State) addLive(t *eventsv1.SessionToken) {
	if _, ok := s.live[t.GetHash()]; !ok {
		s.liveOrder = append(s.liveOrder, t.GetHash())
	}
	s.live[t.GetHash()] = t
}

// rotate applies an issue that replaces a refresh token and revokes an
// access token, after version.
func (s *State) rotate(ev *eventsv1.TokensIssued, after uint64, at time.Time) {
	delete(s.imported, ev.GetReplacesRefreshHash())
	delete(s.live, ev.GetRevokesAccessHash())
	if h := ev.GetReplacesRefreshHash(); h != "" {
		issued := s.live[h].GetIssuedAt()
		delete(s.live, h)
		if _, seen := s.consumed[h]; !seen {
			s.order = append(s.order, h)
		}
		s.consumed[h] = consumption{after: after, at: at, issued: issued}
		for len(s.order) > ReuseMemory {
			delete(s.consumed, s.order[0])
			s.order = s.order[1:]
		}
	}
	s.liveOrder = slices.DeleteFunc(s.liveOrder, func(h string) bool { _, ok := s.live[h]; return !ok })
	s.issue(ev, at, false)
}

// NoteUse raises the session's last use to a use at at and, when ip is
// set, an address noted at ipAt: the newer of each is kept (of two
// addresses noted at the same second, the greater string), as the read
// model keeps them (the token service's activity_projection.go).
func (s *State) NoteUse(at time.Time, ip string, ipAt time.Time) {
	if at.IsZero() {
		return
	}
	lu := &eventsv1.SessionLastUse{}
	if s.lastUse != nil {
		lu = proto.Clone(s.lastUse).(*eventsv1.SessionLastUse)
	}
	if lu.GetAt() == nil || at.After(lu.GetAt().AsTime()) {
		lu.At = timestamppb.New(at)
	}
	known := lu.GetIpAddress() != "" || lu.GetSealedIpAddress() != nil
	if ip != "" && (!known || lu.GetIpAt() == nil || ipAt.After(lu.GetIpAt().AsTime()) ||
		(ipAt.Equal(lu.GetIpAt().AsTime()) && (lu.GetIpAddress() == "" || ip > lu.GetIpAddress()))) {
		lu.IpAddress, lu.SealedIpAddress, lu.IpAt = ip, nil, timestamppb.New(ipAt)
	}
	s.lastUse = lu
}

// LastUse is the session's last use as its state carries it: when, and when
// its newest address was noted (zero: none).
func (s State) LastUse() (at, ipAt time.Time) {
	if s.lastUse.GetAt() != nil {
		at = s.lastUse.GetAt().AsTime()
	}
	if s.lastUse.GetIpAt() != nil {
		ipAt = s.lastUse.GetIpAt().AsTime()
	}
	return at, ipAt
}

// EndedAt is when the session ended (zero: it has not).
func (s State) EndedAt() time.Time { return s.endedAt }

// restore replaces the state with a snapshot's.
func (s *State) restore(snap *eventsv1.SessionSnapshot) {
	version := s.Version
	*s = State{Version: version}
	s.reset()
	s.Started = snap.GetSession()
	s.createdAt = snap.GetCreatedAt().AsTime()
	if snap.GetLastActiveAt() != nil {
		s.lastActive = snap.GetLastActiveAt().AsTime()
	}
	s.DisplayName = snap.GetDeviceDisplayName()
	s.audit = snap.GetAudit()
	s.lastUse = snap.GetLastUse()
	s.Ended, s.endReason = snap.GetEnded(), snap.GetEndReason()
	if snap.GetEndedAt() != nil {
		s.endedAt = snap.GetEndedAt().AsTime()
	}
	for _, t := range snap.GetTokens() {
		switch {
		case t.GetConsumedAt() != nil:
			s.order = append(s.order, t.GetHash())
			s.consumed[t.GetHash()] = consumption{after: t.GetConsumedAfter(), at: t.GetConsumedAt().AsTime(), issued: t.GetIssuedAt()}
		default:
			s.addLive(t)
		}
	}
	// The current pair is the last issued; an imported session's other
	// tokens are its imported ones.
	for _, h := range s.liveOrder {
		switch t := s.live[h]; {
		case t.GetImported() && t.GetRefresh():
			if s.imported == nil {
				s.imported = map[string]string{}
			}
			s.imported[h] = t.GetAccessHash()
		case t.GetImported():
		case t.GetRefresh():
			s.CurrentRefresh = h
		default:
			s.CurrentAccess = h
		}
	}
}

// Snapshot is the session's whole state, for the event that ends at it.
func (s State) Snapshot() *eventsv1.SessionSnapshot {
	started := proto.Clone(s.Started).(*eventsv1.SessionStarted)
	started.Tokens = nil
	snap := &eventsv1.SessionSnapshot{
		Session: started, CreatedAt: timestamppb.New(s.createdAt), DeviceDisplayName: s.DisplayName,
		Ended: s.Ended, EndReason: s.endReason, Audit: s.audit,
	}
	if !s.endedAt.IsZero() {
		snap.EndedAt = timestamppb.New(s.endedAt)
	}
	if !s.lastActive.IsZero() {
		snap.LastActiveAt = timestamppb.New(s.lastActive)
	}
	if s.lastUse.GetAt() != nil {
		snap.LastUse = proto.Clone(s.lastUse).(*eventsv1.SessionLastUse)
		snap.LastUse.UserId = s.Started.GetUserId()
	}
	for _, h := range s.order {
		c := s.consumed[h]
		snap.Tokens = append(snap.Tokens, &eventsv1.SessionToken{Hash: h, Refresh: true, IssuedAt: c.issued, ConsumedAt: timestamppb.New(c.at), ConsumedAfter: c.after})
	}
	for _, h := range s.liveOrder {
		snap.Tokens = append(snap.Tokens, s.live[h])
	}
	return snap
}

// WithState sets on each event decided on a session's state (after its
// version) the snapshot of the state it leads to, as of now: the events to
// append. Events that carry no snapshot pass unchanged.
func WithState(s State, version uint64, now time.Time, decided []proto.Message) []proto.Message {
	if !s.Exists() {
		return decided
	}
	s = s.clone()
	out := make([]proto.Message, len(decided))
	for i, ev := range decided {
		switch ev := ev.(type) { //eventcheck:partial — the decisions on a started session; a start carries its state itself
		case *eventsv1.TokensIssued:
			s.rotate(ev, version, now)
			ev.State = s.Snapshot()
		case *eventsv1.SessionRenamed:
			s.DisplayName = ev.GetDeviceDisplayName()
			ev.State = s.Snapshot()
		case *eventsv1.SessionEnded:
			s.Ended, s.endedAt, s.endReason = true, now, ev.GetReason()
			ev.State = s.Snapshot()
		}
		out[i] = ev
	}
	return out
}

// Exists reports whether the session has started.
func (s State) Exists() bool { return s.Started != nil }

// LiveRefresh returns the refresh token whose hash is hash when it still
// refreshes the session: the session has started and not ended, and the
// token is its current one or an imported one not used yet.
func (s State) LiveRefresh(hash string) (*eventsv1.SessionToken, bool) {
	t, ok := s.live[hash]
	if !s.Exists() || s.Ended || !ok || !t.GetRefresh() || hash == "" {
		return nil, false
	}
	return t, true
}

// Rotation asks to exchange a refresh token for a new pair.
type Rotation struct {
	// ClientID is the authenticated client.
	ClientID string
	// PresentedHash is the hash of the refresh token presented.
	PresentedHash string
	// FirstSeen is the session version when this request first read it: a
	// token consumed after that was consumed by a concurrent request.
	FirstSeen uint64
	// Next is the new pair.
	Next *eventsv1.TokensIssued
	// Now is the time of the request.
	Now time.Time
	// Grace is how long after a rotation a second use of the rotated-out token
	// still counts as a concurrent request (two tabs refreshing at once) rather
	// than a replay.
	Grace time.Duration
}

// Outcome says what a refresh decided.
type Outcome int

// Refresh outcomes.
const (
	// Rotated: the new pair is issued.
	Rotated Outcome = iota + 1
	// Reused: a consumed refresh token came back; the session ends (MSC2964).
	Reused
	// LostRace: a concurrent refresh with the same token won; nothing changes.
	LostRace
)

func invalidGrant(msg string) error { return errs.FailedPrecondition(msg) }

// Refresh decides a refresh-token rotation.
func Refresh(s State, r Rotation) ([]proto.Message, Outcome, error) {
	switch {
	case !s.Exists():
		return nil, 0, invalidGrant("The refresh token is invalid.")
	case s.Started.GetClientId() != r.ClientID:
		return nil, 0, invalidGrant("The refresh token was issued to another client.")
	case s.Ended:
		return nil, 0, invalidGrant("The session has ended.")
	}
	if r.PresentedHash == s.CurrentRefresh && r.PresentedHash != "" {
		next := proto.Clone(r.Next).(*eventsv1.TokensIssued)
		next.SessionId = s.Started.GetSessionId()
		next.ReplacesRefreshHash = s.CurrentRefresh
		next.RevokesAccessHash = s.CurrentAccess
		return []proto.Message{next}, Rotated, nil
	}
	if access, ok := s.imported[r.PresentedHash]; ok && r.PresentedHash != "" {
		next := proto.Clone(r.Next).(*eventsv1.TokensIssued)
		next.SessionId = s.Started.GetSessionId()
		next.ReplacesRefreshHash = r.PresentedHash
		next.RevokesAccessHash = access
		return []proto.Message{next}, Rotated, nil
	}
	if c, ok := s.consumed[r.PresentedHash]; ok {
		if c.after >= r.FirstSeen || r.Now.Sub(c.at) < r.Grace {
			return nil, LostRace, invalidGrant("The refresh token was just used by a concurrent request.")
		}
		return []proto.Message{&eventsv1.SessionEnded{SessionId: s.Started.GetSessionId(), Reason: "refresh_token_reused"}},
			Reused, invalidGrant("The refresh token has already been used; the session has been ended.")
	}
	return nil, 0, invalidGrant("The refresh token is invalid.")
}

// End decides ending a session; ending an ended session changes nothing.
func End(s State, reason string) ([]proto.Message, error) {
	if !s.Exists() {
		return nil, errs.NotFound("No such session.")
	}
	if s.Ended {
		return nil, nil
	}
	return []proto.Message{&eventsv1.SessionEnded{SessionId: s.Started.GetSessionId(), Reason: reason}}, nil
}

// Expiry is when an access token issued now expires.
func Expiry(now time.Time, ttl time.Duration) time.Time { return now.Add(ttl).Truncate(time.Second) }

// MaxDisplayName bounds a device's display name, in characters.
const MaxDisplayName = 100

// Rename decides giving a live session's device a display name. owner, when
// set, must be the session's user: otherwise the session is reported missing.
func Rename(s State, owner, name string) ([]proto.Message, error) {
	switch {
	case !s.Exists(), owner != "" && s.Started.GetUserId() != owner:
		return nil, errs.NotFound("No such session.")
	case s.Ended:
		return nil, errs.FailedPrecondition("This session has ended.")
	case utf8.RuneCountInString(name) > MaxDisplayName:
		return nil, errs.InvalidField("device_display_name", fmt.Sprintf("A device name has at most %d characters.", MaxDisplayName))
	case strings.IndexFunc(name, unicode.IsControl) >= 0 || !utf8.ValidString(name):
		return nil, errs.InvalidField("device_display_name", "A device name cannot contain control characters.")
	case name == s.DisplayName:
		return nil, nil
	}
	return []proto.Message{&eventsv1.SessionRenamed{SessionId: s.Started.GetSessionId(), DeviceDisplayName: name}}, nil
}

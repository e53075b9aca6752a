package session

import (
	"fmt"
	"strings"
	"time"

	"gatehouse.dev/platform/eventlog"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// The audit trail of a session's events: what the token service's audit
// read model records for each, carried in the session's snapshot so that a
// rebuild from the session's last event has them too.

// maxAudit bounds the entries a snapshot carries after the start.
const maxAudit = 64

// Summary is what the audit trail says of one session event, the session
// being of the given kind; false for events it does not record (a rotation,
// a snapshot).
func Summary(rec eventlog.Record, kind string) (string, bool) {
	switch ev := rec.Event.(type) {
	case *eventsv1.SessionStarted:
		return DescribeStart(ev), true
	case *eventsv1.SessionImported:
		st := ev.GetSession()
		return fmt.Sprintf("%s session %s (device %s) imported from %s", KindName(st.GetKind()), st.GetSessionId(), st.GetDeviceId(), ev.GetSource()), true
	case *eventsv1.TokensIssued:
		// A rotation is routine; a personal token regenerated is an act.
		if kind == PersonalKind {
			return "personal access token of session " + ev.GetSessionId() + " regenerated" + DescribeExpiry(ev), true
		}
	case *eventsv1.SessionRenamed:
		return fmt.Sprintf("session %s renamed to %q", ev.GetSessionId(), ev.GetDeviceDisplayName()), true
	case *eventsv1.SessionEnded:
		return fmt.Sprintf("%s session %s ended: %s", KindName(kind), ev.GetSessionId(), ev.GetReason()), true
	case *eventsv1.SessionSnapshotted:
		// The state written again: nothing happened.
	}
	return "", false
}

// noteAudit adds a record's entry to the state's trail, if it makes one.
func (s *State) noteAudit(rec eventlog.Record) {
	summary, ok := Summary(rec, s.Started.GetKind())
	if !ok {
		return
	}
	start := false
	switch rec.Event.(type) { //eventcheck:partial — the events that start a session; Summary handles every one
	case *eventsv1.SessionStarted, *eventsv1.SessionImported:
		start = true
	}
	e := &eventsv1.AuditEntry{Seq: rec.Seq, EventId: rec.ID(), EventType: rec.Type(), Actor: rec.Envelope.GetActor(),
		OccurredAt: rec.Envelope.GetOccurredAt(), Summary: summary, Start: start}
	s.audit = append(s.audit, e)
	if len(s.audit) > maxAudit+1 { // the start, and the newest maxAudit
		s.audit = append(s.audit[:1], s.audit[len(s.audit)-maxAudit:]...)
	}
}

// KindName names a kind of session for people.
func KindName(kind string) string {
	switch kind {
	case "oauth":
		return "OAuth"
	case "client_credentials":
		return "client credentials"
	case "":
		return "unknown"
	}
	return kind
}

// DescribeStart summarises a session's start (never its tokens' hashes).
func DescribeStart(ev *eventsv1.SessionStarted) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s session %s started", KindName(ev.GetKind()), ev.GetSessionId())
	if ev.GetKind() == PersonalKind {
		fmt.Fprintf(&b, " (personal access token %q", ev.GetDeviceDisplayName())
		if ev.GetOwnerUserId() != "" && ev.GetOwnerUserId() != ev.GetUserId() {
			b.WriteString(", created by user " + ev.GetOwnerUserId())
		}
		b.WriteString(")")
	}
	if ev.GetClientId() != "" {
		b.WriteString(" for client " + ev.GetClientId())
	}
	if ev.GetDeviceId() != "" {
		b.WriteString(" with device " + ev.GetDeviceId())
	}
	if ev.GetScope() != "" {
		fmt.Fprintf(&b, ", scope %q", ev.GetScope())
	}
	if ev.GetKind() == PersonalKind {
		b.WriteString(DescribeExpiry(ev.GetTokens()))
	}
	return b.String() // never the address or user agent: personal data, kept apart (ip_address) and erasable
}

// DescribeExpiry says when a personal token expires.
func DescribeExpiry(t *eventsv1.TokensIssued) string {
	if t.GetAccessExpiresAt() == nil {
		return ", never expires"
	}
	return ", expires " + t.GetAccessExpiresAt().AsTime().UTC().Format(time.RFC3339)
}

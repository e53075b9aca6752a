// Package consumers holds switches for the eventcheck test: some forget an
// event type, some do not.
package consumers

import (
	ev1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// forgets handles two session events and forgets SessionRenamed and TokensIssued.
func forgets(e any) int {
	switch e.(type) {
	case *ev1.SessionStarted:
		return 1
	case *ev1.SessionEnded:
		return 2
	default:
		return 0
	}
}

// complete names every session event.
func complete(e any) int {
	switch e.(type) {
	case *ev1.SessionStarted, *ev1.TokensIssued:
		return 1
	case *ev1.SessionRenamed, *ev1.SessionEnded, *ev1.SessionImported, *ev1.SessionSnapshotted:
		return 2
	}
	return 0
}

// exempt is partial on purpose.
func exempt(e any) int {
	//eventcheck:partial — only a start can reach this
	switch e.(type) {
	case *ev1.SessionStarted:
		return 1
	}
	return 0
}

// filters silently ignores every verification event but one.
func filters(e any) bool {
	_, ok := e.(*ev1.VerificationConfirmed)
	return ok
}

// single is fine: the keys aggregate holds one event type.
func single(e any) bool {
	_, ok := e.(*ev1.SigningKeysGenerated)
	return ok
}

// notEvents names a type of the package that is no event.
func notEvents(e any) bool {
	switch e.(type) {
	case *ev1.Envelope:
		return true
	}
	return false
}

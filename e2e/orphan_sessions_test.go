package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"gatehouse.dev/platform/eventlog"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// orphanSessions counts the sessions of a client, read from the TOKEN
// stream of the process's embedded NATS (with Gatehouse's own nkey), that
// are not ended and whose access token is not among delivered: sessions no
// client can ever use (issue 17: every failed client_credentials request
// left one). It waits up to a deadline for them to end, as the process ends
// them in the background, and returns how many are left and how many
// sessions the client has in all.
func orphanSessions(t *testing.T, dataDir, natsAddr, clientID string, delivered []string) (orphans, sessions int) {
	t.Helper()
	got := map[string]bool{}
	for _, tok := range delivered {
		sum := sha256.Sum256([]byte(tok))
		got[hex.EncodeToString(sum[:])] = true
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		orphans, sessions = countOrphans(t, dataDir, natsAddr, clientID, got)
		if orphans == 0 || time.Now().After(deadline) {
			return orphans, sessions
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func countOrphans(t *testing.T, dataDir, natsAddr, clientID string, delivered map[string]bool) (orphans, sessions int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nc, err := nats.Connect("nats://"+natsAddr, natsCredentials(t, dataDir))
	if err != nil {
		t.Fatalf("connect with Gatehouse's credentials: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	log, err := eventlog.Follow(js, eventlog.StreamOf(eventsv1.Token, 0))
	if err != nil {
		t.Fatal(err)
	}
	subjects := []string{eventsv1.TokenSession.Subjects()}
	last, err := log.LastSeqOf(ctx, subjects...)
	if err != nil {
		t.Fatal(err)
	}
	type state struct {
		access string
		ended  bool
	}
	all := map[string]*state{}
	readCtx, stop := context.WithCancel(ctx)
	defer stop()
	err = log.Read(readCtx, 1, subjects, func(rec eventlog.Record) error {
		switch ev := rec.Event.(type) {
		case *eventsv1.SessionStarted:
			if ev.GetClientId() == clientID {
				all[ev.GetSessionId()] = &state{access: ev.GetTokens().GetAccessHash()}
			}
		case *eventsv1.SessionEnded:
			if s := all[ev.GetSessionId()]; s != nil {
				s.ended = true
			}
		}
		if rec.Seq >= last {
			stop()
		}
		return nil
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	for _, s := range all {
		if !s.ended && !delivered[s.access] {
			orphans++
		}
	}
	return orphans, len(all)
}

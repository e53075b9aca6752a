package e2e

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// Two clients racing to refresh with the same refresh token: the event log's
// concurrency check picks exactly one winner, and the session survives.
func TestConcurrentRefreshHasOneWinner(t *testing.T) {
	e := newOAuthEnv(t)
	ctx := context.Background()
	for round := range 3 {
		verifier := oauth2.GenerateVerifier()
		back := e.authorize(t, e.client, oauth2.S256ChallengeOption(verifier))
		tok, err := e.client.Exchange(ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		expired := *tok
		expired.Expiry = time.Now().Add(-time.Minute)
		const racers = 4
		var (
			wg      sync.WaitGroup
			results [racers]*oauth2.Token
			errs    [racers]error
			start   = make(chan struct{})
		)
		for i := range racers {
			wg.Go(func() {
				<-start
				results[i], errs[i] = e.client.TokenSource(ctx, &expired).Token()
			})
		}
		close(start)
		wg.Wait()
		var winner *oauth2.Token
		for i := range racers {
			var re *oauth2.RetrieveError
			switch {
			case errs[i] == nil:
				if winner != nil {
					t.Fatalf("round %d: two refreshes with one token both succeeded", round)
				}
				winner = results[i]
			case errors.As(errs[i], &re) && re.ErrorCode == "invalid_grant":
			default:
				t.Fatalf("round %d: unexpected error %v", round, errs[i])
			}
		}
		if winner == nil {
			t.Fatalf("round %d: no refresh succeeded", round)
		}
		if got := e.introspect(t, winner.AccessToken); got["active"] != true {
			t.Fatalf("round %d: the winner's token is not active (the race ended the session): %v", round, got)
		}
	}
}

// A refresh token used twice ends the whole session (MSC2964). With no grace
// period, even an immediate second use is a replay.
func TestRefreshTokenReplayEndsSession(t *testing.T) {
	e := newOAuthEnv(t, "GATEHOUSE_REFRESH_REUSE_GRACE=0s")
	ctx := context.Background()
	verifier := oauth2.GenerateVerifier()
	back := e.authorize(t, e.client, oauth2.S256ChallengeOption(verifier))
	tok, err := e.client.Exchange(ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	expired := *tok
	expired.Expiry = time.Now().Add(-time.Minute)
	fresh, err := e.client.TokenSource(ctx, &expired).Token()
	if err != nil {
		t.Fatal(err)
	}
	// Replay the consumed refresh token.
	_, err = e.client.TokenSource(ctx, &expired).Token()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Fatalf("replayed refresh: %v", err)
	}
	if got := e.introspect(t, fresh.AccessToken); got["active"] != false {
		t.Fatalf("the session survived a refresh token replay: %v", got)
	}
}

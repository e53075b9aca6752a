package e2e

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// A session revoked through one token service replica is inactive on another
// within a second: every replica follows the event stream.
func TestRevocationReachesEveryReplica(t *testing.T) {
	d := newSplitDeployment(t)
	a := d.process(t, "accounts,authorize,token,notify,web", nil, "")
	e := envOn(t, a)
	b := d.process(t, "token", a, e.issuer)
	bBase := "http://" + b.http + "/"

	cfg := clientFor(t, e, bBase) // tokens come from replica B
	verifier := oauth2.GenerateVerifier()
	back := e.authorize(t, cfg, oauth2.S256ChallengeOption(verifier))
	tok, err := cfg.Exchange(context.Background(), back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange on replica B: %v", err)
	}
	if got := introspectAt(t, e.issuer, tok.AccessToken); got["active"] != true {
		t.Fatalf("replica A does not know B's token: %v", got)
	}
	resp, err := http.PostForm(bBase+"oauth2/revoke", url.Values{"token": {tok.AccessToken}, "client_id": {cfg.ClientID}})
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke on B: %v %v", resp, err)
	}
	resp.Body.Close()
	revoked := time.Now()
	for introspectAt(t, e.issuer, tok.AccessToken)["active"] != false {
		if time.Since(revoked) > time.Second {
			t.Fatal("replica A still reports the token active a second after B revoked it")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Kill the token service in the middle of a login storm and restart it: no
// issued token is lost and no code is used twice.
func TestTokenServiceCrashDuringLoginStorm(t *testing.T) {
	d := newSplitDeployment(t)
	front := d.process(t, "accounts,authorize,notify,web", nil, "")
	e := envOn(t, front)
	tokenSrv := d.process(t, "token", front, e.issuer)
	tokenBase := "http://" + tokenSrv.http + "/"
	cfg := clientFor(t, e, tokenBase)

	type login struct {
		code, verifier string
		tok            *oauth2.Token
		err            error
	}
	const workers, perWorker = 4, 6
	var (
		mu      sync.Mutex
		logins  []*login
		retries int // exchanges that met the outage and were retried
		wg      sync.WaitGroup
	)
	crashAfter := make(chan struct{})
	var once sync.Once
	for range workers {
		wg.Go(func() {
			for range perWorker {
				l := &login{verifier: oauth2.GenerateVerifier()}
				back := e.authorize(t, cfg, oauth2.S256ChallengeOption(l.verifier))
				l.code = back.Query().Get("code")
				// Retry through the outage, as a client would, for up to a minute.
				deadline := time.Now().Add(time.Minute)
				for {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					l.tok, l.err = cfg.Exchange(ctx, l.code, oauth2.VerifierOption(l.verifier))
					cancel()
					var re *oauth2.RetrieveError
					if l.err == nil || errors.As(l.err, &re) && re.Response.StatusCode < 500 || time.Now().After(deadline) {
						break
					}
					mu.Lock()
					retries++
					mu.Unlock()
					time.Sleep(100 * time.Millisecond)
				}
				mu.Lock()
				logins = append(logins, l)
				if len(logins) == workers*perWorker/3 {
					once.Do(func() { close(crashAfter) })
				}
				mu.Unlock()
			}
		})
	}
	<-crashAfter
	tokenSrv = tokenSrv.restart(t)
	wg.Wait()

	issued := 0
	for _, l := range logins {
		if l.err != nil {
			var re *oauth2.RetrieveError
			if !errors.As(l.err, &re) || re.ErrorCode != "invalid_grant" {
				t.Errorf("a login failed with something other than invalid_grant: %v", l.err)
			}
			continue
		}
		issued++
		if got := introspectAt(t, tokenBase, l.tok.AccessToken); got["active"] != true {
			t.Errorf("an issued access token was lost: %v", got)
		}
		// The code cannot be used again.
		_, err := cfg.Exchange(context.Background(), l.code, oauth2.VerifierOption(l.verifier))
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
			t.Errorf("a code was accepted twice: %v", err)
		}
	}
	if issued < workers*perWorker/2 {
		t.Fatalf("only %d of %d logins got tokens", issued, len(logins))
	}
	if retries == 0 {
		t.Fatal("no token request met the outage: the crash did not happen during the storm")
	}
	t.Logf("%d logins, %d got tokens, %d requests retried through the outage", len(logins), issued, retries)
}

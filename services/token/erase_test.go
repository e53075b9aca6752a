package token

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/prototext"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/ids"
	"gatehouse.dev/platform/personal"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// A user's sessions keep their address and user agent sealed under the
// user's personal key, in the events; erasing the user (the accounts service
// destroys the key and appends UserDeactivated with erase) ends the
// sessions and empties those fields in the read model, and a rebuild finds
// nothing to put back. The same holds for the audit trail's addresses (the
// entries stay, with no address). Another user's sessions keep theirs; a
// client acting for itself keeps them in clear (nobody's to erase).
func TestErasureEmptiesSessionsAddresses(t *testing.T) {
	ctx := context.Background()
	e := newLockEnv(t)
	r := e.replica(t)
	keys, err := personal.Open(ctx, e.js, e.keyring, personal.Config{}) // the accounts service's
	if err != nil {
		t.Fatal(err)
	}
	type person struct{ id, ip, ip2, agent, session string }
	alice := &person{id: e.newUser(t), ip: "192.0.2.41", ip2: "2001:db8:41::1", agent: "alice's client/4.1"}
	bob := &person{id: e.newUser(t), ip: "198.51.100.42", ip2: "2001:db8:42::1", agent: "bob's client/4.2"}
	for _, p := range []*person{alice, bob} {
		if _, err := keys.Create(ctx, personal.User(p.id)); err != nil {
			t.Fatal(err)
		}
		p.session = ids.New()
		pr := r.svc.mint(p.session, true)
		if err := r.svc.start(ctx, &eventsv1.SessionStarted{SessionId: p.session, Kind: "oauth", ClientId: "c", UserId: p.id, Username: "u",
			Scope: "openid", Tokens: pr.issued, IpAddress: p.ip, UserAgent: p.agent}, "user:"+p.id); err != nil {
			t.Fatal(err)
		}
		r.svc.activity.Touch(p.session, p.id, p.ip2, time.Now().Add(time.Minute))
	}
	machine := ids.New()
	if err := r.svc.start(ctx, &eventsv1.SessionStarted{SessionId: machine, Kind: "client_credentials", ClientId: "svc",
		Tokens: r.svc.mint(machine, false).issued, IpAddress: "203.0.113.9", UserAgent: "a service"}, "client:svc"); err != nil {
		t.Fatal(err)
	}
	r.svc.flushActivity(ctx)

	// In the events: sealed for users, in clear for the client.
	raw := rawTokenEvents(t, r)
	for _, v := range []string{alice.ip, alice.ip2, alice.agent, bob.ip, bob.ip2, bob.agent} {
		if strings.Contains(raw, v) {
			t.Errorf("the TOKEN stream holds %q in clear", v)
		}
	}
	if !strings.Contains(raw, "203.0.113.9") {
		t.Error("a client's own session lost its address")
	}
	row := func(p *person) (ip, agent string) {
		t.Helper()
		if err := r.pool.QueryRow(ctx, `SELECT `+lastAddressSQL+`, s.user_agent FROM sessions s`+activityJoin+` WHERE s.session_id = $1`, p.session).Scan(&ip, &agent); err != nil {
			t.Fatal(err)
		}
		return ip, agent
	}
	waitUntil(t, "the activity in the read model", func() bool {
		ip, agent := row(alice)
		return ip == alice.ip2 && agent == alice.agent
	})
	audit := func(p *person) (entries int, ips []string) {
		t.Helper()
		rows, err := r.pool.Query(ctx, `SELECT ip_address, summary FROM audit_entries WHERE user_id = $1`, p.id)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var ip, summary string
			if err := rows.Scan(&ip, &summary); err != nil {
				t.Fatal(err)
			}
			entries++
			if ip != "" {
				ips = append(ips, ip)
			}
			for _, v := range []string{p.ip, p.ip2, p.agent} {
				if strings.Contains(summary, v) {
					t.Errorf("an audit summary holds %q: %s", v, summary)
				}
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return entries, ips
	}
	waitUntil(t, "the audit trail", func() bool {
		n, ips := audit(alice)
		return n == 1 && len(ips) == 1 && ips[0] == alice.ip
	})

	// The erasure, as the accounts service records it.
	if err := keys.Destroy(ctx, personal.User(alice.id)); err != nil {
		t.Fatal(err)
	}
	e.account(t, alice.id, &eventsv1.UserDeactivated{UserId: alice.id, Erase: true})
	waitEnded(t, r, alice.id, 1, "user_deactivated")
	waitReactor(t, r, e)
	check := func(what string) {
		t.Helper()
		if err := r.svc.catchUpAudit(ctx); err != nil {
			t.Fatal(err)
		}
		if ip, agent := row(alice); ip != "" || agent != "" {
			t.Errorf("%s: alice's session still has %q, %q", what, ip, agent)
		}
		if ip, agent := row(bob); ip != bob.ip2 || agent != bob.agent {
			t.Errorf("%s: bob's session has %q, %q", what, ip, agent)
		}
		if n, ips := audit(alice); n < 2 || len(ips) != 0 { // started, ended
			t.Errorf("%s: alice's audit trail has %d entries, addresses %q", what, n, ips)
		}
		if n, ips := audit(bob); n != 1 || len(ips) != 1 || ips[0] != bob.ip {
			t.Errorf("%s: bob's audit trail has %d entries, addresses %q", what, n, ips)
		}
	}
	check("after the erasure")
	// In AUDIT, the addresses are sealed under each user's key: alice's
	// no longer open.
	if raw := rawEvents(t, r.svc.auditLog); strings.Contains(raw, alice.ip) || strings.Contains(raw, bob.ip) {
		t.Errorf("the AUDIT stream holds an address in clear:\n%s", raw)
	}
	opened := 0
	readAll(t, r.svc.auditLog, func(rec eventlog.Record) {
		if err := r.svc.personal.UnsealRecord(ctx, &rec); err != nil {
			t.Fatal(err)
		}
		e := rec.Event.(*eventsv1.TokenAuditRecorded).GetEntry()
		switch e.GetUserId() {
		case alice.id:
			if e.GetIpAddress() != "" {
				t.Errorf("alice's entry %s opens to %q after her erasure", e.GetEventType(), e.GetIpAddress())
			}
		case bob.id:
			if e.GetIpAddress() == bob.ip {
				opened++
			}
		}
	})
	if opened != 1 {
		t.Errorf("bob's start in AUDIT opens to his address %d times, want once", opened)
	}
	for _, p := range []string{sessionsProjection, auditProjection} {
		if _, err := r.svc.projections.Rebuild(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	check("after a rebuild")
}

// rawTokenEvents returns every event of the TOKEN stream, as text.
func rawTokenEvents(t *testing.T, r *replica) string { return rawEvents(t, r.svc.log) }

// rawEvents returns every event of a stream, as text.
func rawEvents(t *testing.T, l *eventlog.Log) string {
	t.Helper()
	var b strings.Builder
	readAll(t, l, func(rec eventlog.Record) {
		if rec.Event != nil {
			b.WriteString(prototext.Format(rec.Event))
		}
	})
	return b.String()
}

// readAll calls fn on every record of a stream, in order.
func readAll(t *testing.T, l *eventlog.Log, fn func(eventlog.Record)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	last, err := l.LastSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if last == 0 {
		return
	}
	err = l.Read(ctx, 1, nil, func(rec eventlog.Record) error {
		fn(rec)
		if rec.Seq >= last {
			cancel()
		}
		return nil
	})
	if err != nil && ctx.Err() == nil {
		t.Fatal(err)
	}
}

// waitUntil polls cond for up to ten seconds.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within ten seconds", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

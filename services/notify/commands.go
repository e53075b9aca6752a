package notify

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/clientaddr"
	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/ids"
	"gatehouse.dev/platform/personal"
	"gatehouse.dev/platform/ratelimit"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/notify/internal/verification"
)

// verificationAggregate is the aggregate type of verifications' subjects.
var verificationAggregate = eventsv1.NotifyVerification.Type

// startInput is the input of StartVerification.
type startInput struct {
	Email    string
	Purpose  eventsv1.VerificationPurpose
	UserID   string
	ClientIP string
	Locale   string
}

// started is what StartVerification answers.
type started struct {
	ID          string
	ExpiresAt   time.Time
	ResendAfter time.Time
}

// start opens a verification; its email follows from the delivery consumer.
//
// A recovery for an address without an account (no user id) takes the same
// path and answers the same way: it is validated, rate-limited, recorded and
// waited for like any other, and only the delivery consumer, which finds
// nobody to write to, behaves differently — after the answer.
func (s *Service) start(ctx context.Context, in startInput, actor string) (*started, error) {
	cmd, err := verification.StartCommand{
		ID: ids.New(), Email: in.Email, Purpose: in.Purpose, UserID: in.UserID, Locale: in.Locale,
	}.Normalize()
	if err != nil {
		return nil, err
	}
	ip, err := clientKey(in.ClientIP)
	if err != nil {
		return nil, err
	}
	now := s.now()
	limits := []ratelimit.Key{{Rule: s.cfg.Limits.EmailPerAddress, Subject: cmd.Email}, {Rule: s.cfg.Limits.EmailPerSession, Subject: cmd.ID}}
	if ip != "" {
		limits = append(limits, ratelimit.Key{Rule: s.cfg.Limits.EmailPerIP, Subject: ip})
	}
	if err := s.take(ctx, limits...); err != nil {
		return nil, err
	}
	if err := s.checkRoom(ctx); err != nil {
		return nil, err
	}
	decided, err := verification.Start(verification.State{}, cmd, s.key, now)
	if err != nil {
		return nil, err
	}
	ref := eventlog.Ref{Type: verificationAggregate, ID: cmd.ID}
	end := now.Add(s.cfg.life())
	sealed, err := s.seal(ctx, s.expiring(eventlog.Writes(ref, actor, 0, decided...), end))
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "The verification could not be started right now; try again.", err)
	}
	appended, err := s.pending.Append(ctx, sealed...)
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "The verification could not be started right now; try again.", err)
	}
	if err := s.projections.WaitFor(ctx, verificationsProjection, appended.Last()); err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "The verification was started but is not visible yet; try again shortly.", err)
	}
	ev := decided[0].(*eventsv1.VerificationStarted)
	return &started{
		ID:          cmd.ID,
		ExpiresAt:   ev.GetExpiresAt().AsTime(),
		ResendAfter: ev.GetIssuedAt().AsTime().Add(verification.ResendInterval),
	}, nil
}

// resent is what ResendVerification answers.
type resent struct {
	ExpiresAt   time.Time
	ResendAfter time.Time
	ResendsLeft uint32
}

// resend issues a new code (or ticket); the old one stops working. The
// verification decides first (30 s apart, at most 5), and only a resend it
// allows is charged to the client IP's allowance.
func (s *Service) resend(ctx context.Context, id, clientIP, actor string) (*resent, error) {
	if err := verification.ValidateID(id); err != nil {
		return nil, err
	}
	ip, err := clientKey(clientIP)
	if err != nil {
		return nil, err
	}
	now := s.now()
	charged := false
	var after verification.State
	ref := eventlog.Ref{Type: verificationAggregate, ID: id}
	appended, err := s.pending.Execute(ctx, ref, func(history []eventlog.Record, version uint64) ([]eventlog.Write, error) {
		st := verification.Fold(history)
		if st.Exists() && !now.Before(s.usableUntil(st)) {
			return nil, errVerificationOver()
		}
		decided, err := verification.Reissue(st, s.key, now)
		if err != nil {
			return nil, err
		}
		if !charged {
			limits := []ratelimit.Key{{Rule: s.cfg.Limits.EmailPerSession, Subject: id}}
			if ip != "" {
				limits = append(limits, ratelimit.Key{Rule: s.cfg.Limits.EmailPerIP, Subject: ip})
			}
			if err := s.take(ctx, limits...); err != nil {
				return nil, err
			}
			charged = true
		}
		after = st
		after.Apply(eventlog.Record{Seq: version, Envelope: &eventsv1.Envelope{}, Event: decided[0]})
		return s.expiring(eventlog.Writes(ref, actor, version, decided...), s.end(st)), nil
	})
	if err != nil {
		return nil, commandError(err)
	}
	if err := s.projections.WaitFor(ctx, verificationsProjection, appended.Last()); err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "A new code was issued but is not visible yet; try again shortly.", err)
	}
	return &resent{ExpiresAt: after.ExpiresAt, ResendAfter: after.ResendAfter(), ResendsLeft: after.ResendsLeft()}, nil
}

// checkCode confirms a verification with its code. A wrong code is recorded
// before it is reported, so the attempt limit holds across replicas and races.
func (s *Service) checkCode(ctx context.Context, id, code, actor string) (verification.State, error) {
	if err := verification.ValidateID(id); err != nil {
		return verification.State{}, err
	}
	code, err := verification.NormalizeCode(code)
	if err != nil {
		return verification.State{}, err
	}
	return s.confirm(ctx, id, actor, func(st verification.State, now time.Time) ([]proto.Message, error) {
		return verification.CheckCode(st, code, s.key, now)
	})
}

// checkTicket confirms a recovery with the ticket of its link.
func (s *Service) checkTicket(ctx context.Context, ticket, actor string) (verification.State, error) {
	if err := verification.ValidateTicket(ticket); err != nil {
		return verification.State{}, err
	}
	id, err := s.verificationByTicket(ctx, ticket)
	if err != nil {
		return verification.State{}, err
	}
	return s.confirm(ctx, id, actor, func(st verification.State, now time.Time) ([]proto.Message, error) {
		return verification.CheckTicket(st, ticket, now)
	})
}

// confirm runs a check on a verification: it appends what the check decided
// (a confirmation, or a failed attempt) and then returns the check's verdict.
func (s *Service) confirm(ctx context.Context, id, actor string, check func(verification.State, time.Time) ([]proto.Message, error)) (verification.State, error) {
	now := s.now()
	var (
		verdict error
		st      verification.State
	)
	ref := eventlog.Ref{Type: verificationAggregate, ID: id}
	appended, err := s.pending.Execute(ctx, ref, func(history []eventlog.Record, version uint64) ([]eventlog.Write, error) {
		// The confirmation carries the address: open it to seal it again.
		if err := s.personal.UnsealHistory(ctx, history); err != nil {
			return nil, err
		}
		st = verification.Fold(history)
		decided, err := check(st, now)
		verdict = err
		if len(decided) == 0 {
			return nil, err
		}
		return s.seal(ctx, s.expiring(eventlog.Writes(ref, actor, version, decided...), s.end(st)))
	})
	if err != nil {
		return verification.State{}, commandError(err)
	}
	if appended.Last() > 0 {
		if err := s.projections.WaitFor(ctx, verificationsProjection, appended.Last()); err != nil {
			return verification.State{}, errs.Wrap(errs.KindUnavailable, "The check was recorded but is not visible yet; try again shortly.", err)
		}
	}
	if verdict != nil {
		return verification.State{}, verdict
	}
	return st, nil
}

// seal seals the addresses in writes: under the verification's user's
// personal key, or, for a registration, a recovery of an unknown address or
// a user without a key, under the verification's own (personal.Flow), which
// expires after personal.FlowTTL.
func (s *Service) seal(ctx context.Context, ws []eventlog.Write) ([]eventlog.Write, error) {
	out := make([]eventlog.Write, len(ws))
	for i, w := range ws {
		sealed, err := s.personal.SealWithFallback(ctx, w.Event.Payload, s.pending.Subject(w.Event.Aggregate), personal.Flow(w.Event.Aggregate.ID))
		if err != nil {
			return nil, err
		}
		w.Event.Payload = sealed
		out[i] = w
	}
	return out, nil
}

// commandError keeps errs errors and reports anything else (the log being
// unreachable, a contended aggregate) as unavailable.
func commandError(err error) error {
	return errs.Classify(err, errs.KindUnavailable, "The verification cannot be changed right now; try again.")
}

// clientKey is the rate-limit subject of a client IP (clientaddr.KeyOf: the
// address itself for IPv4, its /64 network for IPv6). Empty for no IP.
func clientKey(ip string) (string, error) {
	ip = strings.TrimSpace(ip)
	if ip == "" {
		return "", nil
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return "", errs.InvalidField("client_ip", "client_ip must be an IPv4 or IPv6 address")
	}
	return clientaddr.KeyOf(addr.Unmap().WithZone("")), nil
}

// take takes a token from each key's bucket: a refusal is a rate-limited
// error saying when to retry, and a store failing closed an unavailable one.
func (s *Service) take(ctx context.Context, keys ...ratelimit.Key) error {
	d, err := s.limiter.Take(ctx, keys...)
	switch {
	case err != nil:
		return err
	case !d.Allowed:
		return rateLimited(d.RetryAfter)
	}
	return nil
}

// rateLimited is the error of an exhausted allowance, saying when to retry.
func rateLimited(wait time.Duration) error {
	secs := max(int64((wait+time.Second-1)/time.Second), 1)
	when := fmt.Sprintf("%d seconds", secs)
	switch mins := (secs + 59) / 60; {
	case secs < 60:
	case mins == 1:
		when = "1 minute"
	default:
		when = fmt.Sprintf("%d minutes", mins)
	}
	e := errs.RateLimited("Too many verification emails were asked for; try again in " + when)
	e.Facts = map[string]string{errs.FactRetryAfterSeconds: strconv.FormatInt(secs, 10)}
	return e
}

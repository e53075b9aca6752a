package notify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/projection"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/notify/internal/mailer"
	"gatehouse.dev/services/notify/internal/verification"
)

// deliveryName is the reactor that sends emails.
const deliveryName = "delivery"

// deliveryReactor sends the email of every issued code and ticket. It is a
// reactor (platform/projection): one leader at a time, events one by one in
// stream order, a checkpoint in PostgreSQL advanced once the email is sent
// and recorded, retries with backoff while the mail server or the log fails,
// so delivery is driven by the stream alone. A command appends
// VerificationStarted (or VerificationCodeReissued) and answers; the email
// follows from here, also when the process died between the two. Sending
// happens outside any database transaction.
//
// The log, not the checkpoint, says what was sent: before sending, the
// aggregate is loaded and an issue already recorded as delivered (or refused,
// superseded, expired, confirmed) is skipped, so a redelivered event, a
// replay after a crash or a rebuild sends nothing twice. EmailDelivered is
// appended with the version the decision was made on (Execute reloads and
// re-decides on a conflict, and never records an issue twice).
//
// What remains is the at-least-once window between the mail server's
// acceptance and that append: a crash inside it sends the email again on
// restart. It is kept small: the SMTP session ends without waiting for the
// reply to QUIT, the append is a single publish, and a failing append is
// retried before the event is given up. The Message-ID of a resent email is
// the same ("<verification id>.<issue>@domain"), so mail systems that
// deduplicate by Message-ID show it once.
//
// A rebuild (gatehouse projections rebuild notify.delivery) replays the
// stream through it and sends nothing twice.
//
// A verification that expired before its email went out leaves a marker
// and an empty history: nothing is sent, and the reactor moves on.
func (s *Service) deliveryReactor() projection.Reactor {
	return projection.Reactor{
		Name:     deliveryName,
		Source:   s.pending,
		Subjects: []string{eventsv1.NotifyVerification.Subjects()},
		Handle:   s.deliver,
		RetryMax: 10 * time.Second,
	}
}

// deliver sends the email of the issue an event created, if it still should be.
// An error makes the reactor try the same event again, with backoff.
func (s *Service) deliver(ctx context.Context, rec eventlog.Record) error {
	if rec.Expired {
		return nil // the verification is gone, and its emails with it
	}
	var issue uint32
	switch ev := rec.Event.(type) {
	case *eventsv1.VerificationStarted:
		issue = 1
	case *eventsv1.VerificationCodeReissued:
		issue = ev.GetIssue()
	case *eventsv1.VerificationAttemptFailed, *eventsv1.VerificationConfirmed,
		*eventsv1.EmailDelivered, *eventsv1.EmailDeliveryFailed:
		return nil // no email to send
	default:
		return eventlog.Unhandled(rec)
	}
	ref := eventlog.Ref{Type: verificationAggregate, ID: rec.Aggregate().ID}
	history, _, err := s.pending.Load(ctx, ref)
	if err != nil {
		return err
	}
	if err := s.personal.UnsealHistory(ctx, history); err != nil {
		return err
	}
	st := verification.Fold(history)
	if ok, why := verification.ShouldDeliver(st, issue, s.now()); !ok {
		s.logger.DebugContext(ctx, "email not sent", "verification_id", st.ID, "issue", issue, "why", why)
		return nil
	}
	if st.Email == "" {
		// Its personal key is gone: the user was erased, or the flow's key
		// expired (delivery was down for hours). Nobody to write to.
		s.logger.InfoContext(ctx, "email not sent: the address is erased", "verification_id", st.ID, "issue", issue)
		return nil
	}
	msg, err := s.compose(st, issue)
	if err != nil {
		return err
	}
	err = s.sender.Send(ctx, msg)
	if refused, ok := errors.AsType[*mailer.PermanentError](err); ok {
		s.logger.WarnContext(ctx, "mail server refused an email for good", "verification_id", st.ID, "issue", issue, "reply", refused.Reply)
		return s.record(ctx, ref, func(st verification.State) []proto.Message {
			return verification.DeliveryFailed(st, issue, refused.Reply)
		})
	}
	if err != nil {
		return fmt.Errorf("send email of verification %s issue %d: %w", st.ID, issue, err)
	}
	// The server has the email now: record that even when shutdown begins.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if err := s.record(rctx, ref, func(st verification.State) []proto.Message {
		return verification.Delivered(st, issue, msg.MessageID)
	}); err != nil {
		s.logger.ErrorContext(ctx, "email sent but its delivery not recorded: it will be sent again",
			"verification_id", st.ID, "issue", issue, "message_id", msg.MessageID, "err", err)
		return err
	}
	s.logger.InfoContext(ctx, "email delivered", "verification_id", st.ID, "issue", issue, "message_id", msg.MessageID)
	return nil
}

// recordAttempts bounds how often record retries a failing append, and
// recordTimeout how long recording a delivery may take, shutdown or not.
const (
	recordAttempts = 6
	recordTimeout  = 5 * time.Second
)

// record appends the outcome of a delivery, retrying failures of the log for
// a few seconds: every failed attempt widens the window in which the email
// would be sent twice.
func (s *Service) record(ctx context.Context, ref eventlog.Ref, decide func(verification.State) []proto.Message) error {
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		_, err := s.pending.Execute(ctx, ref, func(history []eventlog.Record, version uint64) ([]eventlog.Write, error) {
			st := verification.Fold(history)
			return s.expiring(eventlog.Writes(ref, "system", version, decide(st)...), s.end(st)), nil
		})
		if err == nil || attempt == recordAttempts || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff *= 2
	}
}

// compose writes the email of one issue of a verification.
func (s *Service) compose(st verification.State, issue uint32) (*mailer.Message, error) {
	now := s.now()
	c := mailer.Content{
		ServiceName: s.cfg.ServiceName,
		Email:       st.Email,
		Purpose:     purposeName(st.Purpose),
		// Whole minutes left, rounded up: an email sent late says so.
		Minutes: int((st.ExpiresAt.Sub(now) + time.Minute - 1) / time.Minute),
	}
	if st.UsesCode() {
		c.Kind, c.Code = mailer.KindCode, s.key.Code(st.ID, issue)
	} else {
		c.Kind, c.Link = mailer.KindRecovery, s.publicURL+"recover/"+s.key.Ticket(st.ID, issue)
	}
	subject, text, html, err := s.templates.Render(c, st.Locale)
	if err != nil {
		return nil, err
	}
	return &mailer.Message{
		From: s.from, ReplyTo: s.cfg.ReplyTo, To: st.Email,
		Subject: subject, Text: text, HTML: html,
		MessageID: fmt.Sprintf("<%s.%d@%s>", st.ID, issue, s.domain),
		Date:      now,
	}, nil
}

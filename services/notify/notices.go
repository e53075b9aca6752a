package notify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/projection"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/notify/internal/mailer"
)

// Security notices. Every change of a person's sign-in methods (a passkey
// added or removed, the authenticator app set up or removed, recovery codes
// made or used, an administrator's reset) is an event of the accounts
// service's accounts.factors.<user> aggregate carrying where to write
// (notice_email, sealed under the person's key, and notice_locale); this
// reactor, following that stream read-only, emails the person about it.
//
// A notice is at least once: a crash between sending and the checkpoint
// sends it again, with the same Message-ID (<event id>@domain), which mail
// systems deduplicate. A notice older than noticeMaxAge is not sent, so a
// replay (a rebuild, a new deployment reading an old stream) sends nothing
// stale; neither is one whose address no longer opens (an erased person).

// noticesName is the reactor that sends security notices.
const noticesName = "security_notices"

// noticeMaxAge is how old a change may be and still be told.
const noticeMaxAge = time.Hour

func (s *Service) noticesReactor(accounts *eventlog.Log) projection.Reactor {
	return projection.Reactor{
		Name:     noticesName,
		Source:   accounts,
		Subjects: []string{eventsv1.AccountsFactors.Subjects()},
		Handle:   s.notice,
		RetryMax: 10 * time.Second,
	}
}

// notice sends the email of a change, if it calls for one.
func (s *Service) notice(ctx context.Context, rec eventlog.Record) error {
	var change string
	switch rec.Event.(type) {
	case *eventsv1.PasskeyAdded:
		change = "passkey_added"
	case *eventsv1.PasskeyRemoved:
		change = "passkey_removed"
	case *eventsv1.TOTPEnabled:
		change = "totp_enabled"
	case *eventsv1.TOTPDisabled:
		change = "totp_disabled"
	case *eventsv1.RecoveryCodesGenerated:
		change = "recovery_codes_generated"
	case *eventsv1.RecoveryCodeUsed:
		change = "recovery_code_used"
	case *eventsv1.SecondFactorsReset:
		change = "factors_reset"
	case *eventsv1.PasskeyUsed, *eventsv1.PasskeyRenamed, *eventsv1.TOTPUsed, *eventsv1.SecondFactorRequirementSet:
		return nil // a use, a name, a setting: nothing to warn about
	default:
		return eventlog.Unhandled(rec)
	}
	if s.now().Sub(rec.OccurredAt()) > noticeMaxAge {
		return nil
	}
	if err := s.personal.UnsealRecord(ctx, &rec); err != nil {
		return err
	}
	notice, ok := rec.Event.(interface {
		GetNoticeEmail() string
		GetNoticeLocale() string
	})
	if !ok || notice.GetNoticeEmail() == "" {
		return nil // no address (none given, or erased)
	}
	subject, text, html, err := s.templates.Render(mailer.Content{
		Kind: mailer.KindSecurity, Change: change, ServiceName: s.cfg.ServiceName, Email: notice.GetNoticeEmail(),
	}, notice.GetNoticeLocale())
	if err != nil {
		return err
	}
	msg := &mailer.Message{
		From: s.from, ReplyTo: s.cfg.ReplyTo, To: notice.GetNoticeEmail(),
		Subject: subject, Text: text, HTML: html,
		MessageID: fmt.Sprintf("<%s@%s>", rec.ID(), s.domain), Date: s.now(),
	}
	err = s.sender.Send(ctx, msg)
	if refused, ok := errors.AsType[*mailer.PermanentError](err); ok {
		s.logger.WarnContext(ctx, "mail server refused a security notice for good", "event_id", rec.ID(), "reply", refused.Reply)
		return nil
	}
	if err != nil {
		return fmt.Errorf("send security notice of %s: %w", rec.ID(), err)
	}
	s.logger.InfoContext(ctx, "security notice sent", "event_id", rec.ID(), "change", change, "message_id", msg.MessageID)
	return nil
}

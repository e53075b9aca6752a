// Package verification is the verification aggregate of the notify service: a
// pure reducer that folds a verification's events into a State, and pure
// decisions that turn a command and the current State into the events to
// append. Nothing here does I/O or reads the clock: callers pass the time.
//
// A verification proves that someone reads an email address. It is started
// for a purpose (registration, adding an address, recovery), gets a secret
// (issue 1), may have it reissued (issues 2..6), and is confirmed once.
//
// The rules:
//
//   - Registration and add-email send a 6-digit code valid for CodeTTL;
//     recovery sends a link with a 32-character ticket valid for TicketTTL.
//     A recovery for an address that belongs to no account (no user id) sends
//     nothing, yet is recorded and answered exactly like any other.
//   - Secrets are derived, never stored: Key.Code and Key.Ticket compute them
//     from the service key, the verification id and the issue number, so the
//     delivery consumer can write them into the email. Events hold only their
//     SHA-256 hashes, which checks compare in constant time.
//   - A reissue replaces the secret (the old one stops working) and restarts
//     its lifetime. At most MaxResends reissues, at least ResendInterval apart.
//   - A wrong code is an event (VerificationAttemptFailed): after MaxAttempts
//     wrong codes the verification is locked for good. Reissues do not reset
//     the count, so one verification allows MaxAttempts guesses in all; new
//     verifications are rate-limited per address by the service.
//   - A code or ticket confirms once (VerificationConfirmed); everything after
//     that fails with errs.KindFailedPrecondition.
//   - Each issue is emailed at most once as far as the log knows
//     (EmailDelivered or EmailDeliveryFailed per issue); superseded, expired
//     and confirmed issues are not emailed at all (ShouldDeliver).
package verification

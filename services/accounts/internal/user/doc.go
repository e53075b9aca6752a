// Package user is the user aggregate of the accounts service: a pure reducer
// that folds a user's events into a State, and pure decisions that turn a
// command and the current State into the events to append. Nothing here does
// I/O; the command handlers load the history, call a decision and append its
// events with the State's Version as the expected subject sequence.
//
// Decisions return the events for the user aggregate only. Reserving the
// username and email (and releasing an email) are events of their own
// aggregates, which the handler appends in the same atomic batch, keyed by
// UsernameKey and EmailKey (a keyed hash of the address).
//
// The rules:
//
//   - Every decision but Register needs an existing user, else it fails with
//     errs.KindNotFound. Register needs a user that does not exist yet, else
//     errs.KindAlreadyExists.
//   - Register needs the user id and the homeserver's name (a caller bug,
//     errs.KindInternal, without them). It validates the username with
//     ValidateUsername (Matrix localpart rules), the optional email with
//     NormalizeEmail (stored lower-cased) and the optional display name with
//     ValidateDisplayName. Its password hash is opaque here (sealed by the
//     caller, see Password) and may be absent for users who sign in upstream
//     only.
//   - Decisions that would not change the state return no events and no error:
//     locking a locked user, unlocking an unlocked one, deactivating a
//     deactivated one, reactivating an active one, setting the display name or
//     admin flag to its current value, setting the (sealed) password hash
//     it has, or sealing again a password hash that needs no sealing again
//     (ResealPassword).
//     This is checked after input validation but before the preconditions
//     below, so a retried command that already took effect succeeds.
//   - A deactivated user's password and display name cannot change
//     (errs.KindFailedPrecondition), and a deactivated user cannot be made an
//     administrator; removing admin rights is always allowed. Reactivate first.
//   - Locking is independent of deactivation: a deactivated user may be locked
//     or unlocked, and reactivating keeps the lock.
//   - A locked user's password may change (an administrator resetting it, or
//     recovery); the lock still prevents signing in.
//   - Deactivate with erase erases the account (UserDeactivated with erase):
//     the fold forgets its addresses, display name and password, and the
//     handler releases the addresses in the same batch and destroys the
//     user's personal key. A deactivated account may be erased later
//     (deactivating again with erase); deactivating an erased account changes
//     nothing, and reactivating it is refused (errs.KindFailedPrecondition).
//   - Lock reasons and display names are at most 256 characters of valid
//     UTF-8 without control characters (errs.KindInvalid, Field "reason" or
//     "display_name"). ChangePassword needs a sealed hash and a specified
//     reason; anything else is a caller bug (errs.KindInternal).
//   - Email addresses: the address given at registration is the user's first,
//     primary one. AddEmail adds an address the caller has verified (every
//     address a user holds counts as verified); a user's first address
//     becomes primary, which is how a user registered without one gets one.
//     Adding an address the user has, removing one they do not have, or
//     making the primary address primary changes nothing. The primary
//     address cannot be removed, and only one of the user's addresses can
//     become primary (errs.KindFailedPrecondition, Field "email"). A
//     deactivated user cannot gain addresses or change the primary one, but
//     may lose non-primary ones. Addresses are normalized with NormalizeEmail
//     (errs.KindInvalid, Field "email").
//   - Every address is held by one user at a time through its reservation
//     aggregate (EmailClaim): a claim appends EmailReserved expecting the
//     claim's Version (an empty subject or one ending in EmailReleased), in
//     the same atomic batch as UserRegistered or EmailAdded; EmailRemoved goes
//     with EmailReleased, so a removed address can be claimed again.
package user

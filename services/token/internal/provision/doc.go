// Package provision keeps the homeserver in step with Gatehouse: the
// homeserver must know every user a token names and every device a session
// holds, or it refuses the token. Gatehouse tells it through its /_synapse/mas/
// API (internal/homeserver), driven by the event streams:
//
//   - ACCOUNTS, accounts.user.*: registration, display names, email
//     addresses and locks → provision_user; deactivation → delete_user;
//     reactivation → reactivate_user (then provision_user).
//   - TOKEN, token.session.*: SessionStarted with a device → provision_user
//     (so the user exists) and upsert_device; SessionEnded → delete_device,
//     unless another live session of the user holds the same device.
//
// Each feed is a reactor (platform/projection): one replica at a time runs
// it, following its stream from just after its checkpoint (homeserver_users,
// homeserver_sessions) and handling one event at a time, in stream order, so
// the changes of one user reach the homeserver in the order they happened.
// The checkpoint advances only after the homeserver has accepted the event's
// calls. While the homeserver is down or answers 5xx or 429, the event is
// retried with exponential backoff (capped at 30 s) and nothing behind it
// moves: no change is ever skipped. A 4xx other than 429 is the homeserver
// refusing that change for good: it is logged (an audit line,
// "homeserver_change_refused") and skipped. Every call is idempotent, so a
// crash between a call and its checkpoint only repeats the call. Both appear
// in `gatehouse projections list` (kind reactor) and can be replayed with
// `gatehouse projections rebuild token.homeserver_users`.
//
// The calls are made outside any database transaction: slow network I/O
// never holds a transaction or a row lock.
//
// The token endpoint does not wait for this: before it answers, it makes the
// session's device itself (Provisioner.Started), so the first token works at
// once; the reactor repeats the upsert later, harmlessly.
//
// The token service gives the provisioner what it needs (Deps): the two
// streams, the personal keys, the accounts service's user list, its sessions
// read model (Sessions) and its clients' names; the provisioner knows nothing
// else of the service.
package provision

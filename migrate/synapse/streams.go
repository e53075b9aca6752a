package synapse

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// The streams read one table each (joined to what decides its rows' fate)
// and hand each importable row to fn as they come: nothing is loaded whole,
// so memory stays flat whatever the size of the homeserver. Rows come in no
// particular order. fn runs while the query is open, so it must not use the
// Source; an error from fn stops the stream and is returned. Each stream
// returns its Stats, also on error.

// ownerColumns are the columns every dependent row's query selects about the
// user it names, joined as u: whether it exists, is an application
// service's, a guest, deactivated.
const ownerColumns = `u.name IS NOT NULL, u.appservice_id IS NOT NULL,
	coalesce(u.is_guest, 0) <> 0, coalesce(u.deactivated, 0) <> 0`

// owner is what ownerColumns tell about a row's user.
type owner struct{ exists, appservice, guest, deactivated bool }

// dest returns scan destinations for ownerColumns.
func (o *owner) dest() []any { return []any{&o.exists, &o.appservice, &o.guest, &o.deactivated} }

// parse returns the localpart of mxid, or the reason its rows are skipped.
func (s *Source) parse(mxid string) (string, SkipReason) {
	localpart, err := ParseMXID(mxid, s.opts.ServerName)
	switch {
	case err == nil:
		return localpart, ""
	case errors.Is(err, ErrColonInLocalpart):
		return "", SkipColonLocalpart
	case errors.Is(err, ErrWrongServer):
		return "", SkipWrongServer
	}
	return "", SkipMalformedMXID
}

// ownerSkip returns the localpart of a dependent row's user, or why the row
// is skipped because of that user. withDeactivated skips rows of deactivated
// users too.
func (s *Source) ownerSkip(mxid string, o owner, withDeactivated bool) (string, SkipReason) {
	switch {
	case !o.exists:
		return "", SkipNoUser
	case o.appservice:
		return "", SkipAppservice
	case o.guest:
		return "", SkipGuest
	case withDeactivated && o.deactivated:
		return "", SkipDeactivated
	}
	return s.parse(mxid)
}

// stream runs query and calls row for each result with the scanned values
// in dest; row decides, counts and hands on.
func (s *Source) stream(ctx context.Context, st *Stats, query string, dest []any, row func() error) error {
	start := time.Now()
	defer func() { st.Elapsed = time.Since(start) }()
	rows, err := s.tx.Query(ctx, query)
	if err != nil {
		return fmt.Errorf("synapse: read %s: %w", st.Stream, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("synapse: read %s: %w", st.Stream, err)
		}
		st.Read++
		if err := row(); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("synapse: read %s: %w", st.Stream, err)
	}
	return nil
}

// usersQuery selects users with their profile, erasure, pending
// deactivation and whether an SSO link exists. Profiles are keyed by
// localpart: the MXID up to its first ':'.
func (s *Source) usersQuery() string {
	optional := func(ok bool, expr, absent string) string {
		if ok {
			return expr
		}
		return absent
	}
	return `
	SELECT u.name, u.password_hash, u.creation_ts, u.admin <> 0, u.deactivated <> 0, u.is_guest <> 0,
		u.appservice_id IS NOT NULL, u.user_type, coalesce(u.shadow_banned, false),
		` + optional(s.Info.Locked, "u.locked", "false") + `,
		` + optional(s.Info.Suspended, "u.suspended", "false") + `,
		` + optional(s.Info.Approved, "coalesce(u.approved, true)", "true") + `,
		p.displayname, p.avatar_url, e.user_id IS NOT NULL, pd.user_id IS NOT NULL,
		EXISTS (SELECT 1 FROM user_external_ids x WHERE x.user_id = u.name)
	FROM users u
	LEFT JOIN profiles p ON p.user_id =
		CASE WHEN strpos(u.name, ':') > 1 THEN substr(u.name, 2, strpos(u.name, ':') - 2) END
	LEFT JOIN erased_users e ON e.user_id = u.name
	LEFT JOIN (SELECT DISTINCT user_id FROM users_pending_deactivation) pd ON pd.user_id = u.name`
}

// Users streams the local accounts to import. Appservice users and guests
// are skipped (SkipAppservice, SkipGuest), as are MXIDs of another server.
// Deactivated and locked users are imported, flagged.
func (s *Source) Users(ctx context.Context, fn func(User) error) (Stats, error) {
	st := newStats("users")
	var (
		name, hash, userType, display, avatar *string
		created                               *int64
		u                                     User
		guest, appservice                     bool
	)
	dest := []any{&name, &hash, &created, &u.Admin, &u.Deactivated, &guest, &appservice, &userType,
		&u.ShadowBanned, &u.Locked, &u.Suspended, &u.Approved, &display, &avatar, &u.Erased,
		&u.PendingDeactivation, &u.HasExternalID}
	err := s.stream(ctx, &st, s.usersQuery(), dest, func() error {
		mxid := str(name)
		if appservice {
			if _, reason := s.parse(mxid); reason == SkipColonLocalpart {
				st.note("appservice user with ':' in its localpart", mxid)
			}
			st.skip(SkipAppservice, mxid)
			return nil
		}
		if guest {
			st.skip(SkipGuest, mxid)
			return nil
		}
		localpart, reason := s.parse(mxid)
		if reason != "" {
			st.skip(reason, mxid)
			return nil
		}
		out := u
		out.MXID, out.Localpart = mxid, localpart
		out.PasswordHash, out.UserType = str(hash), str(userType)
		out.DisplayName, out.AvatarURL = str(display), str(avatar)
		out.CreatedAt = seconds(created)
		st.Emitted++
		return fn(out)
	})
	return st, err
}

// Emails streams the email addresses of imported users. Other media
// (msisdn) are skipped (SkipNotEmail), as are rows of skipped, deactivated
// or missing users.
func (s *Source) Emails(ctx context.Context, fn func(Email) error) (Stats, error) {
	st := newStats("emails")
	var (
		mxid, medium, address string
		validated, added      *int64
		o                     owner
	)
	dest := append([]any{&mxid, &medium, &address, &validated, &added}, o.dest()...)
	err := s.stream(ctx, &st, `
		SELECT t.user_id, t.medium, t.address, t.validated_at, t.added_at, `+ownerColumns+`
		FROM user_threepids t LEFT JOIN users u ON u.name = t.user_id`, dest, func() error {
		localpart, reason := s.ownerSkip(mxid, o, true)
		if reason == "" && medium != "email" {
			reason = SkipNotEmail
		}
		if reason != "" {
			st.skip(reason, mxid)
			return nil
		}
		st.Emitted++
		return fn(Email{MXID: mxid, Localpart: localpart, Address: address,
			ValidatedAt: millis(validated), AddedAt: millis(added)})
	})
	return st, err
}

// Devices streams the devices of imported users. Hidden devices (the
// pseudo-devices of cross-signing keys) and guest_device are skipped, as are
// devices of skipped, deactivated or missing users.
func (s *Source) Devices(ctx context.Context, fn func(Device) error) (Stats, error) {
	st := newStats("devices")
	var (
		mxid, deviceID     string
		display, ip, agent *string
		lastSeen           *int64
		hidden             bool
		o                  owner
	)
	dest := append([]any{&mxid, &deviceID, &display, &lastSeen, &ip, &agent, &hidden}, o.dest()...)
	err := s.stream(ctx, &st, `
		SELECT d.user_id, d.device_id, d.display_name, d.last_seen, d.ip, d.user_agent,
			coalesce(d.hidden, false), `+ownerColumns+`
		FROM devices d LEFT JOIN users u ON u.name = d.user_id`, dest, func() error {
		var localpart string
		var reason SkipReason
		switch {
		case hidden:
			reason = SkipHiddenDevice
		case deviceID == "guest_device":
			reason = SkipGuestDevice
		default:
			localpart, reason = s.ownerSkip(mxid, o, true)
		}
		if reason != "" {
			st.skip(reason, mxid+" "+deviceID)
			return nil
		}
		st.Emitted++
		return fn(Device{MXID: mxid, Localpart: localpart, DeviceID: deviceID, DisplayName: str(display),
			LastSeen: millis(lastSeen), IP: st.cleanIP(str(ip), mxid+" "+deviceID), UserAgent: str(agent)})
	})
	return st, err
}

// cleanIP returns ip if it parses, else "" (counting an unparsable one; "-"
// is Synapse's "none" and dropped silently).
func (st *Stats) cleanIP(ip, example string) string {
	if ip == "" || ip == "-" {
		return ""
	}
	if _, err := netip.ParseAddr(ip); err != nil {
		st.note("unparsable IP address dropped", example)
		return ""
	}
	return ip
}

// AccessTokens streams the live access tokens that no refresh token
// carries, with or without a device. Puppet tokens, tokens of skipped,
// deactivated or missing users, of missing or hidden devices, and expired
// tokens are skipped. Locked users keep their tokens.
func (s *Source) AccessTokens(ctx context.Context, fn func(AccessToken) error) (Stats, error) {
	st := newStats("access_tokens")
	now := s.opts.Now()
	var (
		id                     int64
		mxid, token            string
		deviceID               *string
		validUntil, validated  *int64
		puppet, device, hidden bool
		o                      owner
	)
	dest := append([]any{&id, &mxid, &deviceID, &token, &validUntil, &validated, &puppet, &device, &hidden}, o.dest()...)
	err := s.stream(ctx, &st, `
		SELECT t.id, t.user_id, t.device_id, t.token, t.valid_until_ms, t.last_validated,
			t.puppets_user_id IS NOT NULL, d.device_id IS NOT NULL, coalesce(d.hidden, false), `+ownerColumns+`
		FROM access_tokens t
		LEFT JOIN users u ON u.name = t.user_id
		LEFT JOIN devices d ON d.user_id = t.user_id AND d.device_id = t.device_id
		WHERE t.refresh_token_id IS NULL`, dest, func() error {
		var localpart string
		var reason SkipReason
		if puppet {
			reason = SkipPuppet
		} else {
			localpart, reason = s.ownerSkip(mxid, o, true)
		}
		switch {
		case reason != "":
		case deviceID != nil && !device:
			reason = SkipNoDevice
		case hidden:
			reason = SkipHiddenDevice
		case validUntil != nil && !millis(validUntil).After(now):
			reason = SkipExpired
		}
		if reason != "" {
			st.skip(reason, fmt.Sprintf("token #%d of %s", id, mxid))
			return nil
		}
		t := AccessToken{ID: id, MXID: mxid, Localpart: localpart, DeviceID: str(deviceID), Token: Token(token),
			ValidUntil: millis(validUntil), LastValidated: millis(validated)}
		t.Format = ClassifyToken(t.Token)
		st.format(t.Format)
		st.Emitted++
		return fn(t)
	})
	return st, err
}

// RefreshPairs streams each live refresh token with the access token it
// carries. A pair whose successor's access token was used is obsolete and
// skipped (the client moved on; Synapse would refuse it); both pairs of a
// chain are kept while the newest access token is unused, since the client
// may not have received it. Pairs of skipped, deactivated or missing users,
// of missing devices, without an access token, or past their expiry are
// skipped.
func (s *Source) RefreshPairs(ctx context.Context, fn func(RefreshPair) error) (Stats, error) {
	st := newStats("refresh_tokens")
	now := s.opts.Now()
	var (
		refreshID                               int64
		mxid, deviceID, refresh                 string
		expiry, ultimate, validUntil, validated *int64
		accessID                                *int64
		access                                  *string
		hasNext, nextUsed, device, hidden       bool
		o                                       owner
	)
	dest := append([]any{&refreshID, &mxid, &deviceID, &refresh, &expiry, &ultimate,
		&accessID, &access, &validUntil, &validated, &hasNext, &nextUsed, &device, &hidden}, o.dest()...)
	err := s.stream(ctx, &st, `
		SELECT r.id, r.user_id, r.device_id, r.token, r.expiry_ts, r.ultimate_session_expiry_ts,
			a.id, a.token, a.valid_until_ms, a.last_validated,
			nr.id IS NOT NULL, coalesce(na.used, false),
			d.device_id IS NOT NULL, coalesce(d.hidden, false), `+ownerColumns+`
		FROM refresh_tokens r
		LEFT JOIN access_tokens a ON a.refresh_token_id = r.id
		LEFT JOIN refresh_tokens nr ON nr.id = r.next_token_id
		LEFT JOIN access_tokens na ON na.refresh_token_id = nr.id
		LEFT JOIN users u ON u.name = r.user_id
		LEFT JOIN devices d ON d.user_id = r.user_id AND d.device_id = r.device_id`, dest, func() error {
		localpart, reason := s.ownerSkip(mxid, o, true)
		switch {
		case reason != "":
		case !device:
			reason = SkipNoDevice
		case hidden:
			reason = SkipHiddenDevice
		case accessID == nil:
			reason = SkipNoAccessToken
		case nextUsed:
			reason = SkipObsoleteRefresh
		case expiry != nil && !millis(expiry).After(now), ultimate != nil && !millis(ultimate).After(now):
			reason = SkipExpired
		}
		if reason != "" {
			st.skip(reason, fmt.Sprintf("refresh token #%d of %s", refreshID, mxid))
			return nil
		}
		p := RefreshPair{RefreshID: refreshID, MXID: mxid, Localpart: localpart, DeviceID: deviceID,
			RefreshToken: Token(refresh), AccessTokenID: *accessID, AccessToken: Token(str(access)),
			AccessValidUntil: millis(validUntil), LastValidated: millis(validated),
			ExpiresAt: millis(expiry), SessionExpiresAt: millis(ultimate), Superseded: hasNext}
		st.format(ClassifyToken(p.RefreshToken))
		st.Emitted++
		return fn(p)
	})
	return st, err
}

// ExternalIDs streams the SSO links of imported users, deactivated ones
// included (the link still names who they were). oauth-delegated rows and
// links of skipped or missing users are skipped.
func (s *Source) ExternalIDs(ctx context.Context, fn func(ExternalID) error) (Stats, error) {
	st := newStats("external_ids")
	var (
		provider, subject, mxid string
		o                       owner
	)
	dest := append([]any{&provider, &subject, &mxid}, o.dest()...)
	err := s.stream(ctx, &st, `
		SELECT x.auth_provider, x.external_id, x.user_id, `+ownerColumns+`
		FROM user_external_ids x LEFT JOIN users u ON u.name = x.user_id`, dest, func() error {
		var localpart string
		var reason SkipReason
		if provider == OAuthDelegatedProvider {
			reason = SkipOAuthDelegated
		} else {
			localpart, reason = s.ownerSkip(mxid, o, false)
		}
		if reason != "" {
			st.skip(reason, provider+" "+mxid)
			return nil
		}
		st.Emitted++
		return fn(ExternalID{AuthProvider: provider, Subject: subject, MXID: mxid, Localpart: localpart})
	})
	return st, err
}

// OAuthDelegatedProvider is the auth_provider of the links Synapse's removed
// experimental MSC3861 mode left behind.
const OAuthDelegatedProvider = "oauth-delegated"

// RegistrationTokens streams the registration tokens that can still be used:
// expired and used-up ones are skipped.
func (s *Source) RegistrationTokens(ctx context.Context, fn func(RegistrationToken) error) (Stats, error) {
	st := newStats("registration_tokens")
	now := s.opts.Now()
	var (
		token              string
		uses               *int32
		pending, completed int32
		expiry             *int64
	)
	dest := []any{&token, &uses, &pending, &completed, &expiry}
	err := s.stream(ctx, &st, `
		SELECT token, uses_allowed, pending, completed, expiry_time FROM registration_tokens`, dest, func() error {
		switch {
		case expiry != nil && !millis(expiry).After(now):
			st.skip(SkipExpired, "")
			return nil
		case uses != nil && completed >= *uses:
			st.skip(SkipUsedUp, "")
			return nil
		}
		t := RegistrationToken{Token: Token(token), Completed: int(completed), Pending: int(pending), ExpiresAt: millis(expiry)}
		if uses != nil {
			t.UsesAllowed = int(*uses)
		}
		st.Emitted++
		return fn(t)
	})
	return st, err
}

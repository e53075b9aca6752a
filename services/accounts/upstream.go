package accounts

import (
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/chacha20poly1305"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/ids"
	"gatehouse.dev/platform/personal"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/accounts/internal/browser"
	"gatehouse.dev/services/accounts/internal/factors"
	"gatehouse.dev/services/accounts/internal/upstream"
	"gatehouse.dev/services/accounts/internal/user"
)

// Upstream identity providers (upstream.providers).
//
// The web service runs the browser's side of a sign-in; this service talks
// to the provider: StartUpstreamSignIn builds the authorization request
// (state, nonce, PKCE verifier, which the web service binds to the browser),
// CompleteUpstreamSignIn redeems the code with the client's credentials —
// which only this service holds — and verifies the answer
// (internal/upstream). Only then does it vouch for the identity: with an
// authentication proof (method "upstream", naming the provider and its
// session) when the identity is linked to a user, or with a ticket, sealed
// under a key derived from the proof key and valid 30 minutes, that
// RegisterUpstreamUser or LinkUpstream (with the user's fresh password proof)
// turn into a link. So nothing, the web service included, can start a
// session for a user without that user's provider having vouched for them in
// exchange for a code, or their password.
//
// Links are on the user aggregate (UpstreamLinked, UpstreamUnlinked), each
// identity claimed once on accounts.upstream.<claim key> in the same atomic
// batch. The subject and the address a link records are personal data,
// sealed through sealPersonal.

// Aggregate types of upstream links and logout tokens.
var (
	upstreamAggregate = eventsv1.AccountsUpstream.Type
	bclogoutAggregate = eventsv1.AccountsBackchannelLogout.Type
)

// ticketTTL is how long a first sign-in may take (choosing a username,
// remembering a password).
const ticketTTL = 30 * time.Minute

// sealPersonal seals a personal field of a user's event at
// "accounts.user.<id>/<field>" under the user's personal key, so that erasing
// the user erases it; "" seals to nil. It is the one place links' personal
// data is sealed.
func (s *Service) sealPersonal(ctx context.Context, userID, field, value string) (*eventsv1.SealedSecret, error) {
	if value == "" {
		return nil, nil
	}
	v, err := s.personal.SealValue(ctx, personal.User(userID), []byte(value), eventsv1.AccountsUser.Subject(userID)+"/"+field)
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "The sign-in link cannot be recorded right now; try again.", fmt.Errorf("seal %s: %w", field, err))
	}
	return v, nil
}

// openPersonal opens what sealPersonal sealed (or, for links made before
// personal keys, what the key-encryption key sealed); nil opens to "", and so
// does a value whose user was erased.
func (s *Service) openPersonal(ctx context.Context, userID, field string, v *eventsv1.SealedSecret) (string, error) {
	if v == nil {
		return "", nil
	}
	b, err := s.personal.OpenValue(ctx, v, eventsv1.AccountsUser.Subject(userID)+"/"+field)
	if errors.Is(err, personal.ErrErased) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// upstreamTicket is a verified upstream identity waiting for its first
// sign-in to finish: what the provider vouched for and what the mapping
// proposes. It travels sealed (sealTicket), never in clear.
type upstreamTicket struct {
	Provider string `json:"p"`
	Subject  string `json:"s"`
	SID      string `json:"sid,omitempty"`
	// Email is the address the provider gave (verified or not), recorded with the link.
	Email           string `json:"e,omitempty"`
	Localpart       string `json:"l,omitempty"`
	LocalpartForced bool   `json:"lf,omitempty"`
	DisplayName     string `json:"d,omitempty"`
	DisplayForced   bool   `json:"df,omitempty"`
	VerifiedEmail   string `json:"ve,omitempty"`
	EmailForced     bool   `json:"ef,omitempty"`
	EmailUnverified string `json:"ue,omitempty"`
	Expires         int64  `json:"x"`
}

// deriveTicketKey derives the key tickets are sealed with from the proof key.
func (s *Service) deriveTicketKey() error {
	k, err := hkdf.Key(sha256.New, s.proofKey, nil, "gatehouse accounts upstream ticket v1", chacha20poly1305.KeySize)
	if err != nil {
		return fmt.Errorf("accounts: derive the upstream ticket key: %w", err)
	}
	s.ticketKey = k
	return nil
}

// sealTicket seals a ticket (XChaCha20-Poly1305) into base64url.
func (s *Service) sealTicket(t *upstreamTicket) (string, error) {
	plain, err := json.Marshal(t)
	if err != nil {
		return "", errs.Internalf("seal upstream ticket: %v", err)
	}
	aead, err := chacha20poly1305.NewX(s.ticketKey)
	if err != nil {
		return "", errs.Internalf("seal upstream ticket: %v", err)
	}
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(aead.Seal(nonce, nonce, plain, []byte("upstream ticket"))), nil
}

// openTicket opens a ticket that is ours and has not expired.
func (s *Service) openTicket(ticket string) (*upstreamTicket, error) {
	refuse := errs.FailedPrecondition("The sign-in with the identity provider expired; sign in again.")
	refuse.Field = "ticket"
	raw, err := base64.RawURLEncoding.DecodeString(ticket)
	if err != nil || len(ticket) > 8192 {
		return nil, refuse
	}
	aead, err := chacha20poly1305.NewX(s.ticketKey)
	if err != nil || len(raw) < aead.NonceSize() {
		return nil, refuse
	}
	plain, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], []byte("upstream ticket"))
	if err != nil {
		return nil, refuse
	}
	var t upstreamTicket
	if err := json.Unmarshal(plain, &t); err != nil || s.clock().Unix() > t.Expires {
		return nil, refuse
	}
	return &t, nil
}

// signIn is the view of a ticket's first sign-in.
func (s *Service) signInView(t *upstreamTicket) *accountsv1.UpstreamSignIn {
	v := &accountsv1.UpstreamSignIn{
		ProviderId: t.Provider, Localpart: t.Localpart, LocalpartForced: t.LocalpartForced,
		DisplayName: t.DisplayName, DisplayNameForced: t.DisplayForced,
		Email: t.VerifiedEmail, EmailForced: t.EmailForced, EmailUnverified: t.EmailUnverified,
		ExpiresAt: timestamppb.New(time.Unix(t.Expires, 0)),
	}
	if p, ok := s.upstream.Get(t.Provider); ok {
		v.ProviderName = p.Config().HumanName
	}
	return v
}

// provider returns a configured provider, or NOT_FOUND.
func (s *Service) provider(id string) (*upstream.Provider, error) {
	p, ok := s.upstream.Get(id)
	if !ok {
		return nil, errs.NotFound("No such identity provider.")
	}
	return p, nil
}

// listProviders describes the configured providers.
func (s *Service) listProviders() []*accountsv1.UpstreamProvider {
	var out []*accountsv1.UpstreamProvider
	for _, p := range s.upstream.List() {
		c := p.Config()
		out = append(out, &accountsv1.UpstreamProvider{ProviderId: c.ID, HumanName: c.HumanName, Brand: c.Brand, Issuer: c.Issuer, SynapseIdpId: c.SynapseIdpID})
	}
	return out
}

// startUpstream prepares a sign-in with a provider.
func (s *Service) startUpstream(ctx context.Context, providerID string) (upstream.Start, error) {
	p, err := s.provider(providerID)
	if err != nil {
		return upstream.Start{}, err
	}
	return p.Start(ctx)
}

// upstreamResult is what a completed upstream sign-in gives: a linked user
// and their proof, or a ticket for the first sign-in.
type upstreamResult struct {
	user   *userRow
	proof  string
	ticket string
	t      *upstreamTicket
}

// completeUpstream redeems a code and decides what the identity signs in to.
func (s *Service) completeUpstream(ctx context.Context, providerID, code, nonce, verifier string) (*upstreamResult, error) {
	p, err := s.provider(providerID)
	if err != nil {
		return nil, err
	}
	id, err := p.Complete(ctx, code, verifier, nonce)
	if err != nil {
		s.logger.InfoContext(ctx, "upstream sign-in refused", "provider", providerID, "kind", errs.KindOf(err).String(), "err", err)
		return nil, err
	}
	mapped, err := p.Map(id)
	if err != nil {
		return nil, err
	}
	claim, err := s.findLink(ctx, p, id.Subject)
	if err != nil {
		return nil, err
	}
	if claim.Holder != "" {
		u, err := s.userByID(ctx, claim.Holder)
		if err != nil {
			return nil, err
		}
		switch {
		case u.deactivated:
			return nil, errs.FailedPrecondition("This account has been deactivated.")
		case u.locked:
			return nil, errs.FailedPrecondition("This account is locked.")
		}
		return &upstreamResult{user: u, proof: s.mintUpstreamProof(u.id, providerID, cut(id.SID, 255))}, nil
	}
	email, _ := id.Claims["email"].(string)
	t := &upstreamTicket{
		Provider: providerID, Subject: id.Subject, SID: cut(id.SID, 255), Email: cut(email, 320),
		Localpart: cut(mapped.Localpart, 255), LocalpartForced: mapped.LocalpartForced,
		DisplayName: cut(mapped.DisplayName, 255), DisplayForced: mapped.DisplayForced,
		VerifiedEmail: cut(mapped.Email, 320), EmailForced: mapped.EmailForced, EmailUnverified: cut(mapped.EmailUnverified, 320),
		Expires: s.clock().Add(ticketTTL).Unix(),
	}
	ticket, err := s.sealTicket(t)
	if err != nil {
		return nil, err
	}
	return &upstreamResult{ticket: ticket, t: t}, nil
}

// cut bounds a claim's length (on a byte boundary; validation refuses what it breaks).
func cut(v string, n int) string {
	if len(v) > n {
		return v[:n]
	}
	return v
}

// findLink returns the claim of an identity of a provider: in the
// provider's own namespace, or, for links imported from Synapse, its
// synapse_idp_id's.
func (s *Service) findLink(ctx context.Context, p *upstream.Provider, subject string) (user.LinkClaim, error) {
	for _, ns := range p.Namespaces() {
		_, claim, err := s.linkClaim(ctx, upstream.ClaimKey(s.claimKey, ns, subject))
		if err != nil {
			return user.LinkClaim{}, err
		}
		if claim.Holder != "" {
			return claim, nil
		}
	}
	return user.LinkClaim{}, nil
}

// linkClaim loads an identity's claim.
func (s *Service) linkClaim(ctx context.Context, key string) (eventlog.Ref, user.LinkClaim, error) {
	ref := eventlog.Ref{Type: upstreamAggregate, ID: key}
	history, _, err := s.log.Load(ctx, ref)
	if err != nil {
		return ref, user.LinkClaim{}, errs.Wrap(errs.KindUnavailable, "Sign-in links cannot be read right now; try again.", err)
	}
	return ref, user.FoldLinkClaim(history), nil
}

// linkTaken is the answer to linking an identity someone holds.
func linkTaken() error {
	e := errs.AlreadyExists("This identity is already linked to an account.")
	e.Field = "subject"
	return e
}

// linkWrites returns the writes that link an identity to user st: the
// claim (expecting its version), then the user's event. expectUser is the
// user's expectation (ExpectAny after a UserRegistered of the same batch).
func (s *Service) linkWrites(ctx context.Context, st user.State, expectUser eventlog.Expect, namespace, subject, email, source, actor string) ([]eventlog.Write, error) {
	key := upstream.ClaimKey(s.claimKey, namespace, subject)
	claimRef, claim, err := s.linkClaim(ctx, key)
	if err != nil {
		return nil, err
	}
	switch claim.Holder {
	case "":
	case st.ID:
		return nil, nil // linked already
	default:
		return nil, linkTaken()
	}
	sealedSubject, err := s.sealPersonal(ctx, st.ID, "subject", subject)
	if err != nil {
		return nil, err
	}
	sealedEmail, err := s.sealPersonal(ctx, st.ID, "email", email)
	if err != nil {
		return nil, err
	}
	linkID := ids.New()
	decided, err := user.LinkUpstream(st, user.LinkCommand{
		LinkID: linkID, Provider: namespace, ClaimKey: key, SealedSubject: sealedSubject, SealedEmail: sealedEmail, Source: source,
	})
	if err != nil || len(decided) == 0 {
		return nil, err
	}
	return []eventlog.Write{
		{Expect: eventlog.ExpectVersion(claim.Version), Event: eventlog.Event{Aggregate: claimRef, Actor: actor,
			Payload: &eventsv1.UpstreamLinkReserved{Provider: namespace, UserId: st.ID, LinkId: linkID}}},
		{Expect: expectUser, Event: eventlog.Event{Aggregate: eventlog.Ref{Type: userAggregate, ID: st.ID}, Actor: actor, Payload: decided[0]}},
	}, nil
}

// registerUpstream creates the user of a ticket, linked to its identity.
func (s *Service) registerUpstream(ctx context.Context, ticket, username string, useDisplay, useEmail bool, actor string) (*userRow, string, error) {
	t, err := s.openTicket(ticket)
	if err != nil {
		return nil, "", err
	}
	if _, err := s.provider(t.Provider); err != nil {
		return nil, "", err
	}
	if t.LocalpartForced {
		username = t.Localpart
	}
	if err := user.ValidateUsername(username, s.cfg.ServerName); err != nil {
		return nil, "", err
	}
	cmd := user.RegisterCommand{Username: username}
	if t.DisplayForced || useDisplay {
		cmd.DisplayName = t.DisplayName
		if err := user.ValidateDisplayName(cmd.DisplayName); err != nil {
			cmd.DisplayName = "" // the provider's name does not fit: none rather than no account
		}
	}
	if t.VerifiedEmail != "" && (t.EmailForced || useEmail) {
		if cmd.Email, err = user.NormalizeEmail(t.VerifiedEmail); err != nil {
			cmd.Email = ""
		} else if _, claim, err := s.emailClaim(ctx, cmd.Email); err != nil {
			return nil, "", err
		} else if claim.Holder != "" {
			if t.EmailForced {
				return nil, "", emailTaken(nil)
			}
			cmd.Email = "" // suggested only: the account is created without it
		}
	}
	if claim, err := s.findLink(ctx, mustProvider(s, t.Provider), t.Subject); err != nil {
		return nil, "", err
	} else if claim.Holder != "" {
		return nil, "", linkTaken()
	}
	u, err := s.createUser(ctx, cmd, "", actor, func(userID string) ([]eventlog.Write, error) {
		writes, err := s.linkWrites(ctx, user.State{ID: userID}, eventlog.ExpectAny(), t.Provider, t.Subject, t.Email, user.LinkRegistration, actor)
		if err == nil && len(writes) == 0 {
			err = linkTaken()
		}
		return writes, err
	})
	if err != nil {
		if errs.KindOf(err) == errs.KindConflict {
			// Lost to another link of the same identity.
			if claim, cerr := s.findLink(ctx, mustProvider(s, t.Provider), t.Subject); cerr == nil && claim.Holder != "" {
				return nil, "", linkTaken()
			}
		}
		return nil, "", err
	}
	return u, s.mintUpstreamProof(u.id, t.Provider, t.SID), nil
}

// mustProvider returns a provider known to be configured (checked just before).
func mustProvider(s *Service, id string) *upstream.Provider {
	p, _ := s.upstream.Get(id)
	return p
}

// linkUpstream links a ticket's identity to an existing user, who proved
// who they are with their password just now.
func (s *Service) linkUpstream(ctx context.Context, ticket, userID, passwordProof, actor string) (*userRow, string, error) {
	t, err := s.openTicket(ticket)
	if err != nil {
		return nil, "", err
	}
	p, err := s.provider(t.Provider)
	if err != nil {
		return nil, "", err
	}
	proof, err := s.checkAuthProof(passwordProof, userID)
	if err != nil {
		return nil, "", err
	}
	if !proof.has(methodPassword) {
		return nil, "", errs.PermissionDenied("Linking an identity needs the account's password.")
	}
	// The link signs the person in: it needs what a sign-in needs.
	if err := s.requireComplete(ctx, userID, proof); err != nil {
		return nil, "", err
	}
	if claim, err := s.findLink(ctx, p, t.Subject); err != nil {
		return nil, "", err
	} else if claim.Holder != "" && claim.Holder != userID {
		return nil, "", linkTaken()
	}
	u, err := s.changeLinks(ctx, userID, func(st user.State) ([]eventlog.Write, error) {
		if st.Locked || st.Deactivated {
			return nil, errs.FailedPrecondition("This account cannot be signed in to.")
		}
		return s.linkWrites(ctx, st, eventlog.ExpectVersion(st.Version), t.Provider, t.Subject, t.Email, user.LinkExisting, actor)
	})
	if err != nil {
		return nil, "", err
	}
	linked, err := s.checkAuthProof(s.mintUpstreamProof(u.id, t.Provider, t.SID), u.id)
	if err != nil {
		return nil, "", err
	}
	// The upstream proof carries the second factor given with the password.
	for _, m := range proof.methods {
		if factors.Satisfies([]string{m}) {
			return u, s.extendProof(u.id, linked, m), nil
		}
	}
	return u, s.mintUpstreamProof(u.id, t.Provider, t.SID), nil
}

// addLink links an identity to a user by an administrator's word, or
// imports a link from Synapse (namespace synapse:<auth_provider>).
func (s *Service) addLink(ctx context.Context, userID, providerID, synapseAuthProvider, subject, email, actor string) (*accountsv1.UpstreamLink, error) {
	var namespace, source string
	switch {
	case providerID != "" && synapseAuthProvider != "":
		return nil, errs.InvalidField("provider_id", "give provider_id or synapse_auth_provider, not both")
	case providerID != "":
		if _, err := s.provider(providerID); err != nil {
			return nil, err
		}
		namespace, source = providerID, user.LinkAdmin
	case synapseAuthProvider != "":
		if len(synapseAuthProvider) > 128 {
			return nil, errs.InvalidField("synapse_auth_provider", "synapse_auth_provider is too long")
		}
		namespace, source = upstream.SynapseNamespace(synapseAuthProvider), user.LinkImport
		if p, ok := s.upstream.BySynapseIdp(synapseAuthProvider); ok {
			if claim, err := s.findLink(ctx, p, subject); err != nil {
				return nil, err
			} else if claim.Holder != "" && claim.Holder != userID {
				return nil, linkTaken()
			}
		}
	default:
		return nil, errs.InvalidField("provider_id", "provider_id or synapse_auth_provider is required")
	}
	if subject == "" || len(subject) > 255 {
		return nil, errs.InvalidField("subject", "subject must be 1 to 255 bytes")
	}
	if len(email) > 320 {
		return nil, errs.InvalidField("email", "email is too long")
	}
	if _, err := s.changeLinks(ctx, userID, func(st user.State) ([]eventlog.Write, error) {
		return s.linkWrites(ctx, st, eventlog.ExpectVersion(st.Version), namespace, subject, email, source, actor)
	}); err != nil {
		return nil, err
	}
	links, err := s.listLinks(ctx, userID, "")
	if err != nil {
		return nil, err
	}
	key := upstream.ClaimKey(s.claimKey, namespace, subject)
	for _, l := range links {
		if l.claimKey == key {
			return l.link, nil
		}
	}
	return nil, errs.Internalf("accounts: the link of %s is not in the read model", userID)
}

// removeLink unlinks, never leaving the user without a way in.
func (s *Service) removeLink(ctx context.Context, userID, linkID, actor string) error {
	if !ids.Valid(linkID) {
		return errs.InvalidField("link_id", "link_id must be a link id such as 01HZX3…")
	}
	found := false
	_, err := s.changeLinks(ctx, userID, func(st user.State) ([]eventlog.Write, error) {
		decided, err := user.UnlinkUpstream(st, linkID, s.usableNamespace)
		if err != nil || len(decided) == 0 {
			return nil, err
		}
		found = true
		ev := decided[0].(*eventsv1.UpstreamUnlinked)
		claimRef, claim, err := s.linkClaim(ctx, ev.GetClaimKey())
		if err != nil {
			return nil, err
		}
		writes := []eventlog.Write{{Expect: eventlog.ExpectVersion(st.Version), Event: eventlog.Event{
			Aggregate: eventlog.Ref{Type: userAggregate, ID: st.ID}, Actor: actor, Payload: ev}}}
		if claim.Holder == st.ID {
			writes = append(writes, eventlog.Write{Expect: eventlog.ExpectVersion(claim.Version), Event: eventlog.Event{
				Aggregate: claimRef, Actor: actor, Payload: &eventsv1.UpstreamLinkReleased{Provider: ev.GetProvider(), UserId: st.ID, LinkId: linkID}}})
		}
		return writes, nil
	})
	if err != nil {
		return err
	}
	if !found {
		return errs.NotFound("No such link.")
	}
	return nil
}

// usableNamespace reports whether links of a namespace can sign in: its
// provider is configured.
func (s *Service) usableNamespace(namespace string) bool {
	if _, ok := s.upstream.Get(namespace); ok {
		return true
	}
	if idp, ok := cutPrefix(namespace, "synapse:"); ok {
		_, found := s.upstream.BySynapseIdp(idp)
		return found
	}
	return false
}

func cutPrefix(s, prefix string) (string, bool) { return strings.CutPrefix(s, prefix) }

// changeLinks runs a link command on a user in an atomic batch (retrying lost
// races) and waits until the users projection shows it.
func (s *Service) changeLinks(ctx context.Context, userID string, build func(user.State) ([]eventlog.Write, error)) (*userRow, error) {
	var userSeq int = -1
	appended, err := s.executeBatch(ctx, func() ([]eventlog.Write, error) {
		_, st, err := s.loadUser(ctx, userID)
		if err != nil {
			return nil, err
		}
		if !st.Exists() {
			return nil, errs.NotFound("No such user")
		}
		writes, err := build(st)
		userSeq = -1
		for i, w := range writes {
			if w.Event.Aggregate.Type == userAggregate {
				userSeq = i
			}
		}
		return writes, err
	})
	if err != nil {
		return nil, err
	}
	if userSeq >= 0 && userSeq < len(appended.Seqs) {
		if err := s.projections.WaitFor(ctx, usersProjection, appended.Seqs[userSeq]); err != nil {
			return nil, errs.Wrap(errs.KindUnavailable, "The change was saved but is not visible yet; try again shortly.", err)
		}
	}
	return s.userByID(ctx, userID)
}

// linkRow is a link as listed, with its claim key.
type linkRow struct {
	link     *accountsv1.UpstreamLink
	claimKey string
}

// maxListedLinks bounds a listing.
const maxListedLinks = 1000

// listLinks lists a user's links, or a provider's (userID empty).
func (s *Service) listLinks(ctx context.Context, userID, provider string) ([]linkRow, error) {
	var (
		rows pgx.Rows
		err  error
	)
	const cols = linkColumns
	switch {
	case userID != "":
		if !ids.Valid(userID) {
			return nil, errs.InvalidField("user_id", "user_id must be a user id such as 01HZX3…")
		}
		rows, err = s.pool.Query(ctx, `SELECT `+cols+` FROM upstream_links WHERE user_id = $1 ORDER BY link_id LIMIT $2`, userID, maxListedLinks)
	case provider != "":
		namespaces := []string{provider}
		if p, ok := s.upstream.Get(provider); ok {
			namespaces = p.Namespaces()
		}
		rows, err = s.pool.Query(ctx, `SELECT `+cols+` FROM upstream_links WHERE provider = ANY($1) ORDER BY link_id LIMIT $2`, namespaces, maxListedLinks)
	default:
		return nil, errs.InvalidField("user_id", "user_id or provider_id is required")
	}
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "Sign-in links cannot be read right now.", err)
	}
	defer rows.Close()
	var out []linkRow
	for rows.Next() {
		l, err := s.scanLink(ctx, rows)
		if err != nil {
			return nil, errs.Wrap(errs.KindUnavailable, "Sign-in links cannot be read right now.", err)
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "Sign-in links cannot be read right now.", err)
	}
	return out, nil
}

// linkColumns are the columns scanLink reads.
const linkColumns = `link_id, user_id, provider, subject_sealed, email_sealed, claim_key, source, linked_at`

// scanLink reads one row of linkColumns, its subject and address opened
// (empty when they no longer open).
func (s *Service) scanLink(ctx context.Context, rows pgx.Rows) (linkRow, error) {
	var (
		l                     accountsv1.UpstreamLink
		subjectBlob, mailBlob []byte
		key                   string
		at                    time.Time
	)
	if err := rows.Scan(&l.LinkId, &l.UserId, &l.ProviderId, &subjectBlob, &mailBlob, &key, &l.Source, &at); err != nil {
		return linkRow{}, err
	}
	l.LinkedAt = timestamppb.New(at)
	l.ProviderName = l.ProviderId
	if idp, ok := cutPrefix(l.ProviderId, "synapse:"); ok {
		if p, found := s.upstream.BySynapseIdp(idp); found {
			l.ProviderId = p.ID()
		}
	}
	if p, ok := s.upstream.Get(l.ProviderId); ok {
		l.ProviderName = p.Config().HumanName
	}
	var err error
	if l.Subject, err = s.openBlob(ctx, l.UserId, "subject", subjectBlob); err != nil {
		s.logger.ErrorContext(ctx, "a link's subject does not open", "link_id", l.LinkId, "err", err)
	}
	if l.Email, err = s.openBlob(ctx, l.UserId, "email", mailBlob); err != nil {
		s.logger.ErrorContext(ctx, "a link's address does not open", "link_id", l.LinkId, "err", err)
	}
	return linkRow{link: &l, claimKey: key}, nil
}

// openBlob opens a sealed personal field stored as protobuf bytes.
func (s *Service) openBlob(ctx context.Context, userID, field string, blob []byte) (string, error) {
	if blob == nil {
		return "", nil
	}
	v := &eventsv1.SealedSecret{}
	if err := proto.Unmarshal(blob, v); err != nil {
		return "", err
	}
	return s.openPersonal(ctx, userID, field, v)
}

// backchannelLogout validates a provider's logout token and ends the browser
// sessions of the upstream session it names (and, with logout_all, the OAuth
// and compat sessions started from them). A token is accepted once: its jti
// is recorded after the sessions ended, and a token whose jti is recorded is
// refused, so a provider retrying after a failure is not refused.
func (s *Service) backchannelLogout(ctx context.Context, providerID, raw string) (int, error) {
	p, err := s.provider(providerID)
	if err != nil {
		return 0, err
	}
	c := p.Config()
	if c.OnBackchannelLogout == "do_nothing" {
		return 0, errs.InvalidField("logout_token", "Back-channel logout is not enabled for this provider.")
	}
	lt, err := p.VerifyLogoutToken(ctx, raw, s.clock())
	if err != nil {
		s.logger.InfoContext(ctx, "upstream logout token refused", "provider", providerID, "err", err)
		return 0, err
	}
	sum := sha256.Sum256([]byte(providerID + "\x00" + lt.JTI))
	ref := eventlog.Ref{Type: bclogoutAggregate, ID: hex.EncodeToString(sum[:])}
	if v, err := s.log.Version(ctx, ref); err != nil {
		return 0, errs.Wrap(errs.KindUnavailable, "The logout cannot be recorded right now.", err)
	} else if v > 0 {
		return 0, errs.InvalidField("logout_token", "The logout token was used already.")
	}
	var userID string
	if lt.Subject != "" {
		claim, err := s.findLink(ctx, p, lt.Subject)
		if err != nil {
			return 0, err
		}
		userID = claim.Holder
		if userID == "" && lt.SID == "" {
			// Nobody signs in with that identity: nothing to end.
			return 0, s.recordLogout(ctx, ref, providerID, lt, "")
		}
	}
	sessions, err := s.upstreamSessions(ctx, providerID, lt.SID, userID)
	if err != nil {
		return 0, err
	}
	endStarted := c.OnBackchannelLogout == "logout_all"
	var latest uint64
	for _, id := range sessions {
		seq, err := s.endBrowserSessionWith(ctx, id, browser.ReasonUpstreamLogout, endStarted, "upstream:"+providerID)
		if err != nil {
			return 0, err
		}
		latest = max(latest, seq)
	}
	if err := s.waitForSessions(ctx, latest); err != nil {
		return 0, err
	}
	s.logger.InfoContext(ctx, "upstream logout", "provider", providerID, "sessions", len(sessions), "end_started_sessions", endStarted)
	return len(sessions), s.recordLogout(ctx, ref, providerID, lt, userID)
}

// recordLogout records a logout token's jti, once: until the token could no
// longer be accepted anyway, and the ended sessions' retention after that
// (for the audit trail's reactor), not for ever — one for each logout.
func (s *Service) recordLogout(ctx context.Context, ref eventlog.Ref, provider string, lt upstream.LogoutToken, userID string) error {
	ttl := max(lt.Expires.Sub(s.clock()), 0) + s.endedRetention()
	_, err := s.log.Append(ctx, eventlog.Write{Expect: eventlog.ExpectNew(), TTL: ttl, Event: eventlog.Event{
		Aggregate: ref, Actor: "upstream:" + provider, Payload: &eventsv1.UpstreamLogoutReceived{Provider: provider, Sid: lt.SID, UserId: userID}}})
	if eventlog.IsConflict(err) {
		return errs.InvalidField("logout_token", "The logout token was used already.")
	}
	if err != nil {
		return errs.Wrap(errs.KindUnavailable, "The logout cannot be recorded right now.", err)
	}
	return nil
}

// upstreamSessions lists the live browser sessions of an upstream session:
// by sid (and user, when both are named), or all of a user's sessions from
// the provider when there is no sid.
func (s *Service) upstreamSessions(ctx context.Context, provider, sid, userID string) ([]string, error) {
	last, err := s.log.LastSeqOf(ctx, s.log.Subjects(browserAggregate))
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "Browser sessions cannot be read right now.", err)
	}
	if err := s.waitForSessions(ctx, last); err != nil {
		return nil, err
	}
	q := `SELECT session_id FROM browser_sessions WHERE upstream_provider = $1 AND ended_at IS NULL`
	args := []any{provider}
	if sid != "" {
		q += ` AND upstream_sid = $2`
		args = append(args, sid)
	}
	if userID != "" {
		q += fmt.Sprintf(` AND user_id = $%d`, len(args)+1)
		args = append(args, userID)
	}
	if sid == "" && userID == "" {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, q+` ORDER BY session_id LIMIT 10000`, args...)
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "Browser sessions cannot be read right now.", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "Browser sessions cannot be read right now.", err)
	}
	return out, nil
}

package user

import (
	"slices"

	"google.golang.org/protobuf/proto"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// Upstream links. A user may be linked to upstream identities (an identity
// provider's subject), each claimed on its own aggregate,
// accounts.upstream.<claim key>, so that an identity links to one user at a
// time. Linking appends UpstreamLinkReserved and UpstreamLinked as one atomic
// batch, unlinking UpstreamUnlinked and UpstreamLinkReleased; the claims are
// the handler's part, as for email addresses.

// Link is one of a user's upstream links.
type Link struct {
	// ID is the link's id.
	ID string
	// Provider is the provider's id, or "synapse:<auth_provider>" for an
	// imported link.
	Provider string
	// ClaimKey is the id of the identity's claim aggregate.
	ClaimKey string
}

// LinkCommand asks to link an upstream identity to a user.
type LinkCommand struct {
	// LinkID is the new link's id, chosen by the caller (a ULID).
	LinkID string
	// Provider is the provider's id (or "synapse:<auth_provider>").
	Provider string
	// ClaimKey is the identity's claim key (upstream.ClaimKey).
	ClaimKey string
	// Subject and Email, sealed for the user by the caller (personal data):
	// the subject is required, the email optional.
	SealedSubject, SealedEmail *eventsv1.SealedSecret
	// Source says how the link was made: registration, link, admin or import.
	Source string
}

// Sources of links.
const (
	LinkRegistration = "registration"
	LinkExisting     = "link"
	LinkAdmin        = "admin"
	LinkImport       = "import"
)

// LinkUpstream decides linking an identity to the user. Linking the same
// identity again changes nothing.
func LinkUpstream(s State, cmd LinkCommand) ([]proto.Message, error) {
	if err := mustExist(s); err != nil {
		return nil, err
	}
	if cmd.LinkID == "" || cmd.Provider == "" || cmd.ClaimKey == "" || cmd.SealedSubject == nil {
		return nil, errs.Internalf("link upstream: link id, provider, claim key and subject are required")
	}
	switch cmd.Source {
	case LinkRegistration, LinkExisting, LinkAdmin, LinkImport:
	default:
		return nil, errs.Internalf("link upstream: unknown source %q", cmd.Source)
	}
	if s.HasLinkClaim(cmd.ClaimKey) {
		return nil, nil
	}
	if s.Deactivated {
		return nil, errs.FailedPrecondition("This account has been deactivated.")
	}
	return events(&eventsv1.UpstreamLinked{
		UserId: s.ID, LinkId: cmd.LinkID, Provider: cmd.Provider, ClaimKey: cmd.ClaimKey,
		SealedSubject: cmd.SealedSubject, SealedEmail: cmd.SealedEmail, Source: cmd.Source,
	}), nil
}

// UnlinkUpstream decides removing one of the user's links. usable says
// whether a provider can still sign people in (it is configured): removing
// the last usable link of a user without a password is refused, so no account
// is left without a way in. Removing a link the user does not have changes
// nothing.
func UnlinkUpstream(s State, linkID string, usable func(provider string) bool) ([]proto.Message, error) {
	if err := mustExist(s); err != nil {
		return nil, err
	}
	i := slices.IndexFunc(s.Links, func(l Link) bool { return l.ID == linkID })
	if i < 0 {
		return nil, nil
	}
	l := s.Links[i]
	if !s.Password.Set() && usable(l.Provider) {
		others := 0
		for _, o := range s.Links {
			if o.ID != linkID && usable(o.Provider) {
				others++
			}
		}
		if others == 0 {
			e := errs.FailedPrecondition("This is the only way to sign in to this account: set a password or link another provider first.")
			e.Facts = map[string]string{"rule": "last_way_in"}
			return nil, e
		}
	}
	return events(&eventsv1.UpstreamUnlinked{UserId: s.ID, LinkId: l.ID, Provider: l.Provider, ClaimKey: l.ClaimKey}), nil
}

// HasLinkClaim reports whether the user holds the identity of a claim key.
func (s State) HasLinkClaim(claimKey string) bool {
	return slices.ContainsFunc(s.Links, func(l Link) bool { return l.ClaimKey == claimKey })
}

// LinkClaim is the state of an identity's claim aggregate
// (accounts.upstream.<claim key>): who holds it, if anyone.
type LinkClaim struct {
	// Holder is the user holding the identity; empty when never claimed or released.
	Holder string
	// LinkID is the holder's link.
	LinkID string
	// Provider is the namespace the identity was claimed in.
	Provider string
	// Version is the sequence of the aggregate's last event, 0 for none.
	Version uint64
}

// FoldLinkClaim replays an identity claim's history.
func FoldLinkClaim(history []eventlog.Record) LinkClaim {
	var c LinkClaim
	for _, rec := range history {
		c.Version = rec.Seq
		switch ev := rec.Event.(type) {
		case *eventsv1.UpstreamLinkReserved:
			c.Holder, c.LinkID, c.Provider = ev.GetUserId(), ev.GetLinkId(), ev.GetProvider()
		case *eventsv1.UpstreamLinkReleased:
			c.Holder, c.LinkID = "", ""
		}
	}
	return c
}

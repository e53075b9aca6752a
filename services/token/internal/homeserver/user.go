package homeserver

import (
	"context"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
)

// UserState is what the homeserver should know of a user, folded from the
// user's events (the accounts service's user aggregate, accounts.user.<id>).
type UserState struct {
	// Username is the Matrix localpart; empty before UserRegistered.
	Username    string
	DisplayName string
	// Emails are the user's addresses, primary first.
	Emails []string
	Locked bool
	// Deactivated, and whether the deactivation asked for the data's erasure.
	Deactivated, Erase bool
}

// Apply applies one event of the user's; events that do not concern the
// homeserver (passwords, administrator rights, ...) change nothing.
func (s *UserState) Apply(ev proto.Message) {
	switch ev := ev.(type) {
	case *eventsv1.UserRegistered:
		*s = UserState{Username: ev.GetUsername(), DisplayName: ev.GetDisplayName()}
		if ev.GetEmail() != "" {
			s.Emails = []string{ev.GetEmail()}
		}
	case *eventsv1.UserImported:
		// The homeserver has the account already, as it was there.
		*s = UserState{Username: ev.GetUsername(), DisplayName: ev.GetDisplayName(), Locked: ev.GetLocked(), Deactivated: ev.GetDeactivated()}
		for _, e := range ev.GetEmails() {
			if e.GetEmail() != "" {
				s.Emails = append(s.Emails, e.GetEmail())
			}
		}
	case *eventsv1.DisplayNameSet:
		s.DisplayName = ev.GetDisplayName()
	case *eventsv1.UserLocked:
		s.Locked = true
	case *eventsv1.UserUnlocked:
		s.Locked = false
	case *eventsv1.UserDeactivated:
		s.Deactivated, s.Erase = true, ev.GetErase()
		if ev.GetErase() { // what Gatehouse knew of the user is gone
			s.DisplayName, s.Emails = "", nil
		}
	case *eventsv1.UserReactivated:
		s.Deactivated, s.Erase = false, false
	case *eventsv1.EmailAdded:
		// An address that no longer opens (the user was erased) is none.
		if ev.GetEmail() != "" && !slices.Contains(s.Emails, ev.GetEmail()) {
			s.Emails = append(slices.Clone(s.Emails), ev.GetEmail())
		}
	case *eventsv1.EmailRemoved:
		s.Emails = slices.DeleteFunc(slices.Clone(s.Emails), func(e string) bool { return e == ev.GetEmail() })
	case *eventsv1.PrimaryEmailSet:
		if i := slices.Index(s.Emails, ev.GetEmail()); i > 0 {
			emails := slices.Delete(slices.Clone(s.Emails), i, i+1)
			s.Emails = slices.Insert(emails, 0, ev.GetEmail())
		}
	case *eventsv1.PasswordChanged, *eventsv1.AdminSet, *eventsv1.UpstreamLinked, *eventsv1.UpstreamUnlinked:
		// Not the homeserver's business.
	}
}

// Concerns reports whether an event of the user aggregate may need a call to
// the homeserver.
func Concerns(ev proto.Message) bool {
	switch ev.(type) {
	case *eventsv1.UserRegistered, *eventsv1.DisplayNameSet, *eventsv1.UserLocked, *eventsv1.UserUnlocked,
		*eventsv1.UserDeactivated, *eventsv1.UserReactivated,
		*eventsv1.EmailAdded, *eventsv1.EmailRemoved, *eventsv1.PrimaryEmailSet:
		return true
	case *eventsv1.PasswordChanged, *eventsv1.AdminSet:
		return false // the homeserver keeps no password and no Gatehouse admin flag
	case *eventsv1.UserImported:
		return false // imported from the homeserver: it has the account already
	case *eventsv1.UpstreamLinked, *eventsv1.UpstreamUnlinked:
		return false // links to upstream providers are Gatehouse's alone (MAS's provisioning has no external ids)
	}
	return false
}

// Change is one call to the homeserver.
type Change struct {
	// Op is the endpoint: "provision_user", "delete_user" or "reactivate_user".
	Op string
	// Provision is the body of a provision_user call.
	Provision ProvisionRequest
	// Localpart and Erase are the arguments of the other calls.
	Localpart string
	Erase     bool
}

func (c Change) String() string {
	switch c.Op {
	case "provision_user":
		b, _ := c.Provision.MarshalJSON()
		return "provision_user " + string(b)
	case "delete_user":
		return fmt.Sprintf("delete_user %s erase=%t", c.Localpart, c.Erase)
	default:
		return c.Op + " " + c.Localpart
	}
}

// Do makes the call.
func (c Change) Do(ctx context.Context, client *Client) error {
	switch c.Op {
	case "provision_user":
		_, err := client.ProvisionUser(ctx, c.Provision)
		return err
	case "delete_user":
		return client.DeleteUser(ctx, c.Localpart, c.Erase)
	case "reactivate_user":
		return client.ReactivateUser(ctx, c.Localpart)
	}
	return fmt.Errorf("homeserver: unknown change %q", c.Op)
}

// Full is the provision_user request that gives the homeserver everything it
// should know of an active user: the display name (when there is one; an
// empty one is left to the homeserver, which defaults it to the localpart),
// the addresses (all of them, or none) and the lock.
func (s UserState) Full() ProvisionRequest {
	req := ProvisionRequest{Localpart: s.Username, Emails: Some(s.Emails), Locked: Some(s.Locked)}
	if s.DisplayName != "" {
		req.DisplayName = Some(s.DisplayName)
	}
	return req
}

// UserChanges decides the calls that bring the homeserver in step after ev,
// given the user's state with ev applied. A deactivated user's profile is not
// touched: the homeserver has deactivated the account, and reactivation
// provisions everything again.
func UserChanges(s UserState, ev proto.Message) []Change {
	if s.Username == "" {
		return nil
	}
	provision := func(r ProvisionRequest) []Change {
		r.Localpart = s.Username
		return []Change{{Op: "provision_user", Provision: r}}
	}
	// A deactivated user's profile is left alone until reactivation.
	active := func(c []Change) []Change {
		if s.Deactivated {
			return nil
		}
		return c
	}
	switch ev := ev.(type) {
	case *eventsv1.UserRegistered:
		return provision(s.Full())
	case *eventsv1.UserDeactivated:
		return []Change{{Op: "delete_user", Localpart: s.Username, Erase: ev.GetErase()}}
	case *eventsv1.UserReactivated:
		// Deactivation removed the addresses and may have cleared the profile.
		return append([]Change{{Op: "reactivate_user", Localpart: s.Username}}, provision(s.Full())...)
	case *eventsv1.DisplayNameSet:
		return active(provision(ProvisionRequest{DisplayName: Some(ev.GetDisplayName())}))
	case *eventsv1.UserLocked, *eventsv1.UserUnlocked:
		return active(provision(ProvisionRequest{Locked: Some(s.Locked)}))
	case *eventsv1.EmailAdded, *eventsv1.EmailRemoved, *eventsv1.PrimaryEmailSet:
		return active(provision(ProvisionRequest{Emails: Some(s.Emails)}))
	case *eventsv1.PasswordChanged, *eventsv1.AdminSet:
		return nil // the homeserver keeps no password and no Gatehouse admin flag
	case *eventsv1.UserImported:
		return nil // imported from the homeserver: it has the account already
	case *eventsv1.UpstreamLinked, *eventsv1.UpstreamUnlinked:
		return nil // Gatehouse's alone
	}
	return nil
}

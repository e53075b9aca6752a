package accounts_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"gatehouse.dev/platform/config"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	pagingv1 "gatehouse.dev/proto/gatehouse/paging/v1"
	"gatehouse.dev/services/accounts"
)

// withProvider configures one upstream provider (never contacted by these tests).
func withProvider(c *accounts.Config) {
	c.PublicURL = "https://auth.example.org/"
	c.Upstream = []config.UpstreamProvider{{ID: "test", HumanName: "Test IdP", SynapseIdpID: "oidc-test",
		Issuer: "https://idp.example.org", ClientID: "gatehouse", ClientSecret: "s3cret"}}
}

// Links by an administrator and imported from Synapse: the identity is
// claimed once, its subject and address never appear in clear in the
// stream, they are listed (opened) for the user, and unlinking the last way
// in is refused.
func TestUpstreamLinks(t *testing.T) {
	h := startHarness(t, withProvider)
	ctx := context.Background()
	alice := register(t, h.c, "alice", "alice's password")
	nopass, err := h.c.Register(ctx, &accountsv1.RegisterRequest{Username: "nopass"})
	if err != nil {
		t.Fatal(err)
	}
	np := nopass.GetUser()

	link, err := h.c.AddUpstreamLink(ctx, &accountsv1.AddUpstreamLinkRequest{UserId: alice.GetId(), ProviderId: "test", Subject: "sub-alice", Email: "alice@idp.example"})
	if err != nil {
		t.Fatal(err)
	}
	if l := link.GetLink(); l.GetProviderId() != "test" || l.GetProviderName() != "Test IdP" || l.GetSubject() != "sub-alice" ||
		l.GetEmail() != "alice@idp.example" || l.GetSource() != "admin" {
		t.Errorf("link %v", l)
	}
	// The same identity for someone else: refused, whichever way it comes.
	for name, req := range map[string]*accountsv1.AddUpstreamLinkRequest{
		"by provider": {UserId: np.GetId(), ProviderId: "test", Subject: "sub-alice"},
		"imported":    {UserId: np.GetId(), SynapseAuthProvider: "oidc-test", Subject: "sub-alice"},
	} {
		if _, err := h.c.AddUpstreamLink(ctx, req); status.Code(err) != codes.AlreadyExists {
			t.Errorf("%s: %v, want ALREADY_EXISTS", name, err)
		}
	}
	for name, req := range map[string]*accountsv1.AddUpstreamLinkRequest{
		"unknown provider": {UserId: np.GetId(), ProviderId: "nope", Subject: "x"},
		"no subject":       {UserId: np.GetId(), ProviderId: "test"},
		"both":             {UserId: np.GetId(), ProviderId: "test", SynapseAuthProvider: "oidc-test", Subject: "x"},
		"neither":          {UserId: np.GetId(), Subject: "x"},
	} {
		if _, err := h.c.AddUpstreamLink(ctx, req); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	imported, err := h.c.AddUpstreamLink(ctx, &accountsv1.AddUpstreamLinkRequest{UserId: np.GetId(), SynapseAuthProvider: "oidc-test", Subject: "sub-np"})
	if err != nil {
		t.Fatal(err)
	}
	if l := imported.GetLink(); l.GetProviderId() != "test" || l.GetSource() != "import" {
		t.Errorf("imported link %v: want it to belong to the provider naming oidc-test", l)
	}

	// Nothing personal in clear in the stream.
	for _, rec := range h.events(t, "accounts.>") {
		raw := rec.Envelope.GetPayload().GetValue()
		for _, secret := range []string{"sub-alice", "alice@idp.example", "sub-np"} {
			if strings.Contains(string(raw), secret) {
				t.Errorf("%s at seq %d holds %q in clear", rec.Type(), rec.Seq, secret)
			}
		}
		if ev, ok := rec.Event.(*eventsv1.UpstreamLinked); ok && (ev.GetSubject() != "" || ev.GetSealedSubject() == nil) {
			t.Errorf("UpstreamLinked %v: want the subject sealed", ev)
		}
	}

	// nopass has no password and one usable link: it cannot go.
	_, err = h.c.RemoveUpstreamLink(ctx, &accountsv1.RemoveUpstreamLinkRequest{UserId: np.GetId(), LinkId: imported.GetLink().GetLinkId()})
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("unlinking the last way in: %v", err)
	}
	// alice has a password: her link goes, and the identity is free again.
	if _, err := h.c.RemoveUpstreamLink(ctx, &accountsv1.RemoveUpstreamLinkRequest{UserId: alice.GetId(), LinkId: link.GetLink().GetLinkId()}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.c.RemoveUpstreamLink(ctx, &accountsv1.RemoveUpstreamLinkRequest{UserId: alice.GetId(), LinkId: link.GetLink().GetLinkId()}); status.Code(err) != codes.NotFound {
		t.Errorf("unlinking twice: %v", err)
	}
	if _, err := h.c.AddUpstreamLink(ctx, &accountsv1.AddUpstreamLinkRequest{UserId: np.GetId(), ProviderId: "test", Subject: "sub-alice"}); err != nil {
		t.Errorf("a released identity cannot be linked again: %v", err)
	}
	list, err := h.c.ListUpstreamLinks(ctx, &accountsv1.ListUpstreamLinksRequest{ProviderId: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(list.GetLinks()); n != 2 {
		t.Errorf("the provider has %d links, want 2 (both nopass's)", n)
	}
	providers, err := h.c.ListUpstreamProviders(ctx, &accountsv1.ListUpstreamProvidersRequest{})
	if err != nil || len(providers.GetProviders()) != 1 || providers.GetProviders()[0].GetSynapseIdpId() != "oidc-test" {
		t.Errorf("providers %v (%v)", providers, err)
	}

	// Pages of links (the admin API's): subjects and addresses are sealed,
	// yet found — a subject by its claim key under whichever namespace it
	// was linked (a configured provider's, its Synapse name, or an imported
	// provider no longer configured), an address by opening the candidates'.
	orphan, err := h.c.AddUpstreamLink(ctx, &accountsv1.AddUpstreamLinkRequest{UserId: alice.GetId(), SynapseAuthProvider: "oidc-gone",
		Subject: "sub-orphan", Email: "Orphan@Old.example"})
	if err != nil {
		t.Fatal(err)
	}
	all := []string{imported.GetLink().GetLinkId(), orphan.GetLink().GetLinkId()}
	for _, l := range list.GetLinks() {
		if l.GetLinkId() != all[0] {
			all = append(all, l.GetLinkId())
		}
	}
	slices.Sort(all)
	page := func(req *accountsv1.ListUpstreamLinksRequest) ([]string, error) {
		req.Page = &pagingv1.PageRequest{First: 10, Count: pagingv1.Count_COUNT_INCLUDE}
		resp, err := h.c.ListUpstreamLinks(ctx, req)
		var out []string
		for _, l := range resp.GetLinks() {
			out = append(out, l.GetLinkId())
		}
		if err == nil && resp.GetPage().GetTotal() != int64(len(out)) {
			t.Errorf("%v: total %d for %d links", req, resp.GetPage().GetTotal(), len(out))
		}
		return out, err
	}
	for name, c := range map[string]struct {
		req  *accountsv1.ListUpstreamLinksRequest
		want []string
	}{
		"every link":                         {&accountsv1.ListUpstreamLinksRequest{}, all},
		"a user's":                           {&accountsv1.ListUpstreamLinksRequest{UserId: alice.GetId()}, []string{orphan.GetLink().GetLinkId()}},
		"an imported subject, by provider":   {&accountsv1.ListUpstreamLinksRequest{ProviderId: "test", Subject: "sub-np"}, []string{imported.GetLink().GetLinkId()}},
		"an imported subject":                {&accountsv1.ListUpstreamLinksRequest{Subject: "sub-np"}, []string{imported.GetLink().GetLinkId()}},
		"a subject of another provider":      {&accountsv1.ListUpstreamLinksRequest{ProviderId: "test", Subject: "sub-orphan"}, nil},
		"an unconfigured provider's subject": {&accountsv1.ListUpstreamLinksRequest{Subject: "sub-orphan"}, []string{orphan.GetLink().GetLinkId()}},
		"an address":                         {&accountsv1.ListUpstreamLinksRequest{AddressContains: "old.EXAMPLE"}, []string{orphan.GetLink().GetLinkId()}},
		"an address nobody has":              {&accountsv1.ListUpstreamLinksRequest{AddressContains: "nobody"}, nil},
		"a link":                             {&accountsv1.ListUpstreamLinksRequest{LinkId: imported.GetLink().GetLinkId()}, []string{imported.GetLink().GetLinkId()}},
	} {
		got, err := page(c.req)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%s: %v (%v), want %v", name, got, err, c.want)
		}
	}
	if _, err := page(&accountsv1.ListUpstreamLinksRequest{LinkId: "not-an-id"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a bad link id: %v", err)
	}
}

// Nothing but the accounts service's own word starts a session for an
// upstream identity: tickets and proofs are sealed and MACed by it, so a
// caller that makes one up, or changes one, is refused.
func TestUpstreamProofsCannotBeForged(t *testing.T) {
	h := startHarness(t, withProvider)
	ctx := context.Background()
	alice := register(t, h.c, "alice", "alice's password")
	proof := proofFor(t, h.c, alice.GetId())
	parts := strings.Split(proof, ".")
	if len(parts) != 4 {
		t.Fatalf("a password proof %q", proof)
	}
	for name, forged := range map[string]string{
		"method changed to upstream": strings.Join([]string{parts[0], "upstream", parts[2], parts[3]}, "."),
		"an upstream session added":  strings.Join([]string{parts[0], parts[1], parts[2], "dGVzdABzaWQ", parts[3]}, "."),
		"upstream with a session":    strings.Join([]string{parts[0], "upstream", parts[2], "dGVzdABzaWQ", parts[3]}, "."),
	} {
		if _, err := h.c.StartBrowserSession(ctx, &accountsv1.StartBrowserSessionRequest{UserId: alice.GetId(), AuthProof: forged}); status.Code(err) != codes.PermissionDenied {
			t.Errorf("%s: %v, want PERMISSION_DENIED", name, err)
		}
	}
	for name, ticket := range map[string]string{"empty": "", "garbage": "bm90IGEgdGlja2V0", "not base64": "!!"} {
		if _, err := h.c.RegisterUpstreamUser(ctx, &accountsv1.RegisterUpstreamUserRequest{Ticket: ticket, Username: "mallory"}); status.Code(err) != codes.FailedPrecondition {
			t.Errorf("register with a %s ticket: %v", name, err)
		}
		if _, err := h.c.LinkUpstream(ctx, &accountsv1.LinkUpstreamRequest{Ticket: ticket, UserId: alice.GetId(), AuthProof: proof}); status.Code(err) != codes.FailedPrecondition {
			t.Errorf("link with a %s ticket: %v", name, err)
		}
		if _, err := h.c.GetUpstreamSignIn(ctx, &accountsv1.GetUpstreamSignInRequest{Ticket: ticket}); status.Code(err) != codes.FailedPrecondition {
			t.Errorf("read a %s ticket: %v", name, err)
		}
	}
	if _, err := h.c.GetUserByUsername(ctx, &accountsv1.GetUserByUsernameRequest{Username: "mallory"}); status.Code(err) != codes.NotFound {
		t.Errorf("a forged ticket created a user: %v", err)
	}
	if _, err := h.c.CompleteUpstreamSignIn(ctx, &accountsv1.CompleteUpstreamSignInRequest{ProviderId: "nope", Code: "c"}); status.Code(err) != codes.NotFound {
		t.Errorf("an unknown provider: %v", err)
	}
	if _, err := h.c.UpstreamBackchannelLogout(ctx, &accountsv1.UpstreamBackchannelLogoutRequest{ProviderId: "test"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a logout without a token: %v", err)
	}
}

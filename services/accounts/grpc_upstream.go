package accounts

import (
	"context"

	"gatehouse.dev/platform/caller"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
)

// The upstream identity provider RPCs (upstream.go).

func (g *grpcServer) ListUpstreamProviders(ctx context.Context, _ *accountsv1.ListUpstreamProvidersRequest) (*accountsv1.ListUpstreamProvidersResponse, error) {
	return &accountsv1.ListUpstreamProvidersResponse{Providers: g.svc.listProviders()}, nil
}

func (g *grpcServer) StartUpstreamSignIn(ctx context.Context, req *accountsv1.StartUpstreamSignInRequest) (*accountsv1.StartUpstreamSignInResponse, error) {
	st, err := g.svc.startUpstream(ctx, req.GetProviderId())
	if err != nil {
		return nil, err
	}
	return &accountsv1.StartUpstreamSignInResponse{AuthorizationUrl: st.URL, State: st.State, Nonce: st.Nonce, CodeVerifier: st.Verifier}, nil
}

func (g *grpcServer) CompleteUpstreamSignIn(ctx context.Context, req *accountsv1.CompleteUpstreamSignInRequest) (*accountsv1.CompleteUpstreamSignInResponse, error) {
	res, err := g.svc.completeUpstream(ctx, req.GetProviderId(), req.GetCode(), req.GetNonce(), req.GetCodeVerifier())
	if err != nil || res.user != nil { // else the person registers or links first
		g.svc.measures.signIn(ctx, methodUpstream, err)
	}
	if err != nil {
		return nil, err
	}
	if res.user != nil {
		return &accountsv1.CompleteUpstreamSignInResponse{User: res.user.proto(), AuthProof: res.proof}, nil
	}
	return &accountsv1.CompleteUpstreamSignInResponse{Ticket: res.ticket, SignIn: g.svc.signInView(res.t)}, nil
}

func (g *grpcServer) GetUpstreamSignIn(ctx context.Context, req *accountsv1.GetUpstreamSignInRequest) (*accountsv1.GetUpstreamSignInResponse, error) {
	t, err := g.svc.openTicket(req.GetTicket())
	if err != nil {
		return nil, err
	}
	return &accountsv1.GetUpstreamSignInResponse{SignIn: g.svc.signInView(t)}, nil
}

func (g *grpcServer) RegisterUpstreamUser(ctx context.Context, req *accountsv1.RegisterUpstreamUserRequest) (*accountsv1.RegisterUpstreamUserResponse, error) {
	u, proof, err := g.svc.registerUpstream(ctx, req.GetTicket(), req.GetUsername(), req.GetUseDisplayName(), req.GetUseEmail(), actor(ctx))
	g.svc.measures.registered(ctx, registeredUpstream, err)
	if err != nil {
		return nil, err
	}
	return &accountsv1.RegisterUpstreamUserResponse{User: u.proto(), AuthProof: proof}, nil
}

func (g *grpcServer) LinkUpstream(ctx context.Context, req *accountsv1.LinkUpstreamRequest) (*accountsv1.LinkUpstreamResponse, error) {
	u, proof, err := g.svc.linkUpstream(ctx, req.GetTicket(), req.GetUserId(), req.GetAuthProof(), actor(ctx))
	if err != nil {
		return nil, err
	}
	return &accountsv1.LinkUpstreamResponse{User: u.proto(), AuthProof: proof}, nil
}

// ListUpstreamLinks lists the signed-in person's links, or, for an
// administrator, a user's or a provider's; with a page, one page of them
// (or of every link, for an administrator) with the request's filters.
func (g *grpcServer) ListUpstreamLinks(ctx context.Context, req *accountsv1.ListUpstreamLinksRequest) (*accountsv1.ListUpstreamLinksResponse, error) {
	userID, provider := req.GetUserId(), req.GetProviderId()
	admin := false
	if id, _ := caller.From(ctx); id.Is(caller.Admin) {
		admin = true
	}
	if !admin || userID != "" {
		var err error
		if userID, err = forUser(ctx, userID); err != nil {
			return nil, err
		}
		if !admin || req.GetPage() == nil {
			provider = ""
		}
	}
	if req.GetPage() != nil {
		links, info, err := g.svc.pageLinks(ctx, linkFilter{userID: userID, provider: provider, linkID: req.GetLinkId(),
			subject: req.GetSubject(), addressContains: req.GetAddressContains()}, req.GetPage())
		if err != nil {
			return nil, err
		}
		return &accountsv1.ListUpstreamLinksResponse{Links: links, Page: info}, nil
	}
	rows, err := g.svc.listLinks(ctx, userID, provider)
	if err != nil {
		return nil, err
	}
	resp := &accountsv1.ListUpstreamLinksResponse{}
	for _, r := range rows {
		resp.Links = append(resp.Links, r.link)
	}
	return resp, nil
}

func (g *grpcServer) AddUpstreamLink(ctx context.Context, req *accountsv1.AddUpstreamLinkRequest) (*accountsv1.AddUpstreamLinkResponse, error) {
	link, err := g.svc.addLink(ctx, req.GetUserId(), req.GetProviderId(), req.GetSynapseAuthProvider(), req.GetSubject(), req.GetEmail(), actor(ctx))
	if err != nil {
		return nil, err
	}
	return &accountsv1.AddUpstreamLinkResponse{Link: link}, nil
}

func (g *grpcServer) RemoveUpstreamLink(ctx context.Context, req *accountsv1.RemoveUpstreamLinkRequest) (*accountsv1.RemoveUpstreamLinkResponse, error) {
	userID, err := forUser(ctx, req.GetUserId())
	if err != nil {
		return nil, err
	}
	if err := g.svc.removeLink(ctx, userID, req.GetLinkId(), actor(ctx)); err != nil {
		return nil, err
	}
	return &accountsv1.RemoveUpstreamLinkResponse{}, nil
}

func (g *grpcServer) UpstreamBackchannelLogout(ctx context.Context, req *accountsv1.UpstreamBackchannelLogoutRequest) (*accountsv1.UpstreamBackchannelLogoutResponse, error) {
	n, err := g.svc.backchannelLogout(ctx, req.GetProviderId(), req.GetLogoutToken())
	if err != nil {
		return nil, err
	}
	return &accountsv1.UpstreamBackchannelLogoutResponse{BrowserSessionsEnded: int32(n)}, nil
}

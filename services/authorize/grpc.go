package authorize

import (
	"context"
	"encoding/json"
	"errors"
	"google.golang.org/protobuf/types/known/timestamppb"
	"net/url"

	"github.com/jackc/pgx/v5"

	"gatehouse.dev/platform/caller"
	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/ids"
	authorizev1 "gatehouse.dev/proto/gatehouse/authorize/v1"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/authorize/internal/grant"
	"gatehouse.dev/services/authorize/internal/scope"
)

// grpcServer adapts the service to gatehouse.authorize.v1.AuthorizeService.
type grpcServer struct {
	authorizev1.UnimplementedAuthorizeServiceServer
	svc *Service
}

func grantRef(id string) (eventlog.Ref, error) {
	if !ids.Valid(id) {
		return eventlog.Ref{}, errs.InvalidField("grant_id", "grant_id is not a grant id")
	}
	return eventlog.Ref{Type: eventsv1.AuthorizeGrant.Type, ID: id}, nil
}

func (g *grpcServer) loadGrant(ctx context.Context, id string) (grant.State, error) {
	ref, err := grantRef(id)
	if err != nil {
		return grant.State{}, err
	}
	history, _, err := g.svc.pending.Load(ctx, ref)
	if err != nil {
		return grant.State{}, errs.Wrap(errs.KindUnavailable, "The authorization request cannot be read right now.", err)
	}
	st := grant.Fold(history)
	if st.Status == grant.Unknown {
		return st, errs.NotFound("This authorization request does not exist.")
	}
	return st, nil
}

func (g *grpcServer) GetGrant(ctx context.Context, req *authorizev1.GetGrantRequest) (*authorizev1.GetGrantResponse, error) {
	st, err := g.loadGrant(ctx, req.GetGrantId())
	if err != nil {
		return nil, err
	}
	c, err := g.svc.client(ctx, st.Request.GetClientId())
	if err != nil {
		return nil, err
	}
	statuses := map[grant.Status]authorizev1.GrantStatus{
		grant.Pending: authorizev1.GrantStatus_GRANT_STATUS_PENDING, grant.Approved: authorizev1.GrantStatus_GRANT_STATUS_APPROVED,
		grant.Denied: authorizev1.GrantStatus_GRANT_STATUS_DENIED, grant.Exchanged: authorizev1.GrantStatus_GRANT_STATUS_EXCHANGED,
	}
	return &authorizev1.GetGrantResponse{Grant: &authorizev1.Grant{
		GrantId: req.GetGrantId(),
		Client: &authorizev1.ClientInfo{
			ClientId: c.ID, ClientName: c.Meta.ClientName, ClientUri: c.Meta.ClientURI,
			LogoUri: c.Meta.LogoURI, TosUri: c.Meta.TOSURI, PolicyUri: c.Meta.PolicyURI,
		},
		Scope: st.Request.GetScope(), Prompt: st.Request.GetPrompt(), LoginHint: st.Request.GetLoginHint(),
		Status: statuses[st.Status], ExpiresAt: st.Request.GetExpiresAt(),
		RequestedAt: timestamppb.New(st.RequestedAt), MaxAge: st.Request.MaxAge, AcrValues: st.Request.GetAcrValues(),
	}}, nil
}

// ApproveGrant approves a grant for the signed-in person whose browser
// session came with the call: who they are and whether they are an
// administrator come from that session, never from the request.
func (g *grpcServer) ApproveGrant(ctx context.Context, req *authorizev1.ApproveGrantRequest) (*authorizev1.ApproveGrantResponse, error) {
	user, err := caller.SignedIn(ctx)
	if err != nil {
		return nil, err
	}
	ref, err := grantRef(req.GetGrantId())
	if err != nil {
		return nil, err
	}
	// A client a person approves is kept (pending.go).
	if st, err := g.loadGrant(ctx, req.GetGrantId()); err != nil {
		return nil, err
	} else if st.Status == grant.Pending {
		if err := g.svc.keepClient(ctx, st.Request.GetClientId()); err != nil {
			return nil, err
		}
	}
	code := ids.Token(32)
	var st grant.State
	appended, err := g.svc.pending.Execute(ctx, ref, func(history []eventlog.Record, version uint64) ([]eventlog.Write, error) {
		st = grant.Fold(history)
		if st.Status != grant.Pending {
			_, err := grant.Approve(st, g.svc.now(), nil)
			return nil, err
		}
		granted, err := grantedScope(st.Request.GetScope(), user.Admin)
		if err != nil {
			return nil, err
		}
		authTime := user.AuthenticatedAt
		if authTime.IsZero() {
			authTime = g.svc.now()
		}
		// prompt=login and max_age: the person signs in again first (the
		// web service sends them to; this refusal keeps it so).
		if !st.FreshEnough(authTime, g.svc.now()) {
			e := errs.FailedPrecondition("The application asks for a new sign-in.")
			e.Facts = map[string]string{errs.FactStepUp: "login"}
			return nil, e
		}
		decided, err := grant.Approve(st, g.svc.now(), &eventsv1.GrantApproved{
			AuthMethods: user.AuthMethods,
			GrantId:     req.GetGrantId(), UserId: user.ID, Username: user.Username, Admin: user.Admin,
			AuthTime: grant.Timestamp(authTime), CodeHash: grant.CodeHash(code),
			CodeExpiresAt: grant.Timestamp(g.svc.now().Add(g.svc.cfg.CodeTTL)), Scope: granted,
			BrowserSessionId: user.SessionID,
		})
		return g.svc.expiring(eventlog.Writes(ref, caller.Actor(ctx), version, decided...), g.svc.grantEnd(st.Request)), err
	})
	if err != nil {
		return nil, recordErr(err)
	}
	if err := g.svc.projections.WaitFor(ctx, grantsProjection, appended.Last()); err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "The approval was recorded but is not usable yet; try again.", err)
	}
	params := url.Values{"code": {code}}
	if st.Request.GetState() != "" {
		params.Set("state", st.Request.GetState())
	}
	return &authorizev1.ApproveGrantResponse{RedirectUri: g.svc.responseURL(st.Request.GetRedirectUri(), st.Request.GetResponseMode(), params)}, nil
}

// grantedScope is the scope a grant ends up with: a device scope is added
// when the client asked for the Matrix API without one, and administrator
// scopes need an administrator.
func grantedScope(requested string, admin bool) (string, error) {
	set, err := scope.Parse(requested)
	if err != nil {
		return "", err
	}
	m, err := scope.Interpret(set)
	if err != nil {
		return "", err
	}
	if m.SynapseAdmin && !admin {
		return "", errs.PermissionDenied("This application asks for administrator access, which your account does not have.")
	}
	if m.API && m.DeviceID == "" {
		set = scope.WithDevice(set, scope.NewDeviceID(), m.Unstable)
	}
	return set.String(), nil
}

func (g *grpcServer) DenyGrant(ctx context.Context, req *authorizev1.DenyGrantRequest) (*authorizev1.DenyGrantResponse, error) {
	ref, err := grantRef(req.GetGrantId())
	if err != nil {
		return nil, err
	}
	var st grant.State
	_, err = g.svc.pending.Execute(ctx, ref, func(history []eventlog.Record, version uint64) ([]eventlog.Write, error) {
		st = grant.Fold(history)
		decided, err := grant.Deny(st)
		return g.svc.expiring(eventlog.Writes(ref, caller.Actor(ctx), version, decided...), g.svc.grantEnd(st.Request)), err
	})
	if err != nil {
		return nil, recordErr(err)
	}
	params := url.Values{"error": {"access_denied"}, "error_description": {"The user refused access."}}
	if st.Request.GetState() != "" {
		params.Set("state", st.Request.GetState())
	}
	return &authorizev1.DenyGrantResponse{RedirectUri: g.svc.responseURL(st.Request.GetRedirectUri(), st.Request.GetResponseMode(), params)}, nil
}

// ExchangeCode uses a code once. The grant is found through the read model
// and decided on its aggregate, so two concurrent exchanges have one winner.
func (g *grpcServer) ExchangeCode(ctx context.Context, req *authorizev1.ExchangeCodeRequest) (*authorizev1.ExchangeCodeResponse, error) {
	invalid := errs.FailedPrecondition("The authorization code is invalid.")
	if req.GetCode() == "" || len(req.GetCode()) > 128 || !ids.Valid(req.GetSessionId()) {
		return nil, invalid
	}
	var grantID string
	err := g.svc.pool.QueryRow(ctx, `SELECT grant_id FROM pending_grants WHERE code_hash = $1`, grant.CodeHash(req.GetCode())).Scan(&grantID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, invalid
	}
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "Codes cannot be checked right now.", err)
	}
	ref := eventlog.Ref{Type: eventsv1.AuthorizeGrant.Type, ID: grantID}
	var (
		st       grant.State
		replayed *grant.Replayed
	)
	_, err = g.svc.pending.Execute(ctx, ref, func(history []eventlog.Record, version uint64) ([]eventlog.Write, error) {
		st = grant.Fold(history)
		decided, r, err := grant.DecideExchange(st, grant.Exchange{
			Code: req.GetCode(), ClientID: req.GetClientId(), RedirectURI: req.GetRedirectUri(),
			Verifier: req.GetCodeVerifier(), SessionID: req.GetSessionId(), Now: g.svc.now(),
		})
		replayed = r
		return g.svc.expiring(eventlog.Writes(ref, "client:"+req.GetClientId(), version, decided...), g.svc.grantEnd(st.Request)), err
	})
	if err != nil {
		return nil, recordErr(err)
	}
	if replayed != nil {
		return &authorizev1.ExchangeCodeResponse{ReplayedSessionId: replayed.SessionID}, nil
	}
	a := st.Approval
	return &authorizev1.ExchangeCodeResponse{
		GrantId: grantID, UserId: a.GetUserId(), Username: a.GetUsername(), Scope: a.GetScope(),
		Nonce: st.Request.GetNonce(), AuthTime: a.GetAuthTime(), Admin: a.GetAdmin(), BrowserSessionId: a.GetBrowserSessionId(),
		AuthMethods: a.GetAuthMethods(), AcrValues: st.Request.GetAcrValues(),
	}, nil
}

func (g *grpcServer) GetClient(ctx context.Context, req *authorizev1.GetClientRequest) (*authorizev1.GetClientResponse, error) {
	c, err := g.svc.client(ctx, req.GetClientId())
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(c.Meta)
	if err != nil {
		return nil, errs.Wrap(errs.KindInternal, "", err)
	}
	resp := &authorizev1.GetClientResponse{ClientId: c.ID, MetadataJson: raw, SecretHash: c.SecretHash}
	// Only the token service checks client_secret_jwt assertions; nobody
	// else ever sees a client's secret.
	if id, _ := caller.From(ctx); c.Meta.TokenEndpointAuthMethod == "client_secret_jwt" && id.Is(caller.Token) {
		resp.JwtSecret = g.svc.clientSecret(c.ID)
	}
	return resp, nil
}

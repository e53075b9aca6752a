package grpcx

import (
	"context"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"gatehouse.dev/platform/caller"
	"gatehouse.dev/platform/errs"
	authv1 "gatehouse.dev/proto/gatehouse/auth/v1"
)

// SessionVerifier verifies the browser session that comes with a call made by
// the web service for a signed-in person, and says who that person is.
type SessionVerifier func(ctx context.Context, secret string) (*caller.User, error)

// TokenVerifier verifies a bearer token that is neither the homeserver's
// secret nor a credential derived from the internal secret: an OAuth access
// token or a personal access token, as the admin API forwards them. It says
// who the token stands for when it grants administration; otherwise an
// errs.Unauthenticated error (not a live token) or errs.PermissionDenied
// (a live token without administration), or an unavailable error.
type TokenVerifier func(ctx context.Context, token string) (*caller.TokenSubject, error)

// Auth says how the server authenticates its callers. Every call must be
// authenticated, except health checks; every method must name, with the
// access option in its proto definition, the callers allowed.
type Auth struct {
	// InternalSecret derives the credentials of the services and the admin
	// CLI (DeriveCredential); empty accepts none.
	InternalSecret []byte
	// HomeserverSecret is matrix.secret; empty accepts no homeserver.
	HomeserverSecret string
	// Sessions verifies browser sessions (web acting for a person); nil
	// refuses every call that needs one.
	Sessions SessionVerifier
	// Tokens verifies administrators' bearer tokens (OAuth or personal
	// access tokens with an admin scope), which then call as Admin; nil
	// refuses them.
	Tokens TokenVerifier
}

// certURIPrefix starts the URI SAN naming a caller in a client certificate:
// urn:gatehouse:caller:web, urn:gatehouse:caller:admin, ...
const certURIPrefix = "urn:gatehouse:caller:"

// Open methods need no credential; anyAuthenticated methods need any.
var (
	openServices             = []string{"grpc.health.v1.Health"}
	anyAuthenticatedServices = []string{"grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"}
)

// authenticate returns the identity a call authenticates as.
func (a *Auth) authenticate(ctx context.Context) (caller.Identity, error) {
	// One key at a time: FromIncomingContext would copy every header.
	if v := metadata.ValueFromIncomingContext(ctx, AuthorizationHeader); len(v) > 0 {
		if len(v) > 1 {
			return caller.Identity{}, errs.Unauthenticated("more than one authorization header")
		}
		token, ok := strings.CutPrefix(v[0], "Bearer ")
		if !ok || token == "" {
			return caller.Identity{}, errs.Unauthenticated("authorization must be a bearer credential")
		}
		if a.HomeserverSecret != "" && constantEqual(token, a.HomeserverSecret) {
			return caller.Identity{Kind: caller.Homeserver}, nil
		}
		if kind, ok := checkDerived(a.InternalSecret, token); ok {
			return caller.Identity{Kind: kind}, nil
		}
		if strings.HasPrefix(token, credentialPrefix) || a.Tokens == nil {
			return caller.Identity{}, errs.Unauthenticated("invalid credential")
		}
		return a.verifyToken(ctx, token)
	}
	kinds := peerIdentities(ctx)
	switch {
	case len(kinds) == 0:
		return caller.Identity{}, errs.Unauthenticated("a credential is required")
	case len(kinds) == 1:
		return caller.Identity{Kind: kinds[0]}, nil
	}
	want := metadata.ValueFromIncomingContext(ctx, CallerHeader)
	if len(want) != 1 {
		return caller.Identity{}, errs.Unauthenticated("the client certificate names several callers: say which with " + CallerHeader)
	}
	kind, ok := caller.ByName(want[0])
	if !ok || !slices.Contains(kinds, kind) {
		return caller.Identity{}, errs.Unauthenticated("the client certificate does not name caller " + want[0])
	}
	return caller.Identity{Kind: kind}, nil
}

// verifyToken authenticates an administrator's bearer token: the caller is
// Admin, acting as the token's subject. A token that is not live is
// unauthenticated; a live one without administration is refused; the
// verifier's own failures (unavailable) pass through.
func (a *Auth) verifyToken(ctx context.Context, token string) (caller.Identity, error) {
	subject, err := a.Tokens(ctx, token)
	switch k := errs.KindOf(err); {
	case err == nil && subject != nil:
		return caller.Identity{Kind: caller.Admin, Token: subject}, nil
	case k == errs.KindUnavailable || k == errs.KindInternal:
		return caller.Identity{}, err
	case k == errs.KindPermissionDenied:
		return caller.Identity{}, errs.PermissionDenied("the token does not grant administration")
	default:
		return caller.Identity{}, errs.Unauthenticated("invalid credential")
	}
}

// peerIdentities returns the callers a verified client certificate names in
// its URI SANs (urn:gatehouse:caller:<name>).
func peerIdentities(ctx context.Context) []caller.Kind {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 {
		return nil
	}
	return certIdentities(info.State.VerifiedChains[0][0])
}

// certIdentities returns the callers a certificate names.
func certIdentities(cert *x509.Certificate) []caller.Kind {
	var kinds []caller.Kind
	for _, u := range cert.URIs {
		name, ok := strings.CutPrefix(u.String(), certURIPrefix)
		if !ok {
			continue
		}
		if k, ok := caller.ByName(name); ok && k != caller.Homeserver && !slices.Contains(kinds, k) {
			kinds = append(kinds, k)
		}
	}
	return kinds
}

// authorize checks the identity against the method's access list and, for
// the web service, verifies the browser session it sends. It returns the
// identity to put in the handler's context.
func (a *Auth) authorize(ctx context.Context, fullMethod string, id caller.Identity) (caller.Identity, error) {
	service, _ := splitMethod(fullMethod)
	if slices.Contains(anyAuthenticatedServices, service) {
		return id, nil
	}
	allowed, err := accessOf(fullMethod)
	if err != nil {
		return id, err
	}
	if id.Kind == caller.Web {
		if v := metadata.ValueFromIncomingContext(ctx, BrowserSessionHeader); len(v) > 0 {
			if len(v) > 1 || a.Sessions == nil {
				return id, errs.PermissionDenied("cannot verify the browser session")
			}
			user, err := a.Sessions(ctx, v[0])
			if err != nil {
				if k := errs.KindOf(err); k == errs.KindUnavailable || k == errs.KindInternal {
					return id, err
				}
				return id, errs.PermissionDenied("the browser session is not valid")
			}
			id.User = user
		}
		if slices.Contains(allowed, caller.Web) || (id.User != nil && slices.Contains(allowed, caller.WebUser)) {
			return id, nil
		}
		if slices.Contains(allowed, caller.WebUser) {
			return id, errs.PermissionDenied(fullMethod + " needs a signed-in user")
		}
		return id, errs.PermissionDenied(fullMethod + " may not be called by web")
	}
	if !slices.Contains(allowed, id.Kind) {
		return id, errs.PermissionDenied(fmt.Sprintf("%s may not be called by %s", fullMethod, caller.Name(id.Kind)))
	}
	return id, nil
}

// accessCache remembers each method's access list; the descriptors never change.
var accessCache sync.Map // full method → []caller.Kind

// accessOf returns the callers a method's access option allows; a method
// without one (or unknown to this binary) is refused.
func accessOf(fullMethod string) ([]caller.Kind, error) {
	if v, ok := accessCache.Load(fullMethod); ok {
		return v.([]caller.Kind), nil
	}
	allowed, err := AccessOf(fullMethod)
	if err != nil {
		return nil, errs.PermissionDenied(fullMethod + " is not in the access table")
	}
	accessCache.Store(fullMethod, allowed)
	return allowed, nil
}

// AccessOf reads a method's access option ("/pkg.Service/Method") from the
// registered proto descriptors.
func AccessOf(fullMethod string) ([]caller.Kind, error) {
	service, method := splitMethod(fullMethod)
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(service))
	if err != nil {
		return nil, fmt.Errorf("grpcx: unknown service %s: %w", service, err)
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil, fmt.Errorf("grpcx: %s is not a service", service)
	}
	md := sd.Methods().ByName(protoreflect.Name(method))
	if md == nil {
		return nil, fmt.Errorf("grpcx: %s has no method %s", service, method)
	}
	access, _ := proto.GetExtension(md.Options(), authv1.E_Access).(*authv1.Access)
	if len(access.GetCallers()) == 0 {
		return nil, fmt.Errorf("grpcx: %s names no callers", fullMethod)
	}
	return access.GetCallers(), nil
}

// splitMethod splits "/pkg.Service/Method".
func splitMethod(fullMethod string) (service, method string) {
	s := strings.TrimPrefix(fullMethod, "/")
	service, method, _ = strings.Cut(s, "/")
	return service, method
}

// check authenticates and authorizes a call, returning the context the
// handler runs with.
func (a *Auth) check(ctx context.Context, fullMethod string) (context.Context, error) {
	service, _ := splitMethod(fullMethod)
	if slices.Contains(openServices, service) {
		return ctx, nil
	}
	id, err := a.authenticate(ctx)
	if err != nil {
		return ctx, err
	}
	id, err = a.authorize(ctx, fullMethod, id)
	if err != nil {
		return ctx, err
	}
	return caller.NewContext(ctx, id), nil
}

// authUnary authenticates unary calls.
func authUnary(a *Auth) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := a.check(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// authStream authenticates streaming calls.
func authStream(a *Auth) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := a.check(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		return handler(srv, &authedStream{ServerStream: ss, ctx: ctx})
	}
}

// authedStream is a server stream whose context carries the caller.
type authedStream struct {
	grpc.ServerStream
	ctx context.Context
}

// Context is the stream's context with the caller's identity.
func (s *authedStream) Context() context.Context { return s.ctx }

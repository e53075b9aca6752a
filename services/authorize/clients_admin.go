package authorize

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/paging"
	authorizev1 "gatehouse.dev/proto/gatehouse/authorize/v1"
)

// clientSources are the sources a client can come from: the configuration
// (static clients) or dynamic registration.
var clientSources = map[string]bool{"configuration": true, "registration": true}

// everyClient is every client that can be used: those of the configuration
// and the approved registrations (clients), and the registrations nobody
// approved yet that have not expired (pending_clients).
const everyClient = `(SELECT client_id, metadata, source, registered_at FROM clients
	UNION ALL SELECT p.client_id, p.metadata, 'registration', p.registered_at FROM pending_clients p
	WHERE p.expires_at > now() AND NOT EXISTS (SELECT 1 FROM clients c WHERE c.client_id = p.client_id)) AS every_client`

// ListClients pages through the registered clients for administrators, in
// client id order, with the admin API's filters; never their secrets.
func (g *grpcServer) ListClients(ctx context.Context, req *authorizev1.ListClientsRequest) (*authorizev1.ListClientsResponse, error) {
	p, err := paging.From(req.GetPage(), nil)
	if err != nil {
		return nil, err
	}
	q := &paging.Query{From: everyClient, Columns: "client_id, metadata, source, registered_at", Key: "client_id"}
	if src := req.GetSource(); src != "" {
		if !clientSources[src] {
			return nil, errs.InvalidField("source", "source is configuration or registration")
		}
		q.Where("source = ?", src)
	}
	q.WhereIf(req.GetClientId() != "", "client_id = ?", req.GetClientId())
	q.WhereIf(req.GetName() != "", "strpos(lower(metadata->>'client_name'), lower(?)) > 0", req.GetName())
	q.WhereIf(req.GetUri() != "", "strpos(lower(metadata->>'client_uri'), lower(?)) > 0", req.GetUri())
	q.WhereIf(req.GetGrantType() != "", "metadata->'grant_types' @> jsonb_build_array(?::text)", req.GetGrantType())
	if has := req.HasActiveSessions; has != nil {
		q.WhereIf(*has, liveClientSession).WhereIf(!*has, "NOT "+liveClientSession)
		if err := g.svc.catchUpTokenSessions(ctx); err != nil {
			return nil, err
		}
	}
	list, info, err := paging.List(ctx, g.svc.pool, q, p, func(r pgx.Rows) (*authorizev1.Client, error) {
		var (
			c  authorizev1.Client
			at time.Time
		)
		err := r.Scan(&c.ClientId, &c.MetadataJson, &c.Source, &at)
		c.RegisteredAt = timestamppb.New(at)
		return &c, err
	})
	if err != nil {
		return nil, errs.Wrap(errs.KindUnavailable, "Clients cannot be read right now.", err)
	}
	return &authorizev1.ListClientsResponse{Clients: list, Page: info}, nil
}

package authorize

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"gatehouse.dev/platform/eventlog"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/authorize/internal/clientmeta"
	"gatehouse.dev/services/authorize/internal/redirect"
)

// StaticClient is a client defined in the deployment's configuration.
type StaticClient struct {
	ID, Secret, AuthMethod, Name, URI string
	RedirectURIs, GrantTypes          []string
	// Scope is what the client may ask for acting for itself (client_credentials).
	Scope string
	// PostLogoutRedirectURIs are where RP-initiated logout may return the browser.
	PostLogoutRedirectURIs []string
}

// syncStaticClients records the configured clients, re-registering one only
// when its configuration changed. Replicas starting together converge: a lost
// race re-reads and finds the same registration.
func (s *Service) syncStaticClients(ctx context.Context, clients []StaticClient) error {
	for _, c := range clients {
		for _, u := range append(append([]string(nil), c.RedirectURIs...), c.PostLogoutRedirectURIs...) {
			if _, err := redirect.ParseRegistered(u); err != nil {
				return fmt.Errorf("authorize: static client %s: %w", c.ID, err)
			}
		}
		meta := clientmeta.Metadata{
			ClientName: c.Name, ClientURI: c.URI, RedirectURIs: c.RedirectURIs, GrantTypes: c.GrantTypes,
			TokenEndpointAuthMethod: c.AuthMethod, ApplicationType: "web", ResponseTypes: []string{}, Scope: c.Scope,
			PostLogoutRedirectURIs: c.PostLogoutRedirectURIs,
		}
		if contains(c.GrantTypes, "authorization_code") {
			meta.ResponseTypes = []string{"code"}
		}
		raw, err := json.Marshal(meta)
		if err != nil {
			return err
		}
		var secretHash string
		if c.Secret != "" {
			secretHash = SecretHash(c.Secret)
		}
		ref := eventlog.Ref{Type: eventsv1.AuthorizeClient.Type, ID: c.ID}
		appended, err := s.log.Execute(ctx, ref, func(history []eventlog.Record, version uint64) ([]eventlog.Write, error) {
			for i := len(history) - 1; i >= 0; i-- {
				if ev, ok := history[i].Event.(*eventsv1.ClientRegistered); ok {
					if bytes.Equal(ev.GetMetadataJson(), raw) && ev.GetSecretHash() == secretHash {
						return nil, nil // unchanged
					}
					break
				}
			}
			return eventlog.Writes(ref, "configuration", version,
				&eventsv1.ClientRegistered{ClientId: c.ID, MetadataJson: raw, SecretHash: secretHash, Source: "configuration"}), nil
		})
		if err != nil {
			return fmt.Errorf("authorize: static client %s: %w", c.ID, err)
		}
		if appended.Last() > 0 {
			// The clients projection picks it up as soon as the service runs.
			s.logger.Info("registered static client", "client_id", c.ID)
		}
	}
	return nil
}

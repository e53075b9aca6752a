package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	authorizev1 "gatehouse.dev/proto/gatehouse/authorize/v1"
	pagingv1 "gatehouse.dev/proto/gatehouse/paging/v1"
)

// OAuth 2.0 clients: the authorize service's, never their secrets.

type clientAttributes struct {
	ClientID     string   `json:"client_id"`
	ClientName   *string  `json:"client_name"`
	ClientURI    *string  `json:"client_uri"`
	LogoURI      *string  `json:"logo_uri"`
	RedirectURIs []string `json:"redirect_uris"`
	GrantTypes   []string `json:"grant_types"`
	IsStatic     bool     `json:"is_static"`
}

func (s *Service) clientResource(c *authorizev1.Client) resource {
	var meta struct {
		ClientName   string   `json:"client_name"`
		ClientURI    string   `json:"client_uri"`
		LogoURI      string   `json:"logo_uri"`
		RedirectURIs []string `json:"redirect_uris"`
		GrantTypes   []string `json:"grant_types"`
	}
	_ = json.Unmarshal(c.GetMetadataJson(), &meta) // the authorize service wrote it
	if meta.RedirectURIs == nil {
		meta.RedirectURIs = []string{}
	}
	if meta.GrantTypes == nil {
		meta.GrantTypes = []string{"authorization_code"} // RFC 7591's default
	}
	return s.resource(clients, c.GetClientId(), clientAttributes{
		ClientID: c.GetClientId(), ClientName: nullable(meta.ClientName), ClientURI: nullable(meta.ClientURI), LogoURI: nullable(meta.LogoURI),
		RedirectURIs: meta.RedirectURIs, GrantTypes: meta.GrantTypes, IsStatic: c.GetSource() == "configuration",
	})
}

func (s *Service) listClients(ctx context.Context, r *request) (reply, error) {
	pr, err := r.query.page()
	if err != nil {
		return reply{}, err
	}
	kind, err := r.query.enum("filter[client-kind]")
	if err != nil {
		return reply{}, err
	}
	active, err := r.query.boolean("filter[has-active-sessions]")
	if err != nil {
		return reply{}, err
	}
	resp, err := s.authorize.ListClients(ctx, &authorizev1.ListClientsRequest{
		Page: pr, Source: map[string]string{"static": "configuration", "dynamic": "registration"}[kind],
		Name: r.query.get("filter[client-name]"), Uri: r.query.get("filter[client-uri]"), GrantType: r.query.get("filter[grant-type]"),
		HasActiveSessions: active,
	})
	if err != nil {
		return reply{}, err
	}
	items := make([]resource, 0, len(resp.GetClients()))
	for _, c := range resp.GetClients() {
		items = append(items, s.clientResource(c))
	}
	return s.page(r, clients, pr, resp.GetPage(), items), nil
}

func (s *Service) getClient(ctx context.Context, r *request) (reply, error) {
	id := r.path("id")
	resp, err := s.authorize.ListClients(ctx, &authorizev1.ListClientsRequest{ClientId: id, Page: &pagingv1.PageRequest{First: 1}})
	if err != nil {
		return reply{}, err
	}
	if len(resp.GetClients()) == 0 {
		return reply{}, &apiError{status: http.StatusNotFound, title: "OAuth 2.0 client ID " + url.PathEscape(id) + " not found"}
	}
	res := s.clientResource(resp.GetClients()[0])
	return reply{status: http.StatusOK, body: single{Data: res, Links: res.Links}}, nil
}

// maxFilterClients bounds the clients one filter[active-oauth2-client] names.
const maxFilterClients = 100

// knownClients checks that every client a filter names exists, as MAS does:
// a mistyped client is 404, not a list that matches nobody.
func (s *Service) knownClients(ctx context.Context, name string, ids []string) error {
	if len(ids) > maxFilterClients {
		return badRequest(fmt.Sprintf("Invalid %s: at most %d clients.", name, maxFilterClients))
	}
	for _, id := range ids {
		if id == "" {
			return badRequest(fmt.Sprintf("Invalid %s: a client ID is empty.", name))
		}
		resp, err := s.authorize.ListClients(ctx, &authorizev1.ListClientsRequest{ClientId: id, Page: &pagingv1.PageRequest{First: 1}})
		if err != nil {
			return err
		}
		if len(resp.GetClients()) == 0 {
			return &apiError{status: http.StatusNotFound, title: "Client ID " + url.PathEscape(id) + " not found"}
		}
	}
	return nil
}

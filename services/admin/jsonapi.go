package admin

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pagingv1 "gatehouse.dev/proto/gatehouse/paging/v1"
)

// The bodies, shaped as MAS's (JSON:API-like): a resource is its type, id,
// attributes and links (and, in a page, its cursor); a page is its
// resources, the links to itself, the first, last, next and previous pages,
// and the count of every match.

// resource is one resource of a response.
type resource struct {
	Type       string        `json:"type"`
	ID         string        `json:"id"`
	Attributes any           `json:"attributes"`
	Links      selfLinks     `json:"links"`
	Meta       *resourceMeta `json:"meta,omitempty"`
}

type selfLinks struct {
	Self string `json:"self"`
}

type resourceMeta struct {
	Page *struct {
		Cursor string `json:"cursor"`
	} `json:"page,omitempty"`
}

// single is a response with one resource.
type single struct {
	Data  resource  `json:"data"`
	Links selfLinks `json:"links"`
}

// pageBody is a response with a page of resources.
type pageBody struct {
	Meta  *pageMeta  `json:"meta,omitempty"`
	Data  []resource `json:"data,omitempty"`
	Links pageLinks  `json:"links"`
}

type pageMeta struct {
	Count int64 `json:"count"`
}

type pageLinks struct {
	Self  string `json:"self"`
	First string `json:"first,omitempty"`
	Last  string `json:"last,omitempty"`
	Next  string `json:"next,omitempty"`
	Prev  string `json:"prev,omitempty"`
}

// collection is where a kind of resource lives, and its type.
type collection struct {
	typ  string // "user"
	path string // "/users"
}

// The collections of the API.
var (
	users          = collection{"user", "/users"}
	userEmails     = collection{"user-email", "/user-emails"}
	userSessions   = collection{"user-session", "/user-sessions"}
	oauthSessions  = collection{"oauth2-session", "/oauth2-sessions"}
	compatSessions = collection{"compat-session", "/compat-sessions"}
	personal       = collection{"personal-session", "/personal-sessions"}
	clients        = collection{"oauth2-client", "/oauth2-clients"}
	// MAS names registration tokens' type so; kept for its clients.
	regTokens   = collection{"user-registration_token", "/user-registration-tokens"}
	auditEvents = collection{"audit-event", "/audit-events"}
	// Upstream identity providers and links (upstream.go).
	upstreamLinks     = collection{"upstream-oauth-link", "/upstream-oauth-links"}
	upstreamProviders = collection{"upstream-oauth-provider", "/upstream-oauth-providers"}
)

// resource returns one resource of the collection.
func (s *Service) resource(c collection, id string, attributes any) resource {
	return resource{Type: c.typ, ID: id, Attributes: attributes, Links: selfLinks{Self: s.base + c.path + "/" + url.PathEscape(id)}}
}

// one answers one resource.
func (s *Service) one(status int, c collection, id string, attributes any) reply {
	r := s.resource(c, id, attributes)
	return reply{status: status, body: single{Data: r, Links: r.Links}}
}

// page answers a page of resources of the collection, with its links.
func (s *Service) page(r *request, c collection, pr *pagingv1.PageRequest, info *pagingv1.PageInfo, items []resource) reply {
	base := s.base + c.path
	filters := r.query.filters()
	if pr.GetCount() == pagingv1.Count_COUNT_UNSPECIFIED {
		filters = append(filters, [2]string{"count", "false"})
	}
	body := pageBody{}
	if info.Total != nil {
		body.Meta = &pageMeta{Count: info.GetTotal()}
	}
	if pr.GetCount() == pagingv1.Count_COUNT_ONLY {
		body.Links.Self = link(base, append(filters, [2]string{"count", "only"}))
		return reply{status: http.StatusOK, body: body}
	}
	size := pr.GetFirst()
	sizeName := "page[first]"
	if pr.GetLast() != 0 {
		size, sizeName = pr.GetLast(), "page[last]"
	}
	n := strconv.Itoa(int(size))
	with := func(extra ...[2]string) string {
		return link(base, append(append([][2]string{}, filters...), extra...))
	}
	var cur [][2]string
	if pr.GetBefore() != "" {
		cur = append(cur, [2]string{"page[before]", pr.GetBefore()})
	}
	if pr.GetAfter() != "" {
		cur = append(cur, [2]string{"page[after]", pr.GetAfter()})
	}
	body.Links.Self = with(append(cur, [2]string{sizeName, n})...)
	body.Links.First = with([2]string{"page[first]", n})
	body.Links.Last = with([2]string{"page[last]", n})
	body.Data = make([]resource, 0, len(items))
	for _, it := range items {
		it.Meta = &resourceMeta{Page: &struct {
			Cursor string `json:"cursor"`
		}{Cursor: it.ID}}
		body.Data = append(body.Data, it)
	}
	if info.GetHasNextPage() && len(items) > 0 {
		body.Links.Next = with([2]string{"page[after]", items[len(items)-1].ID}, [2]string{sizeName, n})
	}
	if info.GetHasPreviousPage() && len(items) > 0 {
		body.Links.Prev = with([2]string{"page[before]", items[0].ID}, [2]string{sizeName, n})
	}
	return reply{status: http.StatusOK, body: body}
}

// link is base with a query whose keys keep their brackets (page[first]).
func link(base string, pairs [][2]string) string {
	if len(pairs) == 0 {
		return base
	}
	parts := make([]string, 0, len(pairs))
	for _, p := range pairs {
		parts = append(parts, strings.NewReplacer("%5B", "[", "%5D", "]").Replace(url.QueryEscape(p[0]))+"="+url.QueryEscape(p[1]))
	}
	return base + "?" + strings.Join(parts, "&")
}

// rfc3339 is a timestamp as the API shows it (nil: null).
func rfc3339(ts *timestamppb.Timestamp) *string {
	if ts == nil {
		return nil
	}
	s := ts.AsTime().UTC().Format(time.RFC3339Nano)
	return &s
}

// rfc3339v is a timestamp that is always there.
func rfc3339v(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return time.Unix(0, 0).UTC().Format(time.RFC3339)
	}
	return ts.AsTime().UTC().Format(time.RFC3339Nano)
}

// nullable is s, or null when empty.
func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

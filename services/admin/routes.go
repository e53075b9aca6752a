package admin

import (
	"net/http"
	"slices"
)

// route is one row of the route table: an operation of the API. The router
// (http.go), the OpenAPI document (openapi.go) and the query's check
// (query.go) are all made from these rows.
type route struct {
	method string
	// path is under /api/admin/v1, with {name} path parameters.
	path    string
	id      string // operationId, as MAS names it
	summary string
	tag     string
	// params are the query parameters the route takes.
	params []param
	// pathSchemas gives a path parameter's schema; a ULID by default.
	pathSchemas map[string]map[string]any
	// body names the request body's schema, if any; bodyRequired says
	// whether it must be there.
	body         string
	bodyRequired bool
	// status is the answer's status on success, response its schema ("":
	// no body).
	status   int
	response string
	// alsoOK is another success status with the same answer (0: none).
	alsoOK int
	// errors are the error statuses the route documents besides the ones
	// every route may answer (400 for its input, 401, 403; default).
	errors []int
	// public routes need no token (the OpenAPI document).
	public bool
	// anyCursor: the list's ids, its cursors, are not ULIDs (clients).
	anyCursor bool
	handle    handlerFunc
}

// with returns the page parameters followed by ps.
func with(ps ...param) []param { return append(pageParams(), ps...) }

// Schemas of path parameters that are not ULIDs.
var (
	usernamePath = map[string]map[string]any{"username": {"type": "string", "description": "The username (localpart) of the user"}}
	clientIDPath = map[string]map[string]any{"id": {"type": "string", "description": "The client's id"}}
	providerPath = map[string]map[string]any{"id": {"type": "string", "description": "The provider's id, as configured (upstream.providers)"}}
)

// table is the route table: every operation of the API.
func (s *Service) table() []route {
	const get, post, put, del = http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete
	status := func(what string, values ...string) param {
		return enumParam("filter[status]", "Retrieve the items with the given status ("+what+")", values...)
	}
	ranges := []param{
		timeParam("filter[created-before]", "Retrieve sessions created strictly before the given time"),
		timeParam("filter[created-after]", "Retrieve sessions created strictly after the given time"),
		timeParam("filter[last-active-before]", "Retrieve sessions last active strictly before the given time"),
		timeParam("filter[last-active-after]", "Retrieve sessions last active strictly after the given time"),
	}
	userSession := ulidParam("filter[user-session]", "Retrieve the sessions started from the given user (browser) session")
	scopes := param{name: "filter[scope]", desc: "Retrieve the sessions whose scope holds every one of these (repeatable)",
		schema: map[string]any{"type": "array", "items": map[string]any{"type": "string"}}, repeated: true}
	return []route{
		// The document itself, and what the deployment is.
		{method: get, path: "/openapi.json", id: "openapi", summary: "This API's OpenAPI 3.1 document", tag: "server",
			status: http.StatusOK, response: "OpenAPIDocument", public: true, handle: s.handleOpenAPI},
		{method: get, path: "/site-config", id: "siteConfig", summary: "Get informations about the configuration of this server", tag: "server",
			status: http.StatusOK, response: "SiteConfig", handle: s.handleSiteConfig},
		{method: get, path: "/version", id: "version", summary: "Get the version currently running", tag: "server",
			status: http.StatusOK, response: "Version", handle: s.handleVersion},

		// Users (users.go).
		{method: get, path: "/users", id: "listUsers", summary: "List users", tag: "user",
			params: with(boolParam("filter[admin]", "Retrieve users with (or without) the admin flag set"),
				boolParam("filter[legacy-guest]", "Retrieve users with (or without) the legacy_guest flag set (Gatehouse has no guests: true finds none)"),
				stringParam("filter[search]", "Retrieve users whose username contains the given string"),
				enumParam("filter[status]", "active: neither locked nor deactivated; locked: locked or deactivated; deactivated: deactivated", "active", "locked", "deactivated"),
				param{name: "filter[active-oauth2-client]", desc: "Retrieve users which have at least one active OAuth 2.0 session belonging to any of the given client IDs " +
					"(repeatable, at most 100: a user matches if they have an active session for any of them; an unknown client is 404)",
					schema: map[string]any{"type": "array", "items": map[string]any{"type": "string"}}, repeated: true},
				boolParam("filter[has-active-oauth2-session]", "Retrieve users which have (or don't have) at least one active (non-finished) OAuth 2.0 session, regardless of the client"),
				boolParam("filter[has-active-compat-session]", "Retrieve users which have (or don't have) at least one active (non-finished) compatibility session")),
			status: http.StatusOK, response: "PaginatedResponse_for_User", errors: []int{404}, handle: s.listUsers},
		{method: post, path: "/users", id: "createUser", summary: "Create a new user", tag: "user", body: "AddUserRequest", bodyRequired: true,
			status: http.StatusCreated, response: "SingleResponse_for_User", errors: []int{409}, handle: s.createUser},
		{method: get, path: "/users/{id}", id: "getUser", summary: "Get a user", tag: "user",
			status: http.StatusOK, response: "SingleResponse_for_User", errors: []int{404}, handle: s.getUser},
		{method: post, path: "/users/{id}/set-password", id: "setUserPassword", summary: "Set the password for a user", tag: "user",
			body: "SetUserPasswordRequest", bodyRequired: true, status: http.StatusNoContent, errors: []int{404}, handle: s.setPassword},
		{method: get, path: "/users/by-username/{username}", id: "getUserByUsername", summary: "Get a user by its username (localpart)", tag: "user",
			pathSchemas: usernamePath, status: http.StatusOK, response: "SingleResponse_for_User", errors: []int{404}, handle: s.getUserByUsername},
		{method: post, path: "/users/{id}/set-admin", id: "userSetAdmin", summary: "Set whether a user is an administrator", tag: "user",
			body: "UserSetAdminRequest", bodyRequired: true, status: http.StatusOK, response: "SingleResponse_for_User", errors: []int{404}, handle: s.setAdmin},
		{method: post, path: "/users/{id}/deactivate", id: "deactivateUser", summary: "Deactivate a user", tag: "user",
			body: "DeactivateUserRequest", status: http.StatusOK, response: "SingleResponse_for_User", errors: []int{404}, handle: s.deactivateUser},
		{method: post, path: "/users/{id}/reactivate", id: "reactivateUser", summary: "Reactivate a user", tag: "user",
			status: http.StatusOK, response: "SingleResponse_for_User", errors: []int{404}, handle: s.reactivateUser},
		{method: post, path: "/users/{id}/lock", id: "lockUser", summary: "Lock a user", tag: "user",
			status: http.StatusOK, response: "SingleResponse_for_User", errors: []int{404}, handle: s.lockUser},
		{method: post, path: "/users/{id}/unlock", id: "unlockUser", summary: "Unlock a user", tag: "user",
			status: http.StatusOK, response: "SingleResponse_for_User", errors: []int{404}, handle: s.unlockUser},

		// Email addresses (emails.go).
		{method: get, path: "/user-emails", id: "listUserEmails", summary: "List user emails", tag: "user-email",
			params: with(ulidParam("filter[user]", "Retrieve the addresses of the given user"),
				stringParam("filter[email]", "Retrieve the given address")),
			status: http.StatusOK, response: "PaginatedResponse_for_UserEmail", handle: s.listEmails},
		{method: post, path: "/user-emails", id: "addUserEmail", summary: "Add a user email (the administrator vouches for it)", tag: "user-email",
			body: "AddUserEmailRequest", bodyRequired: true, status: http.StatusCreated, response: "SingleResponse_for_UserEmail",
			errors: []int{404, 409}, handle: s.addEmail},
		{method: get, path: "/user-emails/{id}", id: "getUserEmail", summary: "Get a user email", tag: "user-email",
			status: http.StatusOK, response: "SingleResponse_for_UserEmail", errors: []int{404}, handle: s.getEmail},
		{method: del, path: "/user-emails/{id}", id: "deleteUserEmail", summary: "Delete a user email", tag: "user-email",
			status: http.StatusNoContent, errors: []int{404}, handle: s.deleteEmail},

		// Browser sessions (user_sessions.go).
		{method: get, path: "/user-sessions", id: "listUserSessions", summary: "List user (browser) sessions", tag: "user-session",
			params: with(append([]param{ulidParam("filter[user]", "Retrieve the sessions of the given user"),
				status("active or finished", "active", "finished")}, ranges...)...),
			status: http.StatusOK, response: "PaginatedResponse_for_UserSession", handle: s.listUserSessions},
		{method: get, path: "/user-sessions/{id}", id: "getUserSession", summary: "Get a user session", tag: "user-session",
			status: http.StatusOK, response: "SingleResponse_for_UserSession", errors: []int{404}, handle: s.getUserSession},
		{method: post, path: "/user-sessions/{id}/finish", id: "finishUserSession", summary: "Finish a user session", tag: "user-session",
			status: http.StatusOK, response: "SingleResponse_for_UserSession", errors: []int{404}, handle: s.finishUserSession},

		// OAuth 2.0 and compatibility sessions (sessions.go).
		{method: get, path: "/oauth2-sessions", id: "listOAuth2Sessions", summary: "List OAuth 2.0 sessions", tag: "oauth2-session",
			params: with(append([]param{ulidParam("filter[user]", "Retrieve the sessions of the given user"),
				stringParam("filter[client]", "Retrieve the sessions of the given client"), scopes, userSession,
				enumParam("filter[client-kind]", "static: sessions of clients from the configuration; dynamic: of registered ones", "static", "dynamic"),
				status("active or finished", "active", "finished")}, ranges...)...),
			status: http.StatusOK, response: "PaginatedResponse_for_OAuth2Session", handle: s.listOAuthSessions},
		{method: get, path: "/oauth2-sessions/{id}", id: "getOAuth2Session", summary: "Get an OAuth 2.0 session", tag: "oauth2-session",
			status: http.StatusOK, response: "SingleResponse_for_OAuth2Session", errors: []int{404}, handle: s.getOAuthSession},
		{method: post, path: "/oauth2-sessions/{id}/finish", id: "finishOAuth2Session", summary: "Finish an OAuth 2.0 session", tag: "oauth2-session",
			status: http.StatusOK, response: "SingleResponse_for_OAuth2Session", errors: []int{404}, handle: s.finishOAuthSession},
		{method: get, path: "/compat-sessions", id: "listCompatSessions", summary: "List compatibility sessions", tag: "compat-session",
			params: with(append([]param{ulidParam("filter[user]", "Retrieve the sessions of the given user"), userSession,
				status("active or finished", "active", "finished")}, ranges...)...),
			status: http.StatusOK, response: "PaginatedResponse_for_CompatSession", handle: s.listCompatSessions},
		{method: get, path: "/compat-sessions/{id}", id: "getCompatSession", summary: "Get a compatibility session", tag: "compat-session",
			status: http.StatusOK, response: "SingleResponse_for_CompatSession", errors: []int{404}, handle: s.getCompatSession},
		{method: post, path: "/compat-sessions/{id}/finish", id: "finishCompatSession", summary: "Finish a compatibility session", tag: "compat-session",
			status: http.StatusOK, response: "SingleResponse_for_CompatSession", errors: []int{404}, handle: s.finishCompatSession},

		// Personal sessions (personal.go).
		{method: get, path: "/personal-sessions", id: "listPersonalSessions", summary: "List personal sessions", tag: "personal-session",
			params: with(ulidParam("filter[owner_user]", "Retrieve the sessions created by the given user"),
				stringParam("filter[owner_client]", "Retrieve the sessions created by the given client"),
				ulidParam("filter[actor_user]", "Retrieve the sessions acting as the given user"), scopes,
				status("active or revoked", "active", "revoked"),
				timeParam("filter[expires_before]", "Retrieve the sessions whose token expires before the given time"),
				timeParam("filter[expires_after]", "Retrieve the sessions whose token expires after the given time"),
				boolParam("filter[expires]", "Retrieve the sessions whose token has (or has no) expiry")),
			status: http.StatusOK, response: "PaginatedResponse_for_PersonalSession", handle: s.listPersonalSessions},
		{method: post, path: "/personal-sessions", id: "createPersonalSession", summary: "Create a personal session and its personal access token", tag: "personal-session",
			body: "CreatePersonalSessionRequest", bodyRequired: true, status: http.StatusCreated, response: "SingleResponse_for_PersonalSession",
			errors: []int{404}, handle: s.createPersonalSession},
		{method: get, path: "/personal-sessions/{id}", id: "getPersonalSession", summary: "Get a personal session", tag: "personal-session",
			status: http.StatusOK, response: "SingleResponse_for_PersonalSession", errors: []int{404}, handle: s.getPersonalSession},
		{method: post, path: "/personal-sessions/{id}/revoke", id: "revokePersonalSession", summary: "Revoke a personal session", tag: "personal-session",
			status: http.StatusOK, response: "SingleResponse_for_PersonalSession", errors: []int{404, 409}, handle: s.revokePersonalSession},
		{method: post, path: "/personal-sessions/{id}/regenerate", id: "regeneratePersonalSession", summary: "Replace a personal session's token", tag: "personal-session",
			body: "RegeneratePersonalSessionRequest", status: http.StatusCreated, response: "SingleResponse_for_PersonalSession",
			errors: []int{404}, handle: s.regeneratePersonalSession},

		// OAuth 2.0 clients (clients.go).
		{method: get, path: "/oauth2-clients", id: "listOAuth2Clients", summary: "List OAuth 2.0 clients", tag: "oauth2-client",
			params: with(enumParam("filter[client-kind]", "static: from the configuration; dynamic: registered", "static", "dynamic"),
				stringParam("filter[client-name]", "Case-insensitive substring of the client's client_name"),
				stringParam("filter[client-uri]", "Case-insensitive substring of the client's client_uri"),
				stringParam("filter[grant-type]", "Retrieve the clients registered for the given grant type"),
				boolParam("filter[has-active-sessions]", "Retrieve only clients which have (true) or don't have (false) at least one active OAuth 2.0 session (a person's, or the client's own)")),
			status: http.StatusOK, response: "PaginatedResponse_for_OAuth2Client", anyCursor: true, handle: s.listClients},
		{method: get, path: "/oauth2-clients/{id}", id: "getOAuth2Client", summary: "Get an OAuth 2.0 client", tag: "oauth2-client",
			pathSchemas: clientIDPath, status: http.StatusOK, response: "SingleResponse_for_OAuth2Client", errors: []int{404}, handle: s.getClient},

		// Registration tokens (regtokens.go).
		{method: get, path: "/user-registration-tokens", id: "listUserRegistrationTokens", summary: "List registration tokens", tag: "user-registration-token",
			params: with(boolParam("filter[used]", "Retrieve tokens that have (or have not) been used at least once"),
				boolParam("filter[revoked]", "Retrieve tokens that are (or are not) revoked"),
				boolParam("filter[expired]", "Retrieve tokens that are (or are not) expired"),
				boolParam("filter[valid]", "Retrieve tokens that are (or are not) valid: not revoked, not expired, not used up")),
			status: http.StatusOK, response: "PaginatedResponse_for_UserRegistrationToken", handle: s.listRegTokens},
		{method: post, path: "/user-registration-tokens", id: "addUserRegistrationToken", summary: "Create a registration token", tag: "user-registration-token",
			body: "AddUserRegistrationTokenRequest", status: http.StatusCreated, response: "SingleResponse_for_UserRegistrationToken",
			errors: []int{409}, handle: s.addRegToken},
		{method: get, path: "/user-registration-tokens/{id}", id: "getUserRegistrationToken", summary: "Get a registration token", tag: "user-registration-token",
			status: http.StatusOK, response: "SingleResponse_for_UserRegistrationToken", errors: []int{404}, handle: s.getRegToken},
		{method: put, path: "/user-registration-tokens/{id}", id: "updateUserRegistrationToken", summary: "Update a registration token", tag: "user-registration-token",
			body: "EditUserRegistrationTokenRequest", bodyRequired: true, status: http.StatusOK, response: "SingleResponse_for_UserRegistrationToken",
			errors: []int{404}, handle: s.updateRegToken},
		{method: post, path: "/user-registration-tokens/{id}/revoke", id: "revokeUserRegistrationToken", summary: "Revoke a registration token", tag: "user-registration-token",
			status: http.StatusOK, response: "SingleResponse_for_UserRegistrationToken", errors: []int{404}, handle: s.revokeRegToken},
		{method: post, path: "/user-registration-tokens/{id}/unrevoke", id: "unrevokeUserRegistrationToken", summary: "Unrevoke a registration token", tag: "user-registration-token",
			status: http.StatusOK, response: "SingleResponse_for_UserRegistrationToken", errors: []int{404}, handle: s.unrevokeRegToken},

		// Upstream identity providers and links (upstream.go).
		{method: get, path: "/upstream-oauth-links", id: "listUpstreamOAuthLinks", summary: "List upstream OAuth 2.0 links", tag: "upstream-oauth-link",
			params: with(ulidParam("filter[user]", "Retrieve the links of the given user"),
				stringParam("filter[provider]", "Retrieve the links to the given provider"),
				stringParam("filter[subject]", "Retrieve the links with the given subject"),
				stringParam("filter[human-account-name]", "Retrieve the links whose human account name (the address recorded with the link) holds the given text, case-insensitively")),
			status: http.StatusOK, response: "PaginatedResponse_for_UpstreamOAuthLink", errors: []int{404}, handle: s.listLinks},
		{method: post, path: "/upstream-oauth-links", id: "addUpstreamOAuthLink", summary: "Add an upstream OAuth 2.0 link (201), or find the user's own (200)", tag: "upstream-oauth-link",
			body: "AddUpstreamOauthLinkRequest", bodyRequired: true, status: http.StatusCreated, alsoOK: http.StatusOK,
			response: "SingleResponse_for_UpstreamOAuthLink", errors: []int{404, 409}, handle: s.addLink},
		{method: get, path: "/upstream-oauth-links/{id}", id: "getUpstreamOAuthLink", summary: "Get an upstream OAuth 2.0 link", tag: "upstream-oauth-link",
			status: http.StatusOK, response: "SingleResponse_for_UpstreamOAuthLink", errors: []int{404}, handle: s.getLink},
		{method: del, path: "/upstream-oauth-links/{id}", id: "deleteUpstreamOAuthLink", summary: "Delete an upstream OAuth 2.0 link (409 when it is the user's last way to sign in)", tag: "upstream-oauth-link",
			status: http.StatusNoContent, errors: []int{404, 409}, handle: s.deleteLink},
		{method: get, path: "/upstream-oauth-providers", id: "listUpstreamOAuthProviders", summary: "List upstream OAuth 2.0 providers", tag: "upstream-oauth-provider",
			params: with(boolParam("filter[enabled]", "Retrieve providers that are (or are not) enabled; every configured provider is")),
			status: http.StatusOK, response: "PaginatedResponse_for_UpstreamOAuthProvider", anyCursor: true, handle: s.listProviders},
		{method: get, path: "/upstream-oauth-providers/{id}", id: "getUpstreamOAuthProvider", summary: "Get an upstream OAuth 2.0 provider", tag: "upstream-oauth-provider",
			pathSchemas: providerPath, status: http.StatusOK, response: "SingleResponse_for_UpstreamOAuthProvider", errors: []int{404}, handle: s.getProvider},

		// The audit trail (audit.go), beyond MAS.
		{method: get, path: "/audit-events", id: "listAuditEvents", summary: "List audit events (sign-ins, sessions, tokens, administrators' actions), oldest first", tag: "audit",
			params: with(ulidParam("filter[user]", "Retrieve the events concerning the given user")),
			status: http.StatusOK, response: "PaginatedResponse_for_AuditEvent", handle: s.listAudit},
	}
}

// hasBody reports whether the route answers with a body on success.
func (rt *route) hasBody() bool { return rt.response != "" }

// documentedErrors are the error statuses a route documents.
func (rt *route) documentedErrors() []int {
	out := slices.Clone(rt.errors)
	if !rt.public {
		out = append(out, http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

package admin

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// The OpenAPI 3.1 document, built once from the route table: every route is
// an operation with its query and path parameters, its request body and its
// answers; the schemas are schemas.json's, and each resource's single and
// paginated responses are made from its attributes' schema. The tests
// validate the document with an OpenAPI validator, check that it and the
// router agree, and validate every answer they get against it.

//go:embed schemas.json
var schemasJSON []byte

// resourceSchemas are the resources whose responses are made: the name of
// their attributes' schema.
var resourceSchemas = []string{"User", "UserEmail", "UserSession", "OAuth2Session", "CompatSession", "PersonalSession",
	"OAuth2Client", "UserRegistrationToken", "AuditEvent", "UpstreamOAuthLink", "UpstreamOAuthProvider"}

// pathParam finds the {name} parameters of a path.
var pathParam = regexp.MustCompile(`\{([a-z_]+)\}`)

// apiPrefix is where the API lives under the public URL.
const apiPrefix = "/api/admin/v1"

// openAPI builds the document.
func (s *Service) openAPI() ([]byte, error) {
	var schemas map[string]any
	if err := json.Unmarshal(schemasJSON, &schemas); err != nil {
		return nil, fmt.Errorf("schemas.json: %w", err)
	}
	for _, name := range resourceSchemas {
		if _, ok := schemas[name]; !ok {
			return nil, fmt.Errorf("schemas.json has no %s", name)
		}
		schemas["SingleResource_for_"+name] = map[string]any{
			"type": "object", "additionalProperties": false,
			"required": []string{"type", "id", "attributes", "links"},
			"properties": map[string]any{
				"type":       map[string]any{"type": "string", "description": "The type of the resource"},
				"id":         map[string]any{"type": "string", "description": "The ID of the resource"},
				"attributes": ref(name),
				"links":      ref("SelfLinks"),
				"meta":       ref("SingleResourceMeta"),
			},
		}
		schemas["SingleResponse_for_"+name] = map[string]any{
			"type": "object", "additionalProperties": false, "required": []string{"data", "links"},
			"properties": map[string]any{"data": ref("SingleResource_for_" + name), "links": ref("SelfLinks")},
		}
		schemas["PaginatedResponse_for_"+name] = map[string]any{
			"type": "object", "additionalProperties": false, "required": []string{"links"},
			"properties": map[string]any{
				"meta":  ref("PaginationMeta"),
				"data":  map[string]any{"type": "array", "items": ref("SingleResource_for_" + name)},
				"links": ref("PaginationLinks"),
			},
		}
	}
	paths := map[string]map[string]any{}
	for _, rt := range s.routes {
		full := apiPrefix + rt.path
		if paths[full] == nil {
			paths[full] = map[string]any{}
		}
		paths[full][strings.ToLower(rt.method)] = rt.operation()
	}
	server := strings.TrimSuffix(s.cfg.PublicURL, "/")
	doc := map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":   "Gatehouse admin API",
			"version": "1",
			"description": "Administration of a Gatehouse deployment, compatible with the admin API v1 of matrix-authentication-service. " +
				"Every operation but this document needs `Authorization: Bearer <token>`: an OAuth 2.0 access token (client_credentials " +
				"for a client the configuration lists in oauth.admin_clients) or an administrator's personal access token, " +
				"with the scope urn:gatehouse:admin or urn:mas:admin. A token that is not valid is answered 401, one without " +
				"administration 403. Errors are {\"errors\": [{\"title\": ...}]}. Lists are ordered by id (ULIDs: by time of " +
				"creation) and paged with page[first], page[last], page[after] and page[before].",
		},
		"servers": []any{map[string]any{"url": server}},
		"security": []any{
			map[string]any{"bearer": []string{"urn:gatehouse:admin"}},
			map[string]any{"oauth2": []string{"urn:gatehouse:admin"}},
		},
		"paths": paths,
		"components": map[string]any{
			"schemas": schemas,
			"securitySchemes": map[string]any{
				"bearer": map[string]any{"type": "http", "scheme": "bearer",
					"description": "An OAuth 2.0 access token or a personal access token with urn:gatehouse:admin or urn:mas:admin"},
				"oauth2": map[string]any{"type": "oauth2", "flows": map[string]any{
					"clientCredentials": map[string]any{"tokenUrl": s.cfg.PublicURL + "oauth2/token", "scopes": map[string]string{
						"urn:gatehouse:admin": "Administer this Gatehouse (the admin API)",
						"urn:mas:admin":       "The same, under matrix-authentication-service's name",
					}},
				}},
			},
		},
	}
	return json.MarshalIndent(doc, "", "  ")
}

// operation is the route as an OpenAPI operation.
func (rt *route) operation() map[string]any {
	op := map[string]any{"operationId": rt.id, "summary": rt.summary, "tags": []string{rt.tag}}
	var params []any
	for _, m := range pathParam.FindAllStringSubmatch(rt.path, -1) {
		schema, ok := rt.pathSchemas[m[1]]
		if !ok {
			schema = ref("ULID")
		}
		params = append(params, map[string]any{"in": "path", "name": m[1], "required": true, "schema": schema})
	}
	for _, p := range rt.params {
		params = append(params, map[string]any{"in": "query", "name": p.name, "description": p.desc, "schema": p.schema,
			"style": "form", "explode": true})
	}
	if len(params) > 0 {
		op["parameters"] = params
	}
	if rt.body != "" {
		op["requestBody"] = map[string]any{"required": rt.bodyRequired,
			"content": map[string]any{"application/json": map[string]any{"schema": ref(rt.body)}}}
	}
	success := map[string]any{"description": http.StatusText(rt.status)}
	if rt.hasBody() {
		success["content"] = map[string]any{"application/json": map[string]any{"schema": ref(rt.response)}}
	}
	responses := map[string]any{strconv.Itoa(rt.status): success}
	if rt.alsoOK != 0 {
		also := map[string]any{"description": http.StatusText(rt.alsoOK)}
		if rt.hasBody() {
			also["content"] = success["content"]
		}
		responses[strconv.Itoa(rt.alsoOK)] = also
	}
	errorBody := map[string]any{"application/json": map[string]any{"schema": ref("ErrorResponse")}}
	for _, code := range rt.documentedErrors() {
		responses[strconv.Itoa(code)] = map[string]any{"description": http.StatusText(code), "content": errorBody}
	}
	responses["default"] = map[string]any{"description": "An error (the service unavailable, an internal error)", "content": errorBody}
	op["responses"] = responses
	if rt.public {
		op["security"] = []any{}
	}
	return op
}

// handleOpenAPI serves the document.
func (s *Service) handleOpenAPI(context.Context, *request) (reply, error) {
	return reply{status: http.StatusOK, body: json.RawMessage(s.document)}, nil
}

package admin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/grpcx"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
)

// How a request travels: the route table's rows become one net/http mux
// (Handler); each route's request is authenticated (authenticate: the
// bearer token must be an administrator's, asked of the token service with
// the token itself as the credential), its query checked against the
// parameters the route declares (query.go), then its handler runs with a
// context whose every gRPC call forwards the token, and returns a body or an
// error that writeError words in MAS's shape ({"errors":[{"title":…}]}).

// request is what a handler gets.
type request struct {
	http  *http.Request
	route *route
	query *query
}

// path returns a path parameter.
func (r *request) path(name string) string { return r.http.PathValue(name) }

// decode reads the JSON body into v, refusing unknown fields and bodies
// that are not one JSON object.
func (r *request) decode(v any) error {
	if ct := r.http.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return badRequest("The request body must be application/json.")
		}
	}
	dec := json.NewDecoder(r.http.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return badRequest("The request needs a JSON body.")
		}
		return badRequest("Invalid JSON body: " + err.Error())
	}
	if dec.More() {
		return badRequest("The request body holds more than one JSON value.")
	}
	return nil
}

// decodeOptional reads a JSON body when there is one (an empty body is
// allowed, as MAS allows for lock, deactivate and regenerate).
func (r *request) decodeOptional(v any) error {
	if r.http.ContentLength == 0 && r.http.Header.Get("Transfer-Encoding") == "" {
		return nil
	}
	body, err := io.ReadAll(r.http.Body)
	if err != nil {
		return badRequest("The request body could not be read.")
	}
	if strings.TrimSpace(string(body)) == "" {
		return nil
	}
	r.http.Body = io.NopCloser(strings.NewReader(string(body)))
	return r.decode(v)
}

// reply is a handler's answer: a status and a JSON body (nil: none).
type reply struct {
	status int
	body   any
}

// handlerFunc answers one route.
type handlerFunc func(ctx context.Context, r *request) (reply, error)

// apiError is an answer in MAS's error shape with a status of its own,
// where the kind of a service's error does not say it (a session already
// finished is 400 in MAS, a personal session already revoked 409).
type apiError struct {
	status int
	title  string
}

func (e *apiError) Error() string { return e.title }

func badRequest(title string) error { return &apiError{status: http.StatusBadRequest, title: title} }

// Handler serves every route of the table under the API's base path.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	for i := range s.routes {
		rt := &s.routes[i]
		mux.HandleFunc(rt.method+" "+s.base+rt.path, func(w http.ResponseWriter, r *http.Request) { s.serve(w, r, rt) })
	}
	mux.HandleFunc(s.base+"/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{status: http.StatusNotFound, title: "Not found"})
	})
	return mux
}

// serve runs one route: authentication, the query's check, the handler.
func (s *Service) serve(w http.ResponseWriter, r *http.Request, rt *route) {
	w.Header().Set("Cache-Control", "no-store")
	ctx := r.Context()
	if !rt.public {
		var err error
		if ctx, err = s.authenticate(ctx, r); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	q, err := parseQuery(r.URL.RawQuery, rt.params)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	q.anyCursor = rt.anyCursor
	res, err := rt.handle(ctx, &request{http: r, route: rt, query: q})
	if err == nil {
		err = q.unread()
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if res.body == nil {
		w.WriteHeader(res.status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(res.status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(res.body)
}

// authenticate checks that the request comes with an administrator's bearer
// token (asking the token service, with that token as the credential) and
// returns a context whose calls forward it.
func (s *Service) authenticate(ctx context.Context, r *http.Request) (context.Context, error) {
	h := r.Header.Values("Authorization")
	if len(h) == 0 {
		return nil, errs.Unauthenticated("Missing authorization header")
	}
	scheme, token, ok := strings.Cut(h[0], " ")
	if len(h) > 1 || !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || strings.ContainsAny(token, " \t") {
		return nil, errs.Unauthenticated("Invalid authorization header")
	}
	// Only what looks like an access token (mat_) or a personal access
	// token (mpt_) is forwarded: never the homeserver's secret or a
	// credential derived from the internal secret, which are not an
	// administrator's token whatever they may open elsewhere.
	if len(token) != 41 || (!strings.HasPrefix(token, "mat_") && !strings.HasPrefix(token, "mpt_")) {
		return nil, errs.Unauthenticated("Invalid access token")
	}
	ctx = grpcx.WithBearer(ctx, token)
	if _, err := s.token.AuthenticateAdminToken(ctx, &tokenv1.AuthenticateAdminTokenRequest{Token: token}); err != nil {
		return nil, err
	}
	return ctx, nil
}

// fail writes an error in MAS's shape, logging the server's own faults.
func (s *Service) fail(w http.ResponseWriter, r *http.Request, err error) {
	if e, ok := errors.AsType[*apiError](err); ok {
		writeError(w, e)
		return
	}
	kind := errs.KindOf(err)
	e := &apiError{status: statusOf(kind), title: errs.PublicMessage(err)}
	switch kind {
	case errs.KindUnauthenticated:
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		if e.title == "" || !strings.Contains(e.title, "authorization header") {
			e.title = "Invalid access token"
		}
	case errs.KindPermissionDenied:
		w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope", scope="urn:gatehouse:admin urn:mas:admin"`)
		e.title = "The access token does not grant administration (it needs urn:gatehouse:admin or urn:mas:admin, and an administrator's user)"
	}
	if kind.ServerFault() {
		s.logger.ErrorContext(r.Context(), "admin API", "method", r.Method, "path", r.URL.Path, "err", err)
		if e.title == "" || kind == errs.KindInternal {
			e.title = "Internal error"
		}
		if kind != errs.KindInternal {
			w.Header().Set("Retry-After", strconv.Itoa(max(1, int(errs.RetryAfterOf(err).Seconds()))))
		}
	}
	if e.title == "" {
		e.title = http.StatusText(e.status)
	}
	writeError(w, e)
}

// statusOf is the HTTP status of an error kind, as MAS answers.
func statusOf(k errs.Kind) int {
	switch k {
	case errs.KindInvalid, errs.KindFailedPrecondition:
		return http.StatusBadRequest
	case errs.KindAlreadyExists, errs.KindConflict:
		return http.StatusConflict
	}
	return k.HTTPStatus()
}

// writeError writes {"errors":[{"title":…}]}.
func writeError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"title": e.title}}})
}

package admin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
)

// newTestService is the API with no services behind it: enough for the
// document, the router and authentication's first refusals.
func newTestService(t *testing.T) *Service {
	t.Helper()
	s, err := New(Config{PublicURL: "https://auth.example.org/", Version: "1.2.3"}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The document is OpenAPI 3.1 that a validator library accepts.
func TestDocumentIsValidOpenAPI31(t *testing.T) {
	s := newTestService(t)
	doc, err := libopenapi.NewDocument(s.document)
	if err != nil {
		t.Fatal(err)
	}
	if v := doc.GetSpecInfo().VersionNumeric; v != 3.1 {
		t.Fatalf("OpenAPI version %v", v)
	}
	if _, err := doc.BuildV3Model(); err != nil {
		t.Fatalf("model: %v", err)
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatalf("validator: %v", errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		for _, e := range verrs {
			t.Errorf("%s: %s", e.Message, e.Reason)
		}
	}
}

// operationKey names an operation and its parameters.
type operationKey struct {
	method, path string
	params       string // sorted "in:name" list
}

// The router and the document agree: every route of the router is an
// operation of the document with the same parameters, and the other way
// round; the router answers every documented operation (here: asking for a
// token) and nothing else.
func TestRouterAndDocumentAgree(t *testing.T) {
	s := newTestService(t)
	doc, err := libopenapi.NewDocument(s.document)
	if err != nil {
		t.Fatal(err)
	}
	model, err := doc.BuildV3Model()
	if err != nil {
		t.Fatal(err)
	}
	var documented []operationKey
	for path, item := range model.Model.Paths.PathItems.FromOldest() {
		for method, op := range item.GetOperations().FromOldest() {
			var ps []string
			for _, p := range op.Parameters {
				ps = append(ps, p.In+":"+p.Name)
			}
			sort.Strings(ps)
			documented = append(documented, operationKey{strings.ToUpper(method), path, strings.Join(ps, ",")})
		}
	}
	var routed []operationKey
	for _, rt := range s.routes {
		var ps []string
		for _, m := range pathParam.FindAllStringSubmatch(rt.path, -1) {
			ps = append(ps, "path:"+m[1])
		}
		for _, p := range rt.params {
			ps = append(ps, "query:"+p.name)
		}
		sort.Strings(ps)
		routed = append(routed, operationKey{rt.method, apiPrefix + rt.path, strings.Join(ps, ",")})
	}
	for _, k := range routed {
		if !slices.Contains(documented, k) {
			t.Errorf("route %v is not in the document as such", k)
		}
	}
	for _, k := range documented {
		if !slices.Contains(routed, k) {
			t.Errorf("operation %v has no route", k)
		}
	}
	if len(routed) < 40 {
		t.Fatalf("only %d routes", len(routed))
	}

	// The router serves every documented operation, and refuses the rest.
	h := s.Handler()
	fill := regexp.MustCompile(`\{[a-z_]+\}`)
	for _, k := range documented {
		path := fill.ReplaceAllString(k.path, "01ARZ3NDEKTSV4RRFFQ69G5FAV")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(k.method, path, nil))
		want := http.StatusUnauthorized
		if k.path == apiPrefix+"/openapi.json" {
			want = http.StatusOK
		}
		if rec.Code != want {
			t.Errorf("%s %s: %d, want %d", k.method, path, rec.Code, want)
		}
		var body map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Errorf("%s %s: body %q", k.method, path, rec.Body)
		}
	}
	for _, bad := range [][2]string{{"DELETE", "/users"}, {"GET", "/nope"}, {"PATCH", "/users/01ARZ3NDEKTSV4RRFFQ69G5FAV"}, {"GET", "/users/x/y/z"}} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(bad[0], apiPrefix+bad[1], nil))
		if rec.Code != http.StatusNotFound && rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: %d, want 404 or 405", bad[0], bad[1], rec.Code)
		}
	}
}

// Authentication's refusals come in MAS's error shape with an RFC 6750
// challenge, before anything else is looked at.
func TestMissingOrMalformedToken(t *testing.T) {
	h := newTestService(t).Handler()
	for _, auth := range []string{"", "Basic YWxhZGRpbjpvcGVuc2VzYW1l", "Bearer", "Bearer a b", "Bearer ", "Bearer ghs.admin.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"Bearer mct_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa_000000", "Bearer mat_short"} {
		req := httptest.NewRequest("GET", apiPrefix+"/users?nonsense=1", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var body struct {
			Errors []struct{ Title string } `json:"errors"`
		}
		if rec.Code != http.StatusUnauthorized || json.Unmarshal(rec.Body.Bytes(), &body) != nil || len(body.Errors) != 1 || body.Errors[0].Title == "" {
			t.Errorf("%q: %d %s", auth, rec.Code, rec.Body)
		}
		if rec.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("%q: no challenge", auth)
		}
	}
}

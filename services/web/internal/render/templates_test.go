package render

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"

	"gatehouse.dev/services/web/internal/i18n"
)

// files is a small site: a layout, two pages, a non-template and a static file.
var files = fstest.MapFS{
	"templates/layout.html": {Data: []byte(`{{define "layout"}}<html lang="{{.Lang}}"><link href="{{asset "site.css"}}">{{template "content" .}}</html>{{end}}`)},
	"templates/hello.html":  {Data: []byte(`{{define "content"}}{{t "login.title"}}: {{.Title}}{{end}}`)},
	"templates/bye.html":    {Data: []byte(`{{define "content"}}{{t "nowhere"}}{{end}}`)},
	"templates/notes.txt":   {Data: []byte("not a page")},
	"static/site.css":       {Data: []byte("body{}")},
}

func load(t *testing.T) *Templates {
	t.Helper()
	texts, err := i18n.NewSet(
		i18n.Catalog{Lang: "en", Groups: []i18n.Texts{{i18n.LoginTitle: "Sign in"}}},
		i18n.Catalog{Lang: "fr", Groups: []i18n.Texts{{i18n.LoginTitle: "Se connecter"}}},
	)
	if err != nil {
		t.Fatal(err)
	}
	tm, err := Load(files, "/auth/", texts)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

// Pages are found by name, in every language, with their texts and asset links.
func TestPagesByName(t *testing.T) {
	tm := load(t)
	for lang, want := range map[string]string{"en": "Sign in: Hi", "fr": "Se connecter: Hi"} {
		var b bytes.Buffer
		if err := tm.Execute(&b, lang, "hello", &View{Lang: lang, Title: "Hi"}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), want) || !strings.Contains(b.String(), `href="/auth/static/site.css?v=`) {
			t.Errorf("%s: %s", lang, &b)
		}
	}
	var b bytes.Buffer
	if err := tm.Execute(&b, "en", "bye", &View{}); err != nil || !strings.Contains(b.String(), "nowhere") {
		t.Errorf("bye: %v %s", err, &b)
	}
	for _, page := range []string{"layout", "notes", "missing"} {
		if err := tm.Execute(&b, "en", page, &View{}); err == nil {
			t.Errorf("%s rendered as a page", page)
		}
	}
	if err := tm.Execute(&b, "de", "hello", &View{}); err == nil {
		t.Error("a page rendered in a language the set lacks")
	}
}

func TestLoadRefusesABadTemplate(t *testing.T) {
	bad := fstest.MapFS{"templates/layout.html": files["templates/layout.html"], "static/site.css": files["static/site.css"], "templates/broken.html": {Data: []byte(`{{define "content"}}{{end`)}}
	texts, _ := i18n.NewSet(i18n.Catalog{Lang: "en"})
	if _, err := Load(bad, "/", texts); err == nil || !strings.Contains(err.Error(), "broken") {
		t.Errorf("a broken template: %v", err)
	}
}

// Static files are served under their names only, cacheable; anything else
// goes to notFound.
func TestStatic(t *testing.T) {
	h := load(t).Static(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	for _, tt := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/static/site.css", http.StatusOK},
		{http.MethodHead, "/static/site.css", http.StatusOK},
		{http.MethodPost, "/static/site.css", http.StatusTeapot},
		{http.MethodGet, "/static/other.css", http.StatusTeapot},
		{http.MethodGet, "/static/", http.StatusTeapot},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
		if rec.Code != tt.want {
			t.Errorf("%s %s: %d, want %d", tt.method, tt.path, rec.Code, tt.want)
		}
		if tt.want == http.StatusOK && rec.Header().Get("Cache-Control") != "public, max-age=86400" {
			t.Errorf("%s %s: Cache-Control %q", tt.method, tt.path, rec.Header().Get("Cache-Control"))
		}
	}
}

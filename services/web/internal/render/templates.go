// Package render makes the pages' HTML. Pages are found by name: every file
// of templates/ but layout.html is a page, named by its file name without
// .html, and is parsed with layout.html (the frame of every page, which also
// holds the shared partials "field" and "csrf"). Each page is parsed once per
// language of the service's i18n.Set, with two functions: t (a text of that
// language, by id) and asset (the link of a static file, with a version tag
// of its content so that it may be cached).
package render

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"strings"

	"gatehouse.dev/services/web/internal/i18n"
)

// layout is the template every page is parsed with.
const layout = "layout.html"

// Templates are the parsed pages of every language, and the static files'
// version tags. They are read-only once loaded.
type Templates struct {
	files fs.FS
	// pages holds each page by language, then by name.
	pages map[string]map[string]*template.Template
	// version maps a static file's name to a short hash of its content.
	version map[string]string
}

// Load reads the pages of files/templates and the static files of
// files/static; base is the path of the public URL ("/" or "/auth/"), which
// asset links start with.
func Load(files fs.FS, base string, texts *i18n.Set) (*Templates, error) {
	t := &Templates{files: files, pages: map[string]map[string]*template.Template{}, version: map[string]string{}}
	if err := t.versionStatic(); err != nil {
		return nil, fmt.Errorf("render: static files: %w", err)
	}
	names, err := pageNames(files)
	if err != nil {
		return nil, fmt.Errorf("render: templates: %w", err)
	}
	for _, lang := range texts.Languages() {
		l := texts.Localizer(lang)
		funcs := template.FuncMap{
			"t": func(id string, args ...any) string { return l.T(i18n.ID(id), args...) },
			"asset": func(name string) (string, error) {
				v, ok := t.version[name]
				if !ok {
					return "", fmt.Errorf("no static file %q", name)
				}
				return base + "static/" + name + "?v=" + v, nil
			},
		}
		t.pages[lang] = map[string]*template.Template{}
		for _, name := range names {
			page, err := template.New(name).Funcs(funcs).ParseFS(files, "templates/"+layout, "templates/"+name+".html")
			if err != nil {
				return nil, fmt.Errorf("render: template %s: %w", name, err)
			}
			t.pages[lang][name] = page
		}
	}
	return t, nil
}

// pageNames lists the pages of files/templates: every .html file but the layout.
func pageNames(files fs.FS) ([]string, error) {
	entries, err := fs.ReadDir(files, "templates")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ".html"); ok && !e.IsDir() && e.Name() != layout {
			names = append(names, name)
		}
	}
	return names, nil
}

// Execute writes a page in a language with the data v. On failure part of
// the page may have been written: render into a buffer.
func (t *Templates) Execute(w io.Writer, lang, page string, v *View) error {
	tmpl, ok := t.pages[lang][page]
	if !ok {
		return fmt.Errorf("render: no page %q in %q", page, lang)
	}
	if err := tmpl.ExecuteTemplate(w, "layout", v); err != nil {
		return fmt.Errorf("render: page %s: %w", page, err)
	}
	return nil
}

// versionStatic tags each static file with a short hash of its content.
func (t *Templates) versionStatic() error {
	return fs.WalkDir(t.files, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(t.files, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		t.version[strings.TrimPrefix(p, "static/")] = hex.EncodeToString(sum[:6])
		return nil
	})
}

// Static serves the static files under /static/. Their links carry a hash of
// their content, so they may be cached for a day. Any other name, or a method
// other than GET and HEAD, goes to notFound.
func (t *Templates) Static(notFound http.Handler) http.Handler {
	files := http.FileServerFS(t.files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/static/")
		if _, ok := t.version[name]; !ok || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
			notFound.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=86400")
		files.ServeHTTP(w, r)
	})
}

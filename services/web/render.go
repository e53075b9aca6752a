package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"

	"golang.org/x/text/language"

	"gatehouse.dev/platform/errs"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// pageNames are the templates that are whole pages; each is parsed with the
// layout (layout.html, which also holds the shared partials).
var pageNames = []string{"login", "register", "verify", "consent", "link", "link_done", "home", "error"}

// pages holds the parsed templates of every language, the matcher that picks
// one of them for a request, and the static assets' version tags.
type pages struct {
	byLang  map[string]map[string]*template.Template
	version map[string]string // static file name -> short content hash
	// langs are the catalog languages, the default first; matcher matches
	// Accept-Language against them and answers an index into langs.
	langs   []string
	matcher language.Matcher
}

// loadPages parses the templates; base is the path of the public URL.
func loadPages(base string) (*pages, error) {
	p := &pages{byLang: map[string]map[string]*template.Template{}, version: map[string]string{}}
	err := fs.WalkDir(staticFS, "static", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := staticFS.ReadFile(path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		p.version[strings.TrimPrefix(path, "static/")] = hex.EncodeToString(sum[:6])
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("web: static files: %w", err)
	}
	p.langs = []string{defaultLanguage}
	for _, lang := range languages() {
		if lang != defaultLanguage {
			p.langs = append(p.langs, lang)
		}
	}
	tags := make([]language.Tag, len(p.langs))
	for i, lang := range p.langs {
		if tags[i], err = language.Parse(lang); err != nil {
			return nil, fmt.Errorf("web: catalog language %q: %w", lang, err)
		}
	}
	p.matcher = language.NewMatcher(tags)
	for _, lang := range p.langs {
		l := newLocalizer(lang)
		funcs := template.FuncMap{
			"t": func(id string, args ...any) string { return l.T(msgID(id), args...) },
			"asset": func(name string) (string, error) {
				v, ok := p.version[name]
				if !ok {
					return "", fmt.Errorf("no static file %q", name)
				}
				return base + "static/" + name + "?v=" + v, nil
			},
		}
		p.byLang[lang] = map[string]*template.Template{}
		for _, name := range pageNames {
			t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
			if err != nil {
				return nil, fmt.Errorf("web: template %s: %w", name, err)
			}
			p.byLang[lang][name] = t
		}
	}
	return p, nil
}

// view is what every page template gets.
type view struct {
	Lang        string
	Title       string
	ServiceName string
	// Base is the path of the public URL ("/" or "/auth/").
	Base string
	// ServerName is the Matrix server the accounts belong to.
	ServerName string
	// TermsURI and PolicyURI are the deployment's terms and privacy policy, linked in the footer.
	TermsURI, PolicyURI string
	// LogoURI is the deployment's logo, shown next to its name (https only).
	LogoURI string
	// User is the signed-in user, if the page shows them.
	User *accountsv1.User
	// UserID is the user's Matrix ID, @alice:example.org.
	UserID string
	// CSRF is the token of the page's main form.
	CSRF string
	// Notice is a message shown at the top of the main content (role=status).
	Notice string
	// Error is a message about the whole form (role=alert).
	Error string
	// Page holds the page's own data.
	Page any
}

// field is one labelled input, rendered by the "field" partial.
type field struct {
	ID, Name, Type, Label, Hint, Autocomplete, Value, Error string
	InputMode, Autocapitalize                               string
	MaxLength                                               int
	Required, Autofocus                                     bool
}

// Describedby is the ids of the hint and error of f, for aria-describedby.
func (f field) Describedby() string {
	var ids []string
	if f.Hint != "" {
		ids = append(ids, f.ID+"-hint")
	}
	if f.Error != "" {
		ids = append(ids, f.ID+"-error")
	}
	return strings.Join(ids, " ")
}

// focusFirst sets autofocus on the first field with an error, or else on the
// first empty one, so the cursor lands where the person has to act.
func focusFirst(fields ...*field) {
	for _, f := range fields {
		if f.Error != "" {
			f.Autofocus = true
			return
		}
	}
	for _, f := range fields {
		if f.Value == "" {
			f.Autofocus = true
			return
		}
	}
}

// render writes a page with the given status.
func (s *Service) render(w http.ResponseWriter, r *http.Request, status int, name string, v *view) {
	l := s.localizer(r)
	// The page's language depends on Accept-Language: caches must know.
	w.Header().Add("Vary", "Accept-Language")
	v.Lang, v.ServiceName, v.Base, v.ServerName = l.lang, s.cfg.ServiceName, s.base.Path, s.serverName()
	v.TermsURI, v.PolicyURI, v.LogoURI = s.cfg.TermsURI, s.cfg.PolicyURI, s.cfg.LogoURI
	if v.User != nil && v.UserID == "" {
		v.UserID = s.matrixID(v.User.GetUsername())
	}
	var buf bytes.Buffer
	if err := s.pages.byLang[l.lang][name].ExecuteTemplate(&buf, "layout", v); err != nil {
		s.logger.ErrorContext(r.Context(), "render page", "page", name, "err", err)
		http.Error(w, l.T(msgErrInternal), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// localizer picks the language of a request from its Accept-Language header.
func (s *Service) localizer(r *http.Request) localizer {
	if s.pages == nil {
		return newLocalizer(defaultLanguage)
	}
	return newLocalizer(s.pages.negotiate(r.Header.Get("Accept-Language")))
}

// negotiate returns the catalog language that best suits an Accept-Language
// header, q-values honoured ("fr-CA" finds "fr"); a missing or malformed
// header, or one naming no language the catalog has, gets the default.
func (p *pages) negotiate(acceptLanguage string) string {
	tags, _, err := language.ParseAcceptLanguage(acceptLanguage)
	if err != nil || len(tags) == 0 {
		return defaultLanguage
	}
	_, i, confidence := p.matcher.Match(tags...)
	if confidence == language.No {
		return defaultLanguage
	}
	return p.langs[i]
}

// errorView is the data of the error page.
type errorView struct {
	Message string
	// Back says to go back to the application (the page was part of a sign-in).
	Back bool
}

// errorPage shows an error in the layout.
func (s *Service) errorPage(w http.ResponseWriter, r *http.Request, status int, title, message msgID, args ...any) {
	l := s.localizer(r)
	s.render(w, r, status, "error", &view{Title: l.T(title), Page: errorView{Message: l.T(message, args...)}})
}

// failure shows the error page for an unexpected failure of a call to
// another service: unavailable (503) or internal (500), logged with its cause.
func (s *Service) failure(w http.ResponseWriter, r *http.Request, what string, err error) {
	kind := errs.KindOf(err)
	if kind == errs.KindUnavailable || kind == errs.KindConflict || kind == errs.KindRateLimited {
		s.logger.WarnContext(r.Context(), what, "err", err)
		s.errorPage(w, r, http.StatusServiceUnavailable, msgErrTitle, msgErrUnavailable)
		return
	}
	s.logger.ErrorContext(r.Context(), what, "err", err)
	s.errorPage(w, r, http.StatusInternalServerError, msgErrTitle, msgErrInternal)
}

func (s *Service) handleNotFound(w http.ResponseWriter, r *http.Request) {
	s.errorPage(w, r, http.StatusNotFound, msgErrNotFoundTitle, msgErrNotFound)
}

// staticHandler serves the embedded stylesheet and script. Their links carry
// a hash of their content, so they may be cached for a day.
func (s *Service) staticHandler() http.Handler {
	files := http.FileServerFS(staticFS)
	notFound := s.page(s.handleNotFound, nil)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/static/")
		if _, ok := s.pages.version[name]; !ok || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
			notFound.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=86400")
		files.ServeHTTP(w, r)
	})
}

// serverName is the Matrix server name, or the public URL's host without one.
func (s *Service) serverName() string {
	if s.cfg.ServerName != "" {
		return s.cfg.ServerName
	}
	return s.base.Hostname()
}

// matrixID is the Matrix user ID of a username.
func (s *Service) matrixID(username string) string {
	if s.cfg.ServerName == "" {
		return "@" + username
	}
	return "@" + username + ":" + s.cfg.ServerName
}

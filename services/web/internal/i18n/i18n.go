// Package i18n holds the texts people see on the pages, in every language
// the pages are offered in, and picks the language of each request.
//
// A text is named by an ID (the constants of pages.go, account.go, …; the
// templates name theirs by the same strings). Each language is a Catalog of
// groups of texts, one group per file (pages.go and pages_fr.go, …). Nothing
// registers itself: Catalogs (catalogs.go) lists every catalog, the service
// builds its Set from them when it starts and hands it down, and a Set never
// changes after NewSet.
package i18n

import (
	"fmt"
	"slices"
	"time"

	"golang.org/x/text/language"
)

// ID names one text a person sees. Texts with %s or %d take arguments, in
// order.
type ID string

// Texts are some of the texts of one language, by id.
type Texts map[ID]string

// Catalog is the texts of one language.
type Catalog struct {
	// Lang is the language's BCP 47 tag, such as "fr".
	Lang string
	// Groups are the language's texts, one group per page or feature; an id
	// may be in only one group.
	Groups []Texts
}

// DefaultLanguage is the language used when no other is chosen; every other
// catalog has the same ids as its one.
const DefaultLanguage = "en"

// Set is the catalogs of a service and the matcher that picks one of them for
// a request. It is read-only once made.
type Set struct {
	// langs are the catalogs' languages, the default first and the others
	// sorted; matcher answers an index into them.
	langs   []string
	texts   map[string]Texts
	matcher language.Matcher
}

// NewSet merges each catalog's groups and prepares the language matcher. A
// catalog of the default language is required; an id defined twice in one
// language, a language given twice or a malformed tag is an error.
func NewSet(catalogs ...Catalog) (*Set, error) {
	s := &Set{texts: map[string]Texts{}}
	for _, c := range catalogs {
		if _, dup := s.texts[c.Lang]; dup {
			return nil, fmt.Errorf("i18n: two catalogs of %q", c.Lang)
		}
		merged := Texts{}
		for _, group := range c.Groups {
			for id, text := range group {
				if _, dup := merged[id]; dup {
					return nil, fmt.Errorf("i18n: text %q (%s) is defined twice", id, c.Lang)
				}
				merged[id] = text
			}
		}
		s.texts[c.Lang] = merged
		if c.Lang != DefaultLanguage {
			s.langs = append(s.langs, c.Lang)
		}
	}
	if _, ok := s.texts[DefaultLanguage]; !ok {
		return nil, fmt.Errorf("i18n: no catalog of the default language %q", DefaultLanguage)
	}
	slices.Sort(s.langs)
	s.langs = slices.Insert(s.langs, 0, DefaultLanguage)
	tags := make([]language.Tag, len(s.langs))
	for i, lang := range s.langs {
		tag, err := language.Parse(lang)
		if err != nil {
			return nil, fmt.Errorf("i18n: catalog language %q: %w", lang, err)
		}
		tags[i] = tag
	}
	s.matcher = language.NewMatcher(tags)
	return s, nil
}

// Languages lists the set's languages, the default first.
func (s *Set) Languages() []string { return slices.Clone(s.langs) }

// Localizer gives the texts of a language of the set, or of the default
// language when the set has no catalog of lang.
func (s *Set) Localizer(lang string) Localizer {
	texts, ok := s.texts[lang]
	if !ok {
		lang, texts = DefaultLanguage, s.texts[DefaultLanguage]
	}
	return Localizer{Lang: lang, texts: texts, fallback: s.texts[DefaultLanguage]}
}

// Match returns the localizer of the language that best suits an
// Accept-Language header, q-values honoured ("fr-CA" finds "fr"); a missing or
// malformed header, or one naming no language of the set, gets the default.
func (s *Set) Match(acceptLanguage string) Localizer {
	tags, _, err := language.ParseAcceptLanguage(acceptLanguage)
	if err != nil || len(tags) == 0 {
		return s.Localizer(DefaultLanguage)
	}
	_, i, confidence := s.matcher.Match(tags...)
	if confidence == language.No {
		return s.Localizer(DefaultLanguage)
	}
	return s.Localizer(s.langs[i])
}

// Localizer gives the texts of one language. Its zero value has no texts and
// answers every id with the id itself.
type Localizer struct {
	// Lang is the language's BCP 47 tag.
	Lang     string
	texts    Texts
	fallback Texts
}

// T returns the text of id, formatted with args; a missing text falls back to
// the default language, and a missing default text to the id itself (tests
// catch those).
func (l Localizer) T(id ID, args ...any) string {
	s, ok := l.texts[id]
	if !ok {
		if s, ok = l.fallback[id]; !ok {
			return string(id)
		}
	}
	if len(args) == 0 {
		return s
	}
	return fmt.Sprintf(s, args...)
}

// Has reports whether the language has a text of its own for id.
func (l Localizer) Has(id ID) bool {
	_, ok := l.texts[id]
	return ok
}

// dateFormat is the text of a date: day, month name, year, hour:minute.
const dateFormat ID = "date"

// Date writes a moment for people, in UTC to the minute, such as
// "2 August 2026, 13:04 UTC".
func (l Localizer) Date(t time.Time) string {
	t = t.UTC()
	month := l.T(ID(fmt.Sprintf("month.%d", int(t.Month()))))
	return l.T(dateFormat, t.Day(), month, t.Year(), t.Format("15:04"))
}

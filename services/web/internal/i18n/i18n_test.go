package i18n

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// The languages of the pages: every catalog mirrors English (TestMessageCatalog
// in the service's web_test.go checks that the ids the templates name exist
// everywhere; its language_test.go that Accept-Language picks the catalog and
// pages say which one they are in).

// catalogSet is the set the service builds.
func catalogSet(t *testing.T) *Set {
	t.Helper()
	s, err := NewSet(Catalogs()...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// formatVerb finds the fmt verbs of a text, such as %s, %d or %5.2f.
var formatVerb = regexp.MustCompile(`%(\[\d+\])?[-+# 0]*\d*(\.\d+)?[a-zA-Z%]`)

// Every catalog has exactly English's ids, each with the same format verbs in
// the same order, and markup only where English has it.
func TestCatalogsMirrorEnglish(t *testing.T) {
	set := catalogSet(t)
	if len(set.Languages()) < 2 {
		t.Fatalf("only %v in the catalog", set.Languages())
	}
	for _, lang := range set.Languages()[1:] {
		for _, problem := range mirrorProblems(set.texts[DefaultLanguage], set.texts[lang]) {
			t.Errorf("%s %s", lang, problem)
		}
	}
}

// mirrorProblems lists how the texts of a language differ from English's
// beyond their words.
func mirrorProblems(en, msgs Texts) []string {
	var out []string
	for _, id := range slices.Sorted(maps.Keys(en)) {
		want := en[id]
		got, ok := msgs[id]
		if !ok {
			out = append(out, fmt.Sprintf("lacks %q", id))
			continue
		}
		if w, g := formatVerb.FindAllString(want, -1), formatVerb.FindAllString(got, -1); !slices.Equal(w, g) {
			out = append(out, fmt.Sprintf("%q has verbs %q, English %q", id, g, w))
		}
		for _, markup := range []string{"<", "{{"} {
			if strings.Contains(got, markup) != strings.Contains(want, markup) {
				out = append(out, fmt.Sprintf("%q: %q differs from English in markup", id, markup))
			}
		}
		if strings.TrimSpace(got) == "" {
			out = append(out, fmt.Sprintf("%q is empty", id))
		}
	}
	for id := range msgs {
		if _, ok := en[id]; !ok {
			out = append(out, fmt.Sprintf("has %q, which English lacks", id))
		}
	}
	return out
}

// The mirror check catches a missing text, other verbs, markup, an empty
// text and a text English lacks.
func TestMirrorProblemsFindMistakes(t *testing.T) {
	en := catalogSet(t).texts[DefaultLanguage]
	fr := catalogSet(t).texts["fr"]
	if p := mirrorProblems(en, fr); len(p) != 0 {
		t.Fatalf("French as shipped: %q", p)
	}
	for name, spoil := range map[string]func(Texts){
		"missing":     func(m Texts) { delete(m, LoginTitle) },
		"verbs":       func(m Texts) { m[LoginFor] = "pour continuer" },
		"verbs order": func(m Texts) { m[Footer] = "%d · %s" },
		"markup":      func(m Texts) { m[LoginTitle] = "<b>Se connecter</b>" },
		"empty":       func(m Texts) { m[LoginTitle] = " " },
		"extra":       func(m Texts) { m["login.nowhere"] = "Nulle part" },
	} {
		spoilt := maps.Clone(fr)
		spoil(spoilt)
		if p := mirrorProblems(en, spoilt); len(p) != 1 {
			t.Errorf("%s: %q, want one problem", name, p)
		}
	}
}

// French texts follow French typography: a no-break space before ? ! : ; and
// inside « », and the apostrophe ’ rather than '.
func TestFrenchTypography(t *testing.T) {
	plainSpaceBefore := regexp.MustCompile(` [?!:;]`)
	for id, text := range catalogSet(t).texts["fr"] {
		switch {
		case plainSpaceBefore.MatchString(text):
			t.Errorf("fr %q: a plain space before punctuation, want U+00A0: %q", id, text)
		case strings.Contains(text, "'"):
			t.Errorf("fr %q: a straight apostrophe, want ’: %q", id, text)
		case strings.Contains(text, "«") && !strings.Contains(text, "«\u00a0"),
			strings.Contains(text, "»") && !strings.Contains(text, "\u00a0»"):
			t.Errorf("fr %q: guillemets without no-break spaces: %q", id, text)
		}
	}
}

// NewSet refuses what would make a language's texts ambiguous or missing.
func TestNewSetRefuses(t *testing.T) {
	en := Catalog{Lang: "en", Groups: []Texts{{LoginTitle: "Sign in"}}}
	for name, catalogs := range map[string][]Catalog{
		"an id twice":      {{Lang: "en", Groups: []Texts{{LoginTitle: "Sign in"}, {LoginTitle: "Log in"}}}},
		"a language twice": {en, {Lang: "fr"}, {Lang: "fr"}},
		"no default":       {{Lang: "fr", Groups: []Texts{{LoginTitle: "Se connecter"}}}},
		"a malformed tag":  {en, {Lang: "!!"}},
	} {
		if _, err := NewSet(catalogs...); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// The same id in two languages is what catalogs are for.
	if _, err := NewSet(en, Catalog{Lang: "fr", Groups: []Texts{{LoginTitle: "Se connecter"}}}); err != nil {
		t.Error(err)
	}
}

// A missing text falls back to English, then to its id; a language the set
// lacks gets English.
func TestLocalizerFallback(t *testing.T) {
	set, err := NewSet(
		Catalog{Lang: "en", Groups: []Texts{{LoginTitle: "Sign in", LoginFor: "to continue to %s"}}},
		Catalog{Lang: "fr", Groups: []Texts{{LoginTitle: "Se connecter"}}},
	)
	if err != nil {
		t.Fatal(err)
	}
	fr := set.Localizer("fr")
	for _, tt := range []struct{ got, want string }{
		{fr.T(LoginTitle), "Se connecter"},
		{fr.T(LoginFor, "Element"), "to continue to Element"},
		{fr.T("nowhere"), "nowhere"},
		{set.Localizer("de").Lang, "en"},
		{Localizer{}.T(LoginTitle), string(LoginTitle)},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
	if !fr.Has(LoginTitle) || fr.Has(LoginFor) {
		t.Error("Has does not tell a language's own texts")
	}
}

func TestDates(t *testing.T) {
	at := time.Date(2026, time.August, 2, 15, 4, 5, 0, time.FixedZone("CEST", 2*3600))
	set := catalogSet(t)
	for _, tt := range []struct{ lang, want string }{
		{"en", "2 August 2026, 13:04 UTC"},
		{"fr", "2 août 2026 à 13:04 UTC"},
	} {
		if got := set.Localizer(tt.lang).Date(at); got != tt.want {
			t.Errorf("Date in %s = %q, want %q", tt.lang, got, tt.want)
		}
	}
}

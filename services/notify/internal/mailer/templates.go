package mailer

import (
	"bytes"
	"embed"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"strings"
	texttemplate "text/template"
)

// templateFS holds the emails: templates/<lang>/<kind>.txt defines "subject"
// and "body"; templates/<lang>/<kind>.html defines "subject", "content" and
// "footer", framed by templates/layout.html. English ("en") is complete and
// the fallback of every other language.
//
//go:embed templates
var templateFS embed.FS

// fallbackLang is the language every email exists in.
const fallbackLang = "en"

// Kind names an email.
type Kind string

// The emails.
const (
	// KindCode carries a 6-digit code (registration, add-email).
	KindCode Kind = "code"
	// KindRecovery carries a recovery link.
	KindRecovery Kind = "recovery"
	// KindSecurity tells the person a sign-in method of theirs changed
	// (Change says which).
	KindSecurity Kind = "security"
)

// Kinds are every email.
var Kinds = []Kind{KindCode, KindRecovery, KindSecurity}

// Content is what an email says.
type Content struct {
	Kind Kind
	// Purpose is "registration", "add_email" or "recovery".
	Purpose     string
	ServiceName string
	Email       string
	Code        string
	Link        string
	// Minutes until the code or link expires.
	Minutes int
	// Change is what changed, for KindSecurity: "passkey_added",
	// "passkey_removed", "totp_enabled", "totp_disabled",
	// "recovery_codes_generated", "recovery_code_used", "factors_reset".
	Change string
	// Lang is the language rendered, set by Render.
	Lang string
}

// Templates are the parsed emails of every language.
type Templates struct {
	text map[string]*texttemplate.Template // by "<lang>/<kind>"
	html map[string]*htmltemplate.Template // by "<lang>/<kind>"
}

// LoadTemplates parses the embedded templates.
func LoadTemplates() (*Templates, error) {
	t := &Templates{text: map[string]*texttemplate.Template{}, html: map[string]*htmltemplate.Template{}}
	langs, err := fs.ReadDir(templateFS, "templates")
	if err != nil {
		return nil, err
	}
	for _, lang := range langs {
		if !lang.IsDir() {
			continue
		}
		for _, kind := range Kinds {
			key := lang.Name() + "/" + string(kind)
			base := "templates/" + key
			if _, err := fs.Stat(templateFS, base+".txt"); err != nil {
				continue // not translated: the fallback serves
			}
			txt, err := texttemplate.ParseFS(templateFS, base+".txt")
			if err != nil {
				return nil, fmt.Errorf("mailer: %w", err)
			}
			html, err := htmltemplate.ParseFS(templateFS, "templates/layout.html", base+".html")
			if err != nil {
				return nil, fmt.Errorf("mailer: %w", err)
			}
			t.text[key], t.html[key] = txt, html
		}
	}
	for _, kind := range Kinds {
		if t.text[fallbackLang+"/"+string(kind)] == nil {
			return nil, fmt.Errorf("mailer: no %s template for %q", fallbackLang, kind)
		}
	}
	return t, nil
}

// lang picks the language for a locale: the tag itself, else its language,
// else English. Tags are matched case-insensitively ("pt-BR" finds "pt-br").
func (t *Templates) lang(kind Kind, locale string) string {
	locale = strings.ToLower(locale)
	base, _, _ := strings.Cut(locale, "-")
	for _, l := range []string{locale, base} {
		if _, ok := t.text[l+"/"+string(kind)]; ok && l != "" {
			return l
		}
	}
	return fallbackLang
}

// Render writes an email in the language closest to locale.
func (t *Templates) Render(c Content, locale string) (subject, text, html string, err error) {
	c.Lang = t.lang(c.Kind, locale)
	key := c.Lang + "/" + string(c.Kind)
	txt, ok := t.text[key]
	if !ok {
		return "", "", "", fmt.Errorf("mailer: unknown email %q", c.Kind)
	}
	var sb, tb, hb bytes.Buffer
	if err := txt.ExecuteTemplate(&sb, "subject", c); err != nil {
		return "", "", "", fmt.Errorf("mailer: %s subject: %w", key, err)
	}
	if err := txt.ExecuteTemplate(&tb, "body", c); err != nil {
		return "", "", "", fmt.Errorf("mailer: %s text: %w", key, err)
	}
	if err := t.html[key].ExecuteTemplate(&hb, "layout", c); err != nil {
		return "", "", "", fmt.Errorf("mailer: %s html: %w", key, err)
	}
	return strings.Join(strings.Fields(sb.String()), " "), tb.String(), hb.String(), nil
}

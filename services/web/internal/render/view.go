package render

import (
	"strings"

	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
)

// View is what every page template gets.
type View struct {
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

// Field is one labelled input, rendered by the "field" partial.
type Field struct {
	ID, Name, Type, Label, Hint, Autocomplete, Value, Error string
	InputMode, Autocapitalize                               string
	MaxLength                                               int
	Required, Autofocus                                     bool
}

// Describedby is the ids of the hint and error of f, for aria-describedby.
func (f Field) Describedby() string {
	var ids []string
	if f.Hint != "" {
		ids = append(ids, f.ID+"-hint")
	}
	if f.Error != "" {
		ids = append(ids, f.ID+"-error")
	}
	return strings.Join(ids, " ")
}

// FocusFirst sets autofocus on the first field with an error, or else on the
// first empty one, so the cursor lands where the person has to act.
func FocusFirst(fields ...*Field) {
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

package web

import (
	"errors"
	"testing"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/services/web/internal/i18n"
)

func TestOtherServicesRefusalsInThePagesLanguage(t *testing.T) {
	withFact := func(kind errs.Kind, name, value string) error {
		return &errs.Error{Kind: kind, Public: "English words for logs", Facts: map[string]string{name: value}}
	}
	wrong := func(left string) error { return withFact(errs.KindInvalid, errs.FactAttemptsLeft, left) }
	limited := func(secs string) error { return withFact(errs.KindRateLimited, errs.FactRetryAfterSeconds, secs) }
	tests := []struct {
		name, lang string
		word       func(i18n.Localizer, error) string
		err        error
		want       string
	}{
		{"three left", "en", wrongCode, wrong("3"), "This code is not right: 3 attempts left."},
		{"one left", "en", wrongCode, wrong("1"), "This code is not right: 1 attempt left."},
		{"none left", "en", wrongCode, wrong("0"), "This code is not right, and no attempts left. Send a new code."},
		{"three left in French", "fr", wrongCode, wrong("3"), "Ce code n’est pas le bon\u00a0: il vous reste 3 essais."},
		{"no count", "en", wrongCode, errs.InvalidField("code", "wrong"), "This code is not right. Check the email and try again."},
		{"garbled count", "en", wrongCode, wrong("many"), "This code is not right. Check the email and try again."},
		{"not an errs.Error", "en", wrongCode, errors.New("boom"), "This code is not right. Check the email and try again."},
		{"seconds", "en", tryLater, limited("25"), "Too many tries. Try again in 25 seconds."},
		{"one second", "en", tryLater, limited("1"), "Too many tries. Try again in a moment."},
		{"a minute", "en", tryLater, limited("60"), "Too many tries. Try again in a minute."},
		{"minutes rounded up", "en", tryLater, limited("61"), "Too many tries. Try again in 2 minutes."},
		{"minutes in French", "fr", tryLater, limited("600"), "Trop de tentatives. Réessayez dans 10 minutes."},
		{"no wait given", "fr", tryLater, errs.RateLimited("slow down"), "Trop de tentatives. Réessayez dans un instant."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.word(newLocalizer(tt.lang), tt.err); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// Accounts' refusal of a display name, worded from the rule it names (the
// rules themselves are accounts' and tested there).
func TestTextErrorInThePagesLanguage(t *testing.T) {
	en, fr := newLocalizer("en"), newLocalizer("fr")
	refused := func(facts map[string]string) error {
		e := errs.InvalidField("display_name", "accounts' English words")
		e.Facts = facts
		return e
	}
	tooLong := refused(map[string]string{errs.FactRule: errs.RuleTooLong, errs.FactMaxLength: "256"})
	notText := refused(map[string]string{errs.FactRule: errs.RuleNotText})
	tests := []struct {
		name string
		l    i18n.Localizer
		err  error
		want string
	}{
		{"too long", en, tooLong, "A display name may have at most 256 characters."},
		{"line break", en, notText, "A display name cannot contain line breaks or other control characters."},
		{"too long in French", fr, tooLong, "Un nom d’affichage peut compter au plus 256 caractères."},
		{"no length given", en, refused(map[string]string{errs.FactRule: errs.RuleTooLong}), "accounts' English words"},
		{"no rule", en, refused(nil), "accounts' English words"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := textError(tt.l, tt.err); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

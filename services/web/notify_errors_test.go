package web

import (
	"errors"
	"testing"

	"gatehouse.dev/platform/errs"
)

func TestOtherServicesRefusalsInThePagesLanguage(t *testing.T) {
	withFact := func(kind errs.Kind, name, value string) error {
		return &errs.Error{Kind: kind, Public: "English words for logs", Facts: map[string]string{name: value}}
	}
	wrong := func(left string) error { return withFact(errs.KindInvalid, errs.FactAttemptsLeft, left) }
	limited := func(secs string) error { return withFact(errs.KindRateLimited, errs.FactRetryAfterSeconds, secs) }
	tests := []struct {
		name, lang string
		word       func(localizer, error) string
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

package web

import (
	"strconv"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/services/web/internal/i18n"
)

// Other services explain some refusals in English words meant for logs and
// API clients; the pages word them in the person's language from the facts
// the error carries (errs.Error.Facts), falling back to a general text.

// wrongCode words notify's answer to a wrong code.
func wrongCode(l i18n.Localizer, err error) string {
	left, ok := errs.FactOf(err, errs.FactAttemptsLeft)
	n, perr := strconv.Atoi(left)
	switch {
	case !ok || perr != nil || n < 0:
		return l.T(i18n.VerifyWrong)
	case n == 0:
		return l.T(i18n.VerifyWrongNoneLeft)
	case n == 1:
		return l.T(i18n.VerifyWrongOneLeft)
	default:
		return l.T(i18n.VerifyWrongLeft, n)
	}
}

// textError words accounts' refusal of a free text (a display name) from the
// rule it names, else keeps accounts' words.
func textError(l i18n.Localizer, err error) string {
	rule, _ := errs.FactOf(err, errs.FactRule)
	switch rule {
	case errs.RuleNotText:
		return l.T(i18n.AccountDisplayNameControl)
	case errs.RuleTooLong:
		limit, _ := errs.FactOf(err, errs.FactMaxLength)
		if n, perr := strconv.Atoi(limit); perr == nil {
			return l.T(i18n.AccountDisplayNameLong, n)
		}
	}
	return errs.PublicMessage(err)
}

// tryLater words a rate limit, saying when to try again when the error says.
func tryLater(l i18n.Localizer, err error) string {
	v, ok := errs.FactOf(err, errs.FactRetryAfterSeconds)
	secs, perr := strconv.Atoi(v)
	switch {
	case !ok || perr != nil || secs <= 1:
		return l.T(i18n.TryAgainMoment)
	case secs < 60:
		return l.T(i18n.TryAgainSeconds, secs)
	case secs <= 60:
		return l.T(i18n.TryAgainMinute)
	default:
		return l.T(i18n.TryAgainMinutes, (secs+59)/60)
	}
}

package i18n

// Catalogs returns the catalogs of the pages, the one list of them: the
// service passes it to NewSet. A new group of texts is one more function in
// each language's Groups; a translation is one more Catalog, with a group for
// every English one (a test checks that it has every English text with the
// same placeholders).
func Catalogs() []Catalog {
	return []Catalog{
		{Lang: "en", Groups: []Texts{pagesEnglish(), accountEnglish(), recoverEnglish(), registrationEnglish(), ssoEnglish(), captchaEnglish(), upstreamEnglish(), factorsEnglish()}},
		{Lang: "fr", Groups: []Texts{pagesFrench(), accountFrench(), recoverFrench(), registrationFrench(), ssoFrench(), captchaFrench(), upstreamFrench(), factorsFrench()}},
	}
}

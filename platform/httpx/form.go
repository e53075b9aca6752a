package httpx

import (
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"gatehouse.dev/platform/oautherr"
)

// MaxFormBody bounds the form bodies ReadForm reads.
const MaxFormBody = 64 << 10

// ReadForm reads the application/x-www-form-urlencoded POST body of an OAuth
// endpoint (RFC 6749 §3.2, RFC 7009 §2.1, RFC 7662 §2.1, RFC 8628 §3.1): at
// most MaxFormBody bytes, each parameter at most once (RFC 6749 §3.1), the
// query string ignored. Every problem is an invalid_request — with status
// 405 and an Allow header for another method — never a 415 or a 5xx.
func ReadForm(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	if r.Method != http.MethodPost {
		return nil, MethodNotAllowed(w, http.MethodPost)
	}
	if ct := r.Header.Get("Content-Type"); ct != formType && !isFormType(ct) {
		return nil, oautherr.New(oautherr.InvalidRequest, "the body must be application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxFormBody)
	if err := r.ParseForm(); err != nil {
		if _, tooBig := errors.AsType[*http.MaxBytesError](err); tooBig {
			return nil, oautherr.New(oautherr.InvalidRequest, "the body is larger than 64 KiB")
		}
		return nil, oautherr.New(oautherr.InvalidRequest, "the body is not valid form encoding")
	}
	for k, v := range r.PostForm {
		if len(v) > 1 {
			return nil, oautherr.New(oautherr.InvalidRequest, "the parameter "+k+" appears more than once")
		}
	}
	return r.PostForm, nil
}

// formType is the media type of OAuth's form bodies.
const formType = "application/x-www-form-urlencoded"

// isFormType reports whether a Content-Type is formType with parameters
// (the common bare one is compared without parsing).
func isFormType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == formType
}

// MethodNotAllowed sets the Allow header and returns the error of a request
// with another method: an invalid_request answered with status 405.
func MethodNotAllowed(w http.ResponseWriter, allowed ...string) error {
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	return WithStatus(http.StatusMethodNotAllowed, oautherr.New(oautherr.InvalidRequest, "use "+strings.Join(allowed, " or ")))
}

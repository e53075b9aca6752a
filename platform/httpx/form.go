package httpx

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"

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

// Params is a form body read by ReadParams: its parameters, each at most
// once. A small plain body is read into a few strings, without the maps of
// url.Values; any other is read by ReadForm.
type Params struct {
	n     int
	pairs [maxParams][2]string
	// values holds the parameters when ReadForm read them.
	values url.Values
}

// The bodies ReadParams reads without ReadForm: at most maxParams
// parameters in at most smallForm bytes.
const (
	maxParams = 6
	smallForm = 4 << 10
)

// Get is the value of the parameter name, "" when it is absent.
func (p *Params) Get(name string) string {
	if p.values != nil {
		return p.values.Get(name)
	}
	for _, kv := range p.pairs[:p.n] {
		if kv[0] == name {
			return kv[1]
		}
	}
	return ""
}

// Values is the parameters as url.Values (made on each call when the body
// was small), for what takes a whole form (client authentication).
func (p *Params) Values() url.Values {
	if p.values != nil {
		return p.values
	}
	v := make(url.Values, p.n)
	for _, kv := range p.pairs[:p.n] {
		v[kv[0]] = []string{kv[1]}
	}
	return v
}

// ReadParams reads a form body as ReadForm does, with the same answers to
// every request, ReadForm's errors included; a small body without escapes
// (%, +) or semicolons, posted as application/x-www-form-urlencoded with a
// Content-Length and no query string — an introspection's, a revocation's —
// is read without building url.Values, the hot paths' own cost.
func ReadParams(w http.ResponseWriter, r *http.Request) (Params, error) {
	if r.Method != http.MethodPost || r.URL.RawQuery != "" || r.ContentLength < 0 || r.ContentLength > smallForm ||
		r.Header.Get("Content-Type") != formType {
		return readParamsByForm(w, r)
	}
	bp := formBuffers.Get().(*[]byte)
	buf := (*bp)[:r.ContentLength]
	_, err := io.ReadFull(r.Body, buf)
	body := string(buf)
	formBuffers.Put(bp)
	if err != nil {
		return Params{}, oautherr.New(oautherr.InvalidRequest, "the body is not valid form encoding")
	}
	if strings.ContainsAny(body, "%+;") {
		r.Body = io.NopCloser(strings.NewReader(body))
		return readParamsByForm(w, r)
	}
	var p Params
	for rest := body; rest != ""; {
		var pair string
		pair, rest, _ = strings.Cut(rest, "&")
		if pair == "" {
			continue
		}
		if p.n == maxParams {
			r.Body = io.NopCloser(strings.NewReader(body))
			return readParamsByForm(w, r)
		}
		k, v, _ := strings.Cut(pair, "=")
		for _, kv := range p.pairs[:p.n] {
			if kv[0] == k {
				return Params{}, oautherr.New(oautherr.InvalidRequest, "the parameter "+k+" appears more than once")
			}
		}
		p.pairs[p.n] = [2]string{k, v}
		p.n++
	}
	return p, nil
}

// formBuffers are the buffers ReadParams reads bodies into.
var formBuffers = sync.Pool{New: func() any { b := make([]byte, smallForm); return &b }}

// readParamsByForm is ReadParams through ReadForm.
func readParamsByForm(w http.ResponseWriter, r *http.Request) (Params, error) {
	v, err := ReadForm(w, r)
	if err != nil {
		return Params{}, err
	}
	if v == nil {
		v = url.Values{}
	}
	return Params{values: v}, nil
}

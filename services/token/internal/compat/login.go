package compat

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"strings"
	"unicode/utf8"

	"gatehouse.dev/platform/errs"
)

// The login types of POST /login.
const (
	PasswordLogin = "m.login.password"
	TokenLogin    = "m.login.token"
	SSOLogin      = "m.login.sso"
	appserviceLog = "m.login.application_service"
)

// Login is a parsed POST /login body.
type Login struct {
	// Type is PasswordLogin or TokenLogin.
	Type string
	// User is the user as given: a localpart or a full user id (password logins).
	User     string
	Password string
	// Token is the login token (token logins).
	Token string
	// DeviceID is the device to log in as; empty asks for a new one.
	DeviceID string
	// DisplayName is initial_device_display_name, at most MaxDisplayName runes.
	DisplayName string
	// Refresh asks for an expiring access token and a refresh token.
	Refresh bool
}

// MaxDisplayName bounds initial_device_display_name; longer names are cut, as
// a homeserver does, rather than refused.
const MaxDisplayName = 100

// maxDeviceID bounds a client-chosen device id.
const maxDeviceID = 255

// object is a JSON object whose members are decoded on demand.
type object map[string]json.RawMessage

// parseObject reads a JSON object: not JSON at all is M_NOT_JSON, JSON that is
// not an object is M_BAD_JSON.
func parseObject(body []byte) (object, *errs.Error) {
	if !json.Valid(body) {
		return nil, NotJSON()
	}
	var o object
	if err := json.Unmarshal(body, &o); err != nil || o == nil {
		return nil, BadJSON("The request body must be a JSON object.")
	}
	return o, nil
}

// present reports whether the member exists and is not null.
func (o object) present(name string) bool {
	raw, ok := o[name]
	return ok && !bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

// str decodes an optional string member; null and absent are "".
func (o object) str(name string) (string, *errs.Error) {
	if !o.present(name) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(o[name], &s); err != nil {
		return "", BadJSON(name + " must be a string.")
	}
	return s, nil
}

// required decodes a string member that must be there and not be empty.
func (o object) required(name string) (string, *errs.Error) {
	s, e := o.str(name)
	if e == nil && s == "" {
		e = MissingParam(name)
	}
	return s, e
}

// boolean decodes an optional boolean member; null and absent are false.
func (o object) boolean(name string) (bool, *errs.Error) {
	if !o.present(name) {
		return false, nil
	}
	var b bool
	if err := json.Unmarshal(o[name], &b); err != nil {
		return false, BadJSON(name + " must be a boolean.")
	}
	return b, nil
}

// ParseLogin reads a POST /login body. It accepts m.login.password with an
// m.id.user identifier or the deprecated top-level "user", and m.login.token.
func ParseLogin(body []byte) (Login, *errs.Error) {
	o, e := parseObject(body)
	if e != nil {
		return Login{}, e
	}
	var l Login
	if l.Type, e = o.required("type"); e != nil {
		return Login{}, e
	}
	switch l.Type {
	case PasswordLogin:
		if l.User, e = passwordUser(o); e != nil {
			return Login{}, e
		}
		if l.Password, e = o.required("password"); e != nil {
			return Login{}, e
		}
	case TokenLogin:
		if l.Token, e = o.required("token"); e != nil {
			return Login{}, e
		}
	case appserviceLog:
		return Login{}, AppserviceLoginUnsupported()
	default:
		return Login{}, Unrecognized("Invalid login type.")
	}
	if l.DeviceID, e = o.str("device_id"); e != nil {
		return Login{}, e
	}
	if l.DeviceID != "" && !ValidDeviceID(l.DeviceID) {
		return Login{}, InvalidParam("device_id must be 1 to 255 characters of A-Z a-z 0-9 and ._~!$&'()*+,;=:@/-")
	}
	if l.DisplayName, e = o.str("initial_device_display_name"); e != nil {
		return Login{}, e
	}
	l.DisplayName = truncate(strings.TrimSpace(l.DisplayName), MaxDisplayName)
	if l.Refresh, e = o.boolean("refresh_token"); e != nil {
		return Login{}, e
	}
	return l, nil
}

// passwordUser reads who a password login is for: identifier
// {"type": "m.id.user", "user": …}, or the deprecated top-level "user".
func passwordUser(o object) (string, *errs.Error) {
	if !o.present("identifier") {
		return o.required("user")
	}
	var id object
	if err := json.Unmarshal(o["identifier"], &id); err != nil || id == nil {
		return "", BadJSON("identifier must be an object.")
	}
	typ, e := id.required("type")
	if e != nil {
		return "", e
	}
	if typ != "m.id.user" {
		return "", Unrecognized("Unsupported identifier type: only m.id.user is supported.")
	}
	return id.required("user")
}

// Localpart reduces a user as given at login to this server's localpart: a
// full user id must name serverName (another server's user cannot log in
// here). Localparts are lower-cased, as user names are stored.
func Localpart(user, serverName string) (string, *errs.Error) {
	if rest, ok := strings.CutPrefix(user, "@"); ok {
		local, server, ok := strings.Cut(rest, ":")
		if !ok || local == "" || server == "" {
			return "", InvalidParam("The user id is not of the form @localpart:server_name.")
		}
		if !strings.EqualFold(server, serverName) {
			return "", Forbidden("This server only logs in users of " + serverName + ".")
		}
		user = local
	}
	return strings.ToLower(user), nil
}

// UserID is the Matrix user id of a localpart on serverName.
func UserID(localpart, serverName string) string { return "@" + localpart + ":" + serverName }

// ValidDeviceID reports whether a client-chosen device id can be carried in a
// scope token (urn:matrix:client:device:<id>): 1 to 255 characters of the
// set MSC2967 allows.
func ValidDeviceID(id string) bool {
	if id == "" || len(id) > maxDeviceID {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._~!$&'()*+,;=:@/-", c) >= 0) {
			return false
		}
	}
	return true
}

// deviceAlphabet is the alphabet of generated device ids, as homeservers make them.
const deviceAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// NewDeviceID returns a fresh device id: 10 characters of [A-Z0-9].
func NewDeviceID() string {
	const n, limit = 10, 256 - 256%len(deviceAlphabet) // reject bytes that would bias the choice
	out := make([]byte, 0, n)
	var buf [32]byte
	for len(out) < n {
		_, _ = rand.Read(buf[:]) // never fails (Go 1.24+)
		for _, b := range buf {
			if int(b) < limit && len(out) < n {
				out = append(out, deviceAlphabet[int(b)%len(deviceAlphabet)])
			}
		}
	}
	return string(out)
}

// The scopes of compat sessions (MSC2967).
const (
	apiScope     = "urn:matrix:client:api:*"
	deviceScope  = "urn:matrix:client:device:"
	synapseAdmin = "urn:synapse:admin:*"
)

// Scope is the scope of a compat session: the whole client API on one
// device, and Synapse's admin API for administrators.
func Scope(deviceID string, admin bool) string {
	s := apiScope + " " + deviceScope + deviceID
	if admin {
		s += " " + synapseAdmin
	}
	return s
}

// ParseRefresh reads a POST /refresh body: {"refresh_token": "mcr_…"}.
func ParseRefresh(body []byte) (string, *errs.Error) {
	o, e := parseObject(body)
	if e != nil {
		return "", e
	}
	return o.required("refresh_token")
}

// ParseLogoutAll reads a POST /logout/all body, which may be empty: whether
// the client accepts that only compat sessions end
// ("io.element.only_compat_is_fine").
func ParseLogoutAll(body []byte) (bool, *errs.Error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return false, nil
	}
	o, e := parseObject(body)
	if e != nil {
		return false, e
	}
	return o.boolean("io.element.only_compat_is_fine")
}

// truncate cuts s to at most n runes.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}

// Flows is the answer to GET /login (MSC3824): passwords, SSO through the
// authentication service's own pages, and login tokens.
func Flows() map[string]any {
	return map[string]any{"flows": []map[string]any{
		{"type": PasswordLogin},
		{
			"type":                  SSOLogin,
			"identity_providers":    []any{},
			"oauth_aware_preferred": true,
			"org.matrix.msc3824.delegated_oidc_compatibility": true,
		},
		{"type": TokenLogin},
	}}
}

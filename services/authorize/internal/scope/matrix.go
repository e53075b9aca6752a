package scope

import (
	"crypto/rand"
	"regexp"
	"strconv"
	"strings"
)

// The scopes Gatehouse understands.
const (
	// OpenID asks for an ID token (OpenID Connect).
	OpenID = "openid"
	// Email asks for the user's email address in the ID token and userinfo.
	Email = "email"
	// MatrixAPI is full access to the Matrix client-server API (MSC2967).
	MatrixAPI = "urn:matrix:client:api:*"
	// UnstableMatrixAPI is MatrixAPI's MSC2967 unstable form.
	UnstableMatrixAPI = "urn:matrix:org.matrix.msc2967.client:api:*"
	// MatrixDevicePrefix followed by a device ID binds the session to that device.
	MatrixDevicePrefix = "urn:matrix:client:device:"
	// UnstableMatrixDevicePrefix is MatrixDevicePrefix's MSC2967 unstable form.
	UnstableMatrixDevicePrefix = "urn:matrix:org.matrix.msc2967.client:device:"
	// SynapseAdmin is access to Synapse's admin API.
	SynapseAdmin = "urn:synapse:admin:*"
)

// otherScopes are the scopes recognised for compatibility with clients of
// matrix-authentication-service that have no field of their own in Matrix.
var otherScopes = map[string]bool{
	"urn:mas:admin":     true,
	"urn:mas:graphql:*": true,
}

// deviceID matches the device IDs MSC2967 device scopes may carry; the MAS
// documentation's narrower [A-Za-z0-9-] is wrong.
var deviceID = regexp.MustCompile(`^[A-Za-z0-9._~!$&'()*+,;=:@/-]{10,}$`)

// Matrix is what a scope set asks for.
type Matrix struct {
	// API is set by the api scope, in either form.
	API bool
	// Unstable is set when the Matrix scopes use the unstable MSC2967 form.
	Unstable bool
	// DeviceID is the device of the device scope, or "" without one.
	DeviceID string
	// SynapseAdmin is set by urn:synapse:admin:*.
	SynapseAdmin bool
	// OpenID is set by openid.
	OpenID bool
	// Email is set by email.
	Email bool
	// Other holds the other recognised scopes (urn:mas:admin, urn:mas:graphql:*), sorted.
	Other []string
}

// Interpret reads s as MSC2967 scopes. It fails with invalid_scope on an
// unknown scope, a mix of stable and unstable Matrix scopes, more than one
// device scope, a device scope without the api scope, or a device ID not
// matching MSC2967's pattern.
func Interpret(s Set) (Matrix, error) {
	var m Matrix
	var stable, unstable bool
	devices := 0
	for _, tok := range s.tokens {
		id, devUnstable, isDevice := cutDevice(tok)
		switch {
		case tok == OpenID:
			m.OpenID = true
		case tok == Email:
			m.Email = true
		case tok == SynapseAdmin:
			m.SynapseAdmin = true
		case tok == MatrixAPI:
			m.API, stable = true, true
		case tok == UnstableMatrixAPI:
			m.API, unstable = true, true
		case isDevice:
			if !deviceID.MatchString(id) {
				return Matrix{}, invalidf("device scope %q has an invalid device ID (want at least 10 of A-Z a-z 0-9 and ._~!$&'()*+,;=:@/-)", tok)
			}
			m.DeviceID = id
			devices++
			stable, unstable = stable || !devUnstable, unstable || devUnstable
		case otherScopes[tok]:
			m.Other = append(m.Other, tok)
		default:
			return Matrix{}, invalidf("scope %q is not supported", tok)
		}
	}
	switch {
	case stable && unstable:
		return Matrix{}, invalidf("scope mixes the stable %q and unstable %q forms of the Matrix scopes",
			"urn:matrix:client:", "urn:matrix:org.matrix.msc2967.client:")
	case devices > 1:
		return Matrix{}, invalidf("scope has %d device scopes; at most one is allowed", devices)
	case devices == 1 && !m.API:
		return Matrix{}, invalidf("a device scope requires the %q scope", apiScope(unstable))
	}
	m.Unstable = unstable
	return m, nil
}

// WithDevice returns s plus the device scope for id, in the unstable form if
// unstable. It does not remove a device scope s already has. It panics if id
// is not a valid device ID, as one from NewDeviceID or Interpret is.
func WithDevice(s Set, id string, unstable bool) Set {
	if !deviceID.MatchString(id) {
		panic("scope: invalid device ID " + strconv.Quote(id))
	}
	return s.with(deviceScope(id, unstable))
}

// Twins returns s plus the other form (stable or unstable) of each of its
// Matrix api and device scopes, as introspection reports them.
func Twins(s Set) Set {
	var twins []string
	for _, tok := range s.tokens {
		switch id, unstable, isDevice := cutDevice(tok); {
		case tok == MatrixAPI:
			twins = append(twins, UnstableMatrixAPI)
		case tok == UnstableMatrixAPI:
			twins = append(twins, MatrixAPI)
		case isDevice:
			twins = append(twins, deviceScope(id, !unstable))
		}
	}
	return s.with(twins...)
}

// deviceIDAlphabet is the alphabet of generated device IDs.
const deviceIDAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// deviceIDLength is the length of generated device IDs.
const deviceIDLength = 10

// NewDeviceID returns a random device ID of 10 characters from [A-Z0-9], as
// MAS generates when a client asks for the api scope without a device.
func NewDeviceID() string {
	// 252 is the largest multiple of 36 that fits a byte: rejecting bytes
	// at or above it keeps every character equally likely.
	const limit = 252
	id := make([]byte, 0, deviceIDLength)
	buf := make([]byte, 2*deviceIDLength)
	for len(id) < deviceIDLength {
		rand.Read(buf) // never fails: crypto/rand crashes the program instead
		for _, b := range buf {
			if b < limit && len(id) < deviceIDLength {
				id = append(id, deviceIDAlphabet[b%36])
			}
		}
	}
	return string(id)
}

// cutDevice returns the device ID of tok and whether it is in the unstable
// form, if tok is a device scope.
func cutDevice(tok string) (id string, unstable, ok bool) {
	if id, ok := strings.CutPrefix(tok, MatrixDevicePrefix); ok {
		return id, false, true
	}
	if id, ok := strings.CutPrefix(tok, UnstableMatrixDevicePrefix); ok {
		return id, true, true
	}
	return "", false, false
}

// deviceScope returns the device scope for id in the chosen form.
func deviceScope(id string, unstable bool) string {
	if unstable {
		return UnstableMatrixDevicePrefix + id
	}
	return MatrixDevicePrefix + id
}

// apiScope returns the api scope in the chosen form.
func apiScope(unstable bool) string {
	if unstable {
		return UnstableMatrixAPI
	}
	return MatrixAPI
}

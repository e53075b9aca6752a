package scope

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/oautherr"
)

// wantInvalidScope asserts that err is an invalid_scope error whose
// description contains want.
func wantInvalidScope(t *testing.T, err error, want string) {
	t.Helper()
	oe, ok := errors.AsType[*errs.Error](err)
	if !ok || oe.Code != oautherr.InvalidScope {
		t.Fatalf("error = %v, want code %s", err, oautherr.InvalidScope)
	}
	if !strings.Contains(oe.Public, want) {
		t.Errorf("description = %q, want it to contain %q", oe.Public, want)
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr string
	}{
		{"", nil, ""},
		{"openid", []string{"openid"}, ""},
		{"openid urn:matrix:client:api:*", []string{"openid", "urn:matrix:client:api:*"}, ""},
		{"b a c a b", []string{"a", "b", "c"}, ""},
		{"!#[]~", []string{"!#[]~"}, ""},
		{" openid", nil, "empty token"},
		{"openid ", nil, "empty token"},
		{"openid  email", nil, "empty token"},
		{" ", nil, "empty token"},
		{"openid\temail", nil, "character"},
		{"openid\nemail", nil, "character"},
		{`say"hi"`, nil, "character"},
		{`back\slash`, nil, "character"},
		{"caf\u00e9", nil, "character"},
		{"nul\x00", nil, "character"},
		{"del\x7f", nil, "character"},
		{strings.Repeat("a", MaxLength), []string{strings.Repeat("a", MaxLength)}, ""},
		{strings.Repeat("a", MaxLength+1), nil, "longer than 2048"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.wantErr != "" {
				wantInvalidScope(t, err, tt.wantErr)
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if !slices.Equal(got.Tokens(), tt.want) {
				t.Errorf("Parse(%q) = %q, want %q", tt.in, got.Tokens(), tt.want)
			}
			if got.String() != strings.Join(tt.want, " ") {
				t.Errorf("String() = %q", got.String())
			}
			if got.Len() != len(tt.want) || got.IsEmpty() != (len(tt.want) == 0) {
				t.Errorf("Len() = %d, IsEmpty() = %v for %q", got.Len(), got.IsEmpty(), tt.want)
			}
		})
	}
}

func TestRequired(t *testing.T) {
	if _, err := Required(""); err == nil {
		t.Fatal("Required(\"\") succeeded")
	} else {
		wantInvalidScope(t, err, "scope is required")
	}
	if _, err := Required("openid  email"); err == nil {
		t.Fatal("Required with an empty token succeeded")
	}
	got, err := Required("email openid")
	if err != nil {
		t.Fatalf("Required: %v", err)
	}
	if got.String() != "email openid" {
		t.Errorf("Required = %q", got)
	}
}

func TestSetHasAndEqual(t *testing.T) {
	s, err := New("openid", "email", "openid")
	if err != nil {
		t.Fatal(err)
	}
	for tok, want := range map[string]bool{"openid": true, "email": true, "profile": false, "": false, "openid ": false} {
		if got := s.Has(tok); got != want {
			t.Errorf("Has(%q) = %v, want %v", tok, got, want)
		}
	}
	p, _ := Parse("email openid")
	if !s.Equal(p) || s.Equal(Set{}) {
		t.Errorf("Equal is wrong for %q and %q", s, p)
	}
	toks := s.Tokens()
	toks[0] = "mutated"
	if !s.Has("email") {
		t.Error("mutating Tokens() changed the set")
	}
	if _, err := New("ok", "not ok"); err == nil {
		t.Error("New accepted a token with a space")
	}
	if (Set{}).Has("x") || !(Set{}).IsEmpty() || (Set{}).String() != "" {
		t.Error("zero Set is not empty")
	}
}

func TestInterpret(t *testing.T) {
	const dev = "ABCDEFGHIJ"
	tests := []struct {
		name    string
		scope   string
		want    Matrix
		wantErr string
	}{
		{"empty", "", Matrix{}, ""},
		{"openid only", "openid", Matrix{OpenID: true}, ""},
		{"stable api and device",
			"openid urn:matrix:client:api:* urn:matrix:client:device:" + dev,
			Matrix{API: true, DeviceID: dev, OpenID: true}, ""},
		{"unstable api and device",
			"urn:matrix:org.matrix.msc2967.client:api:* urn:matrix:org.matrix.msc2967.client:device:" + dev,
			Matrix{API: true, Unstable: true, DeviceID: dev}, ""},
		{"api without device", "urn:matrix:client:api:*", Matrix{API: true}, ""},
		{"unstable api without device", "urn:matrix:org.matrix.msc2967.client:api:*", Matrix{API: true, Unstable: true}, ""},
		{"everything",
			"openid email urn:synapse:admin:* urn:mas:admin urn:mas:graphql:* urn:matrix:client:api:* urn:matrix:client:device:" + dev,
			Matrix{API: true, DeviceID: dev, SynapseAdmin: true, OpenID: true, Email: true,
				Other: []string{"urn:mas:admin", "urn:mas:graphql:*"}}, ""},
		{"device ID with MSC2967 punctuation",
			"urn:matrix:client:api:* urn:matrix:client:device:a._~!$&'()*+,;=:@/-",
			Matrix{API: true, DeviceID: "a._~!$&'()*+,;=:@/-"}, ""},
		{"device without api", "urn:matrix:client:device:" + dev, Matrix{}, "requires the \"urn:matrix:client:api:*\""},
		{"unstable device without api", "urn:matrix:org.matrix.msc2967.client:device:" + dev, Matrix{},
			"requires the \"urn:matrix:org.matrix.msc2967.client:api:*\""},
		{"two devices",
			"urn:matrix:client:api:* urn:matrix:client:device:" + dev + " urn:matrix:client:device:KLMNOPQRST",
			Matrix{}, "2 device scopes"},
		{"mixed api forms", "urn:matrix:client:api:* urn:matrix:org.matrix.msc2967.client:api:*", Matrix{}, "mixes the stable"},
		{"stable api unstable device",
			"urn:matrix:client:api:* urn:matrix:org.matrix.msc2967.client:device:" + dev, Matrix{}, "mixes the stable"},
		{"unstable api stable device",
			"urn:matrix:org.matrix.msc2967.client:api:* urn:matrix:client:device:" + dev, Matrix{}, "mixes the stable"},
		{"short device ID", "urn:matrix:client:api:* urn:matrix:client:device:ABCDEFGHI", Matrix{}, "invalid device ID"},
		{"empty device ID", "urn:matrix:client:api:* urn:matrix:client:device:", Matrix{}, "invalid device ID"},
		{"device ID with a bad character", "urn:matrix:client:api:* urn:matrix:client:device:ABCDEFGHIJ#", Matrix{}, "invalid device ID"},
		{"unknown scope", "openid profile", Matrix{}, `scope "profile" is not supported`},
		{"unknown matrix scope", "urn:matrix:client:api:read", Matrix{}, `scope "urn:matrix:client:api:read" is not supported`},
		{"guest scope", "urn:matrix:client:api:guest", Matrix{}, "not supported"},
		{"scope without wildcard", "urn:synapse:admin", Matrix{}, "not supported"},
		{"case matters", "OpenID", Matrix{}, "not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse(tt.scope)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.scope, err)
			}
			got, err := Interpret(s)
			if tt.wantErr != "" {
				wantInvalidScope(t, err, tt.wantErr)
				return
			}
			if err != nil {
				t.Fatalf("Interpret(%q): %v", tt.scope, err)
			}
			if got.API != tt.want.API || got.Unstable != tt.want.Unstable || got.DeviceID != tt.want.DeviceID ||
				got.SynapseAdmin != tt.want.SynapseAdmin || got.OpenID != tt.want.OpenID ||
				got.Email != tt.want.Email || !slices.Equal(got.Other, tt.want.Other) {
				t.Errorf("Interpret(%q) = %+v, want %+v", tt.scope, got, tt.want)
			}
		})
	}
}

func TestNewDeviceID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := NewDeviceID()
		if len(id) != 10 || strings.Trim(id, deviceIDAlphabet) != "" {
			t.Fatalf("NewDeviceID() = %q, want 10 characters of [A-Z0-9]", id)
		}
		if !deviceID.MatchString(id) {
			t.Fatalf("NewDeviceID() = %q does not match the device ID pattern", id)
		}
		if seen[id] {
			t.Fatalf("NewDeviceID() repeated %q", id)
		}
		seen[id] = true
	}
}

func TestWithDevice(t *testing.T) {
	api, _ := Parse("openid urn:matrix:client:api:*")
	id := NewDeviceID()
	got := WithDevice(api, id, false)
	m, err := Interpret(got)
	if err != nil {
		t.Fatalf("Interpret(%q): %v", got, err)
	}
	if !m.API || m.DeviceID != id || m.Unstable {
		t.Errorf("Interpret(%q) = %+v", got, m)
	}
	if api.Has(MatrixDevicePrefix + id) {
		t.Error("WithDevice modified its argument")
	}

	unstable, _ := Parse("urn:matrix:org.matrix.msc2967.client:api:*")
	got = WithDevice(unstable, id, true)
	if !got.Has(UnstableMatrixDevicePrefix + id) {
		t.Errorf("WithDevice unstable = %q", got)
	}
	if m, err := Interpret(got); err != nil || !m.Unstable || m.DeviceID != id {
		t.Errorf("Interpret(%q) = %+v, %v", got, m, err)
	}

	defer func() {
		if recover() == nil {
			t.Error("WithDevice with an invalid device ID did not panic")
		}
	}()
	WithDevice(api, "short", false)
}

func TestTwins(t *testing.T) {
	const dev = "ABCDEFGHIJ"
	tests := []struct{ in, want string }{
		{"", ""},
		{"openid email", "email openid"},
		{"urn:matrix:client:api:*", "urn:matrix:client:api:* urn:matrix:org.matrix.msc2967.client:api:*"},
		{"urn:matrix:org.matrix.msc2967.client:api:*", "urn:matrix:client:api:* urn:matrix:org.matrix.msc2967.client:api:*"},
		{"openid urn:matrix:client:api:* urn:matrix:client:device:" + dev,
			"openid urn:matrix:client:api:* urn:matrix:client:device:" + dev +
				" urn:matrix:org.matrix.msc2967.client:api:* urn:matrix:org.matrix.msc2967.client:device:" + dev},
		{"urn:matrix:org.matrix.msc2967.client:device:" + dev,
			"urn:matrix:client:device:" + dev + " urn:matrix:org.matrix.msc2967.client:device:" + dev},
		{"urn:matrix:client:api:* urn:matrix:org.matrix.msc2967.client:api:*",
			"urn:matrix:client:api:* urn:matrix:org.matrix.msc2967.client:api:*"},
		{"urn:synapse:admin:*", "urn:synapse:admin:*"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			in, err := Parse(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			got := Twins(in)
			if got.String() != tt.want {
				t.Errorf("Twins(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if again := Twins(got); !again.Equal(got) {
				t.Errorf("Twins is not idempotent: %q then %q", got, again)
			}
		})
	}
}

// FuzzParse checks that Parse never panics, that a parsed set's String
// re-parses to the same set, and that Interpret and Twins never panic.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "openid", "openid email urn:matrix:client:api:* urn:matrix:client:device:ABCDEFGHIJ",
		"a  b", " a", "b a b", "urn:matrix:org.matrix.msc2967.client:device:x",
		"urn:matrix:client:device:" + strings.Repeat("/", 10), "\x00", `"\`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := Parse(in)
		if err != nil {
			return
		}
		again, err := Parse(s.String())
		if err != nil {
			t.Fatalf("String() of Parse(%q) = %q does not re-parse: %v", in, s, err)
		}
		if !again.Equal(s) {
			t.Fatalf("Parse(%q) = %q re-parses to %q", in, s, again)
		}
		for _, tok := range s.Tokens() {
			if !s.Has(tok) {
				t.Fatalf("Has(%q) is false for a member", tok)
			}
		}
		if m, err := Interpret(s); err == nil && m.DeviceID != "" {
			if !Twins(s).Has(UnstableMatrixDevicePrefix+m.DeviceID) || !Twins(s).Has(MatrixDevicePrefix+m.DeviceID) {
				t.Fatalf("Twins(%q) lacks a device twin", s)
			}
		}
	})
}

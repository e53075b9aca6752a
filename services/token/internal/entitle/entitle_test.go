package entitle

import (
	"testing"

	"gatehouse.dev/platform/errs"
)

func TestClientScope(t *testing.T) {
	self := Client{Registered: "read:stats write:stats"}
	admin := Client{Admin: true, Registered: "read:stats"}
	tests := []struct {
		name      string
		requested string
		client    Client
		want      string // "" with refused
		refused   bool
	}{
		{"nothing", "", self, "", false},
		{"registered scopes, duplicates and spaces", " read:stats  write:stats read:stats", self, "read:stats write:stats", false},
		{"an unregistered scope", "read:stats delete:everything", self, "", true},
		{"a self-registered client and Synapse's admin scope", "urn:synapse:admin:*", self, "", true},
		{"a client that registered the admin scope itself", "urn:synapse:admin:*", Client{Registered: "urn:synapse:admin:*"}, "", true},
		{"MAS's admin scope", "urn:mas:admin", self, "", true},
		{"Gatehouse's admin scope", "urn:gatehouse:admin", self, "", true},
		{"another Synapse admin scope", "urn:synapse:admin:users", self, "", true},
		{"an admin client and Synapse's admin scope", "urn:synapse:admin:*", admin, "urn:synapse:admin:*", false},
		{"an admin client, every admin scope", "urn:synapse:admin:* urn:mas:admin urn:gatehouse:admin read:stats", admin, "urn:synapse:admin:* urn:mas:admin urn:gatehouse:admin read:stats", false},
		{"an admin client, an unregistered scope", "urn:synapse:admin:* write:stats", admin, "", true},
		{"openid", "openid", admin, "", true},
		{"email", "email", admin, "", true},
		{"profile", "profile", admin, "", true},
		{"the Matrix API", "urn:matrix:client:api:*", admin, "", true},
		{"a Matrix device", "urn:matrix:client:device:ABCDEFGHIJ", admin, "", true},
		{"the unstable Matrix API", "urn:matrix:org.matrix.msc2967.client:api:*", admin, "", true},
		{"a person's scope even when registered", "openid", Client{Registered: "openid"}, "", true},
		{"a forbidden character", "read\"stats", Client{Registered: "read\"stats"}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ClientScope(tt.requested, tt.client)
			if tt.refused {
				if err == nil || errs.CodeOf(err) != "invalid_scope" || errs.KindOf(err) != errs.KindInvalid {
					t.Fatalf("ClientScope = %q, %v; want invalid_scope", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ClientScope = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

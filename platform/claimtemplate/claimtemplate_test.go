package claimtemplate

import (
	"encoding/json"
	"testing"
)

func TestExecute(t *testing.T) {
	var claims map[string]any
	if err := json.Unmarshal([]byte(`{
		"sub": "248289761001", "preferred_username": "  Alice.Smith ", "email": "Alice@Example.org",
		"email_verified": true, "age": 42, "org": {"name": "ACME"}, "groups": ["a", "b"], "nothing": null
	}`), &claims); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ template, want string }{
		{"{{ user.sub }}", "248289761001"},
		{"{{user.preferred_username|trim|lower}}", "alice.smith"},
		{"{{ user.email | localpart | lower }}", "alice"},
		{"{{ user.email | domain }}", "Example.org"},
		{"{{ user.email | upper }}", "ALICE@EXAMPLE.ORG"},
		{"{{ user.name }} ({{ user.org.name }})", "(ACME)"},
		{"gh-{{ user.age }}", "gh-42"},
		{"{{ user.email_verified }}", "true"},
		{"{{ user.groups }}", ""},
		{"{{ user.nothing }}", ""},
		{"{{ user.missing }}", ""},
		{"{{ user.org.name.deeper }}", ""},
		{"plain", "plain"},
		{"", ""},
	}
	for _, tt := range tests {
		tpl, err := Parse(tt.template)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.template, err)
		}
		if got := tpl.Execute(claims); got != tt.want {
			t.Errorf("%q renders %q, want %q", tt.template, got, tt.want)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for _, bad := range []string{
		"{{ user.email.split('@')[0] }}", // Jinja method calls are not supported
		"{{ email }}",
		"{{ user }}",
		"{{ user.email | replace('a', 'b') }}",
		"{{ user.email | nosuch }}",
		"{{ user.email",
		"user.email }}",
		"{% if user.email %}x{% endif %}",
		"{# comment #}",
		"{{ user..email }}",
		string(make([]byte, MaxLength+1)),
	} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) succeeded, want an error", bad)
		}
	}
}

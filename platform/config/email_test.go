package config_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"gatehouse.dev/platform/config"
)

func TestEmailSettingsFromFileAndEnv(t *testing.T) {
	path := writeFile(t, `
smtp:
  url: smtps://mailer:file-password@mail.example.org
email:
  from: Example Auth <noreply@example.org>
branding:
  service_name: Example Auth
`)
	c, err := config.Load(path, []string{
		"GATEHOUSE_SMTP_URL=smtp://mailer:env-password@mail.example.org:2525",
		"GATEHOUSE_EMAIL_REPLY_TO=support@example.org",
	})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	tests := []struct{ name, got, want string }{
		{"smtp.url from env over file", c.SMTP.URL, "smtp://mailer:env-password@mail.example.org:2525"},
		{"email.from from file", c.Email.From, "Example Auth <noreply@example.org>"},
		{"email.reply_to from env", c.Email.ReplyTo, "support@example.org"},
		{"branding.service_name from file", c.Branding.ServiceName, "Example Auth"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}
	if got := config.Default().Branding.ServiceName; got != "Gatehouse" {
		t.Errorf("default service name = %q, want Gatehouse", got)
	}
	if got := config.Default().SMTP.URL; got != "" {
		t.Errorf("default SMTP URL = %q, want empty (outbox)", got)
	}
}

func TestValidateEmailSettings(t *testing.T) {
	withSMTP := func(u string) func(c *config.Config) {
		return func(c *config.Config) { c.SMTP.URL, c.Email.From = u, "noreply@example.org" }
	}
	tests := []struct {
		name   string
		change func(c *config.Config)
		want   string // "" means valid
	}{
		{"outbox without from", func(c *config.Config) {}, ""},
		{"smtp with auth", withSMTP("smtp://user:pw@mail.example.org:587"), ""},
		{"smtp without auth or port", withSMTP("smtp://localhost"), ""},
		{"smtps", withSMTP("smtps://user:pw@mail.example.org"), ""},
		{"smtp ipv6", withSMTP("smtp://[::1]:2525"), ""},
		{"smtp trailing slash", withSMTP("smtp://mail.example.org/"), ""},
		{"smtp http scheme", withSMTP("http://user:hunter2@mail.example.org"), `smtp.url: scheme "http" is not one of smtp, smtps`},
		{"smtp no host", withSMTP("smtp://user:hunter2@:25"), "smtp.url: has no host"},
		{"smtp bad port", withSMTP("smtp://mail.example.org:0"), "smtp.url: does not have a port number 1..65535"},
		{"smtp path", withSMTP("smtp://mail.example.org/relay"), "smtp.url: must not have a path, query or fragment"},
		{"smtp query", withSMTP("smtp://mail.example.org?tls=off"), "smtp.url: must not have a path, query or fragment"},
		{"smtp password without user", withSMTP("smtp://:hunter2@mail.example.org"), "smtp.url: has a password but no user name"},
		{"smtp without from", func(c *config.Config) { c.SMTP.URL = "smtp://mail.example.org" }, "email.from: must be set when smtp.url is"},
		{"from with name", func(c *config.Config) { c.Email.From = `"Example, Inc." <noreply@example.org>` }, ""},
		{"from not an address", func(c *config.Config) { c.Email.From = "noreply" }, `email.from: "noreply" is not an email address`},
		{"from header injection", func(c *config.Config) { c.Email.From = "a@example.org\r\nBcc: victim@example.org" }, "email.from: must not contain control characters"},
		{"reply_to", func(c *config.Config) { c.Email.ReplyTo = "Support <support@example.org>" }, ""},
		{"reply_to bad", func(c *config.Config) { c.Email.ReplyTo = "support@" }, `email.reply_to: "support@" is not an email address`},
		{"service name empty", func(c *config.Config) { c.Branding.ServiceName = "" }, "branding.service_name: must not be empty"},
		{"service name control", func(c *config.Config) { c.Branding.ServiceName = "Evil\nSubject: x" }, "branding.service_name: must be printable text"},
		{"service name long", func(c *config.Config) { c.Branding.ServiceName = strings.Repeat("x", 65) }, "branding.service_name: is longer than 64 characters"},
		{"service name unicode", func(c *config.Config) { c.Branding.ServiceName = "Portão" }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := config.Default()
			tt.change(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.want == "":
			case err == nil:
				t.Fatalf("Validate() = nil, want %q", tt.want)
			case !strings.Contains(err.Error(), tt.want):
				t.Fatalf("Validate() = %q, want it to contain %q", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("validation message leaks the SMTP password: %v", err)
			}
		})
	}
}

func TestSMTPPasswordRedacted(t *testing.T) {
	c := config.Default()
	c.SMTP.URL = "smtps://mailer:smtp-secret-password@mail.example.org:465"
	c.Email.From = "noreply@example.org"
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("starting", "config", c)
	forms := map[string]string{
		"String":   c.String(),
		"%v":       fmt.Sprintf("%v", c),
		"%#v":      fmt.Sprintf("%#v", c),
		"json log": logs.String(),
	}
	for name, out := range forms {
		if strings.Contains(out, "smtp-secret-password") {
			t.Errorf("%s reveals the SMTP password:\n%s", name, out)
		}
	}
	if !strings.Contains(logs.String(), "smtps://mailer:xxxxx@mail.example.org:465") {
		t.Errorf("json log lacks the redacted SMTP URL:\n%s", logs.String())
	}
	if c.SMTP.URL != "smtps://mailer:smtp-secret-password@mail.example.org:465" {
		t.Errorf("Redacted changed the original config")
	}
	out, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	for _, note := range []string{"# Env: GATEHOUSE_SMTP_URL", "# Env: GATEHOUSE_EMAIL_FROM", "# Env: GATEHOUSE_EMAIL_REPLY_TO", "# Env: GATEHOUSE_BRANDING_SERVICE_NAME"} {
		if !bytes.Contains(out, []byte(note)) {
			t.Errorf("template lacks %q", note)
		}
	}
}

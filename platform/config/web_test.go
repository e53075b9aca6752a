package config_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"gatehouse.dev/platform/config"
)

// webSecret is a valid web.secret: 32 characters, the least accepted.
const webSecret = "web-secret-0123456789abcdefghijk"

func TestWebSecretLoad(t *testing.T) {
	tests := []struct {
		name    string
		file    string // "" for no file
		env     []string
		want    string // the secret loaded, when wantErr is ""
		wantErr string
	}{
		{name: "unset is empty (random per process)", want: ""},
		{name: "from env", env: []string{"GATEHOUSE_WEB_SECRET=" + webSecret}, want: webSecret},
		{name: "from file", file: "web:\n  secret: " + webSecret + "\n", want: webSecret},
		{name: "env over file", file: "web:\n  secret: " + strings.Repeat("f", 40) + "\n", env: []string{"GATEHOUSE_WEB_SECRET=" + webSecret}, want: webSecret},
		{name: "empty env leaves file", file: "web:\n  secret: " + webSecret + "\n", env: []string{"GATEHOUSE_WEB_SECRET="}, want: webSecret},
		{name: "too short from env", env: []string{"GATEHOUSE_WEB_SECRET=short-secret"}, wantErr: "web.secret: is 12 characters, want at least 32"},
		{name: "one short of the minimum", env: []string{"GATEHOUSE_WEB_SECRET=" + webSecret[1:]}, wantErr: "web.secret: is 31 characters, want at least 32"},
		{name: "too short from file", file: "web:\n  secret: hunter2\n", wantErr: "web.secret: is 7 characters, want at least 32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := ""
			if tt.file != "" {
				path = writeFile(t, tt.file)
			}
			c, err := config.Load(path, tt.env)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Load: %v", err)
			case tt.wantErr == "":
				if got := string(c.Web.Secret); got != tt.want {
					t.Errorf("web.secret = %q, want %q", got, tt.want)
				}
			case err == nil:
				t.Fatalf("Load succeeded, want %q", tt.wantErr)
			case !strings.Contains(err.Error(), tt.wantErr):
				t.Errorf("Load error %q does not contain %q", err, tt.wantErr)
			case strings.Contains(err.Error(), "short-secret") || strings.Contains(err.Error(), "hunter2"):
				t.Errorf("the error reveals the secret: %v", err)
			}
		})
	}
}

func TestWebSecretRedacted(t *testing.T) {
	c := config.Default()
	c.Web.Secret = webSecret
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	var logs, text bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("starting", "config", c)
	slog.New(slog.NewTextHandler(&text, nil)).Info("starting", "config", c, "web", c.Web)
	forms := map[string]string{
		"String":    c.String(),
		"%v":        fmt.Sprintf("%v", c),
		"%+v":       fmt.Sprintf("%+v", c),
		"%#v":       fmt.Sprintf("%#v", c),
		"web %+v":   fmt.Sprintf("%+v", c.Web),
		"web %#v":   fmt.Sprintf("%#v", c.Web),
		"secret %s": fmt.Sprintf("%s %v %#v", c.Web.Secret, c.Web.Secret, c.Web.Secret),
		"json log":  logs.String(),
		"text log":  text.String(),
	}
	for name, out := range forms {
		if strings.Contains(out, webSecret) {
			t.Errorf("%s reveals the web secret:\n%s", name, out)
		}
	}
	if !strings.Contains(logs.String(), `"web_secret":"[redacted]"`) {
		t.Errorf("json log does not show that the web secret is set:\n%s", logs.String())
	}
	if string(c.Web.Secret) != webSecret {
		t.Error("Redacted changed the original config")
	}
	if got := config.Default().Redacted().Web.Secret; got != "" {
		t.Errorf("an empty web secret redacts to %q, want empty", got)
	}
}

// The template documents web.secret and its variable, and a config file
// written from a Config keeps the secret.
func TestWebSecretYAML(t *testing.T) {
	want := config.Default()
	want.Web.Secret = webSecret
	out, err := want.YAML()
	if err != nil {
		t.Fatalf("YAML: %v", err)
	}
	for _, note := range []string{"# Env: GATEHOUSE_WEB_SECRET", "every web replica", "at least 32 characters"} {
		if !bytes.Contains(out, []byte(note)) {
			t.Errorf("template lacks %q:\n%s", note, out)
		}
	}
	got, err := config.Load(writeFile(t, string(out)), nil)
	if err != nil {
		t.Fatalf("Load of generated YAML: %v\n%s", err, out)
	}
	if string(got.Web.Secret) != webSecret {
		t.Errorf("YAML did not keep the web secret for the config file")
	}
}

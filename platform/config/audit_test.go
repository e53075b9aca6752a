package config_test

import (
	"strings"
	"testing"
	"time"

	"gatehouse.dev/platform/config"
)

func TestAuditRetention(t *testing.T) {
	if got := config.Default().Audit.Retention; got != 365*24*time.Hour {
		t.Errorf("default retention %s, want a year", got)
	}
	tests := []struct {
		name    string
		environ []string
		want    time.Duration
		err     string
	}{
		{"for ever", []string{"GATEHOUSE_AUDIT_RETENTION=0s"}, 0, ""},
		{"thirty days", []string{"GATEHOUSE_AUDIT_RETENTION=720h"}, 720 * time.Hour, ""},
		{"an hour", []string{"GATEHOUSE_AUDIT_RETENTION=1h"}, time.Hour, ""},
		{"below an hour", []string{"GATEHOUSE_AUDIT_RETENTION=59m"}, 0, "audit.retention: 59m0s is neither 0"},
		{"negative", []string{"GATEHOUSE_AUDIT_RETENTION=-1h"}, 0, "audit.retention"},
		{"no duration", []string{"GATEHOUSE_AUDIT_RETENTION=a year"}, 0, "GATEHOUSE_AUDIT_RETENTION"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Load("", tt.environ)
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("Load() = %v", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Fatalf("Load() = %v, want %q", err, tt.err)
			case tt.err == "" && c.Audit.Retention != tt.want:
				t.Errorf("retention %s, want %s", c.Audit.Retention, tt.want)
			}
		})
	}
	path := writeFile(t, "audit:\n  retention: 2160h\n")
	c, err := config.Load(path, nil)
	if err != nil || c.Audit.Retention != 2160*time.Hour {
		t.Errorf("from YAML: %s, %v", c.Audit.Retention, err)
	}
}

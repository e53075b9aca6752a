package password

import (
	"strings"
	"testing"

	"gatehouse.dev/platform/errs"
)

func TestCheckPolicy(t *testing.T) {
	tests := []struct {
		name     string
		password string
		wantErr  string // substring of the public message; "" for valid
	}{
		{"eight characters", "abcdefgh", ""},
		{"passphrase with spaces", "correct horse battery staple", ""},
		{"eight multi-byte characters", "ééééééé€", ""},
		{"surrounding spaces count", " abcdef ", ""},
		{"longest", strings.Repeat("a", MaxBytes), ""},
		{"empty", "", "at least 8 characters"},
		{"seven characters", "abcdefg", "at least 8 characters"},
		{"seven characters in more than eight bytes", "ééééééé", "at least 8 characters"},
		{"one byte too long", strings.Repeat("a", MaxBytes+1), "at most 1024 bytes"},
		{"too many bytes in fewer characters", strings.Repeat("€", 400), "at most 1024 bytes"},
		{"spaces only", "        ", "spaces only"},
		{"mixed whitespace only", " \t \n \u00a0\u3000 ", "spaces only"},
		{"invalid UTF-8", "abcdefgh\xff", "valid text"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckPolicy(tt.password)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckPolicy = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("CheckPolicy = nil, want %q", tt.wantErr)
			}
			if kind := errs.KindOf(err); kind != errs.KindInvalid {
				t.Errorf("kind = %v, want invalid", kind)
			}
			if field := errs.FieldOf(err); field != "password" {
				t.Errorf("field = %q, want password", field)
			}
			if msg := errs.PublicMessage(err); !strings.Contains(msg, tt.wantErr) {
				t.Errorf("message %q does not contain %q", msg, tt.wantErr)
			}
		})
	}
}

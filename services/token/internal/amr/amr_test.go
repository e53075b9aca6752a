package amr

import (
	"slices"
	"testing"
)

func TestValues(t *testing.T) {
	for _, tc := range []struct {
		methods []string
		amr     []string
		acr     string
	}{
		{nil, nil, ACRSingleFactor},
		{[]string{"password"}, []string{"pwd"}, ACRSingleFactor},
		{[]string{"password", "totp"}, []string{"pwd", "otp", "mfa"}, ACRMultiFactor},
		{[]string{"password", "recovery_code"}, []string{"pwd", "otp", "mfa"}, ACRMultiFactor},
		{[]string{"passkey"}, []string{"hwk", "user", "mfa"}, ACRMultiFactor},
		{[]string{"upstream"}, []string{"fed"}, ACRSingleFactor},
		{[]string{"upstream", "totp"}, []string{"fed", "otp", "mfa"}, ACRMultiFactor},
	} {
		if got := Values(tc.methods); !slices.Equal(got, tc.amr) {
			t.Errorf("Values(%v) = %v, want %v", tc.methods, got, tc.amr)
		}
		if got := ACR(tc.methods); got != tc.acr {
			t.Errorf("ACR(%v) = %v, want %v", tc.methods, got, tc.acr)
		}
	}
}

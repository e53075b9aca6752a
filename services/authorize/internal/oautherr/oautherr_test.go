package oautherr

import (
	"errors"
	"fmt"
	"testing"

	"gatehouse.dev/platform/errs"
)

func TestError(t *testing.T) {
	err := Errorf(InvalidScope, "scope %q is not supported", "profile")
	if got, want := err.Error(), `invalid_scope: scope "profile" is not supported`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	wrapped := fmt.Errorf("authorize: %w", err)
	var oe *Error
	if !errors.As(wrapped, &oe) || oe.Code != InvalidScope {
		t.Fatalf("errors.As found %v", oe)
	}
	if got := errs.KindOf(wrapped); got != errs.KindInvalid {
		t.Errorf("KindOf = %v, want invalid", got)
	}
	if got, want := errs.PublicMessage(wrapped), `scope "profile" is not supported`; got != want {
		t.Errorf("PublicMessage = %q, want %q", got, want)
	}
}

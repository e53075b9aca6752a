package oautherr_test

import (
	"errors"
	"fmt"
	"testing"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/oautherr"
)

func TestNew(t *testing.T) {
	tests := []struct {
		code   string
		kind   errs.Kind
		status int
	}{
		{oautherr.InvalidRequest, errs.KindInvalid, 400},
		{oautherr.InvalidClient, errs.KindUnauthenticated, 401},
		{oautherr.InvalidGrant, errs.KindFailedPrecondition, 400},
		{oautherr.UnauthorizedClient, errs.KindPermissionDenied, 400},
		{oautherr.InvalidScope, errs.KindInvalid, 400},
		{oautherr.SlowDown, errs.KindRateLimited, 400},
		{oautherr.InvalidToken, errs.KindUnauthenticated, 401},
		{oautherr.InsufficientScope, errs.KindPermissionDenied, 403},
		{oautherr.ServerError, errs.KindInternal, 0},
		{oautherr.TemporarilyUnavailable, errs.KindUnavailable, 0},
		{"something_else", errs.KindInvalid, 0},
	}
	for _, tt := range tests {
		err := fmt.Errorf("wrapped: %w", oautherr.Errorf(tt.code, "about %s", "it"))
		if errs.KindOf(err) != tt.kind || errs.CodeOf(err) != tt.code || errs.PublicMessage(err) != "about it" || oautherr.Status(tt.code) != tt.status {
			t.Errorf("%s: kind %v, code %q, message %q, status %d", tt.code, errs.KindOf(err), errs.CodeOf(err), errs.PublicMessage(err), oautherr.Status(tt.code))
		}
	}
}

func TestOf(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		fallback string
		want     string
	}{
		{"own code", oautherr.New(oautherr.InvalidScope, "x"), "", "invalid_scope"},
		{"own code over fallback", oautherr.New(oautherr.InvalidRedirectURI, "x"), oautherr.InvalidClientMetadata, "invalid_redirect_uri"},
		{"fallback", errs.Invalid("x"), oautherr.InvalidScope, "invalid_scope"},
		{"kind default", errs.NotFound("x"), "", "invalid_grant"},
		{"a Matrix code", errs.Coded(errs.KindInvalid, "M_BAD_JSON", "x"), "", "invalid_request"},
		{"server fault", errs.Wrap(errs.KindUnavailable, "x", errors.New("y")), oautherr.InvalidScope, "temporarily_unavailable"},
		{"plain error", errors.New("y"), oautherr.InvalidScope, "server_error"},
	}
	for _, tt := range tests {
		if got := oautherr.Of(tt.err, tt.fallback); got != tt.want {
			t.Errorf("%s: Of = %q, want %q", tt.name, got, tt.want)
		}
	}
}

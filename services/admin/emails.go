package admin

import (
	"context"
	"fmt"
	"net/http"

	"gatehouse.dev/platform/errs"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	pagingv1 "gatehouse.dev/proto/gatehouse/paging/v1"
)

// Users' email addresses: the accounts service's, each with an id derived
// from when and what it is.

type emailAttributes struct {
	CreatedAt string `json:"created_at"`
	UserID    string `json:"user_id"`
	Email     string `json:"email"`
}

func (s *Service) emailResource(e *accountsv1.Email) resource {
	return s.resource(userEmails, e.GetEmailId(), emailAttributes{CreatedAt: rfc3339v(e.GetAddedAt()), UserID: e.GetUserId(), Email: e.GetEmail()})
}

func (s *Service) listEmails(ctx context.Context, r *request) (reply, error) {
	pr, err := r.query.page()
	if err != nil {
		return reply{}, err
	}
	user, err := r.query.ulid("filter[user]")
	if err != nil {
		return reply{}, err
	}
	resp, err := s.accounts.ListEmails(ctx, &accountsv1.ListEmailsRequest{Page: pr, UserId: user, Email: r.query.get("filter[email]")})
	if err != nil {
		return reply{}, err
	}
	items := make([]resource, 0, len(resp.GetEmails()))
	for _, e := range resp.GetEmails() {
		items = append(items, s.emailResource(e))
	}
	return s.page(r, userEmails, pr, resp.GetPage(), items), nil
}

func (s *Service) addEmail(ctx context.Context, r *request) (reply, error) {
	var in struct {
		UserID string `json:"user_id"`
		Email  string `json:"email"`
	}
	if err := r.decode(&in); err != nil {
		return reply{}, err
	}
	if in.UserID == "" || in.Email == "" {
		return reply{}, badRequest("user_id and email are required")
	}
	// An address is one user's at a time, and added once (accounts answers
	// an address the user already holds as done; MAS as a conflict).
	held, err := s.accounts.ListEmails(ctx, &accountsv1.ListEmailsRequest{Email: in.Email, Page: &pagingv1.PageRequest{First: 1}})
	if errs.KindOf(err) == errs.KindInvalid {
		return reply{}, badRequest(errs.PublicMessage(err))
	}
	if err != nil {
		return reply{}, err
	}
	if len(held.GetEmails()) > 0 {
		return reply{}, &apiError{status: http.StatusConflict, title: "User email " + in.Email + " already in use"}
	}
	resp, err := s.accounts.AddEmail(ctx, &accountsv1.AddEmailRequest{UserId: in.UserID, Email: in.Email, SkipVerification: true})
	switch errs.KindOf(err) {
	case errs.KindAlreadyExists:
		return reply{}, &apiError{status: http.StatusConflict, title: "User email " + in.Email + " already in use"}
	case errs.KindNotFound:
		return reply{}, &apiError{status: http.StatusNotFound, title: fmt.Sprintf("User ID %s not found", in.UserID)}
	}
	if err != nil {
		return reply{}, err
	}
	for _, e := range resp.GetEmails() {
		if e.GetEmail() == in.Email || equalFoldASCII(e.GetEmail(), in.Email) {
			return reply{status: http.StatusCreated, body: single{Data: s.emailResource(e), Links: s.emailResource(e).Links}}, nil
		}
	}
	return reply{}, errs.Internalf("admin: the address added is not among the user's")
}

// equalFoldASCII compares addresses as accounts normalises them (lower case).
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

func (s *Service) getEmail(ctx context.Context, r *request) (reply, error) {
	id, err := pathID(r)
	if err != nil {
		return reply{}, err
	}
	resp, err := s.accounts.GetEmail(ctx, &accountsv1.GetEmailRequest{EmailId: id})
	if err != nil {
		return reply{}, notFound(err, "User email", id)
	}
	res := s.emailResource(resp.GetEmail())
	return reply{status: http.StatusOK, body: single{Data: res, Links: res.Links}}, nil
}

func (s *Service) deleteEmail(ctx context.Context, r *request) (reply, error) {
	id, err := pathID(r)
	if err != nil {
		return reply{}, err
	}
	resp, err := s.accounts.GetEmail(ctx, &accountsv1.GetEmailRequest{EmailId: id})
	if err != nil {
		return reply{}, notFound(err, "User email", id)
	}
	e := resp.GetEmail()
	if _, err := s.accounts.RemoveEmail(ctx, &accountsv1.RemoveEmailRequest{UserId: e.GetUserId(), Email: e.GetEmail()}); err != nil {
		return reply{}, notFound(err, "User email", id)
	}
	return reply{status: http.StatusNoContent}, nil
}

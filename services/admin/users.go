package admin

import (
	"context"
	"fmt"
	"net/http"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/ids"
	accountsv1 "gatehouse.dev/proto/gatehouse/accounts/v1"
	pagingv1 "gatehouse.dev/proto/gatehouse/paging/v1"
	tokenv1 "gatehouse.dev/proto/gatehouse/token/v1"
)

// Users: the accounts service's, as MAS shows them.

// userAttributes is a user as the API shows it.
type userAttributes struct {
	Username      string  `json:"username"`
	CreatedAt     string  `json:"created_at"`
	LockedAt      *string `json:"locked_at"`
	DeactivatedAt *string `json:"deactivated_at"`
	Admin         bool    `json:"admin"`
	LegacyGuest   bool    `json:"legacy_guest"`
}

func (s *Service) userResource(u *accountsv1.User) resource {
	return s.resource(users, u.GetId(), userAttributes{
		Username: u.GetUsername(), CreatedAt: rfc3339v(u.GetCreatedAt()), LockedAt: rfc3339(u.GetLockedAt()),
		DeactivatedAt: rfc3339(u.GetDeactivatedAt()), Admin: u.GetAdmin(),
	})
}

func (s *Service) userReply(status int, u *accountsv1.User) reply {
	r := s.userResource(u)
	return reply{status: status, body: single{Data: r, Links: r.Links}}
}

// pathID reads the {id} path parameter, a ULID.
func pathID(r *request) (string, error) {
	id := r.path("id")
	if !ids.Valid(id) {
		return "", badRequest("Invalid ULID in path")
	}
	return id, nil
}

// notFound words a service's NOT_FOUND as MAS does ("User ID … not found").
func notFound(err error, what, id string) error {
	if errs.KindOf(err) == errs.KindNotFound {
		return &apiError{status: http.StatusNotFound, title: fmt.Sprintf("%s ID %s not found", what, id)}
	}
	return err
}

func (s *Service) listUsers(ctx context.Context, r *request) (reply, error) {
	pr, err := r.query.page()
	if err != nil {
		return reply{}, err
	}
	req := &accountsv1.ListUsersRequest{Page: pr, Search: r.query.get("filter[search]")}
	if req.Admin, err = r.query.boolean("filter[admin]"); err != nil {
		return reply{}, err
	}
	guest, err := r.query.boolean("filter[legacy-guest]")
	if err != nil {
		return reply{}, err
	}
	status, err := r.query.enum("filter[status]")
	if err != nil {
		return reply{}, err
	}
	req.Status = map[string]accountsv1.UserStatus{
		"active": accountsv1.UserStatus_USER_STATUS_ACTIVE, "locked": accountsv1.UserStatus_USER_STATUS_LOCKED_OR_DEACTIVATED,
		"deactivated": accountsv1.UserStatus_USER_STATUS_DEACTIVATED,
	}[status]
	// The sessions are the token service's; accounts follows their events.
	req.ActiveOauth2Clients = r.query.all("filter[active-oauth2-client]")
	if err := s.knownClients(ctx, "filter[active-oauth2-client]", req.ActiveOauth2Clients); err != nil {
		return reply{}, err
	}
	if req.HasActiveOauth2Session, err = r.query.boolean("filter[has-active-oauth2-session]"); err != nil {
		return reply{}, err
	}
	if req.HasActiveCompatSession, err = r.query.boolean("filter[has-active-compat-session]"); err != nil {
		return reply{}, err
	}
	if guest != nil && *guest {
		// No user of Gatehouse was ever a guest.
		zero := int64(0)
		info := &pagingv1.PageInfo{}
		if pr.GetCount() != pagingv1.Count_COUNT_UNSPECIFIED {
			info.Total = &zero
		}
		return s.page(r, users, pr, info, nil), nil
	}
	resp, err := s.accounts.ListUsers(ctx, req)
	if err != nil {
		return reply{}, err
	}
	items := make([]resource, 0, len(resp.GetUsers()))
	for _, u := range resp.GetUsers() {
		items = append(items, s.userResource(u))
	}
	return s.page(r, users, pr, resp.GetPage(), items), nil
}

// addUserRequest is MAS's AddUserRequest.
type addUserRequest struct {
	Username            string  `json:"username"`
	SkipHomeserverCheck bool    `json:"skip_homeserver_check"`
	Displayname         *string `json:"displayname"`
	AvatarURL           *string `json:"avatar_url"` // no avatars here: ignored
}

func (s *Service) createUser(ctx context.Context, r *request) (reply, error) {
	var in addUserRequest
	if err := r.decode(&in); err != nil {
		return reply{}, err
	}
	if in.Username == "" {
		return reply{}, badRequest("username is required")
	}
	if !in.SkipHomeserverCheck {
		avail, err := s.token.IsLocalpartAvailable(ctx, &tokenv1.IsLocalpartAvailableRequest{Localpart: in.Username})
		if errs.KindOf(err) == errs.KindInvalid {
			return reply{}, badRequest(errs.PublicMessage(err))
		}
		if err != nil {
			return reply{}, err
		}
		if !avail.GetAvailable() {
			return reply{}, &apiError{status: http.StatusConflict, title: fmt.Sprintf("User %q already exists on the homeserver", in.Username)}
		}
	}
	req := &accountsv1.RegisterRequest{Username: in.Username}
	if in.Displayname != nil {
		req.DisplayName = *in.Displayname
	}
	resp, err := s.accounts.Register(ctx, req)
	if errs.KindOf(err) == errs.KindAlreadyExists {
		return reply{}, &apiError{status: http.StatusConflict, title: fmt.Sprintf("User %q already exists", in.Username)}
	}
	if err != nil {
		return reply{}, err
	}
	return s.userReply(http.StatusCreated, resp.GetUser()), nil
}

func (s *Service) getUser(ctx context.Context, r *request) (reply, error) {
	id, err := pathID(r)
	if err != nil {
		return reply{}, err
	}
	resp, err := s.accounts.GetUser(ctx, &accountsv1.GetUserRequest{UserId: id})
	if err != nil {
		return reply{}, notFound(err, "User", id)
	}
	return s.userReply(http.StatusOK, resp.GetUser()), nil
}

func (s *Service) getUserByUsername(ctx context.Context, r *request) (reply, error) {
	name := r.path("username")
	resp, err := s.accounts.GetUserByUsername(ctx, &accountsv1.GetUserByUsernameRequest{Username: name})
	if k := errs.KindOf(err); k == errs.KindNotFound || k == errs.KindInvalid {
		return reply{}, &apiError{status: http.StatusNotFound, title: fmt.Sprintf("User with username %q not found", name)}
	}
	if err != nil {
		return reply{}, err
	}
	return s.userReply(http.StatusOK, resp.GetUser()), nil
}

// setPasswordRequest is MAS's SetUserPasswordRequest.
type setPasswordRequest struct {
	Password          string `json:"password"`
	SkipPasswordCheck *bool  `json:"skip_password_check"` // the policy always applies
}

func (s *Service) setPassword(ctx context.Context, r *request) (reply, error) {
	id, err := pathID(r)
	if err != nil {
		return reply{}, err
	}
	var in setPasswordRequest
	if err := r.decode(&in); err != nil {
		return reply{}, err
	}
	if in.Password == "" {
		return reply{}, badRequest("password is required")
	}
	if _, err := s.accounts.SetPassword(ctx, &accountsv1.SetPasswordRequest{UserId: id, NewPassword: in.Password}); err != nil {
		return reply{}, notFound(err, "User", id)
	}
	return reply{status: http.StatusNoContent}, nil
}

func (s *Service) setAdmin(ctx context.Context, r *request) (reply, error) {
	id, err := pathID(r)
	if err != nil {
		return reply{}, err
	}
	var in struct {
		Admin *bool `json:"admin"`
	}
	if err := r.decode(&in); err != nil {
		return reply{}, err
	}
	if in.Admin == nil {
		return reply{}, badRequest("admin is required")
	}
	resp, err := s.accounts.SetAdmin(ctx, &accountsv1.SetAdminRequest{UserId: id, Admin: *in.Admin})
	if err != nil {
		return reply{}, notFound(err, "User", id)
	}
	return s.userReply(http.StatusOK, resp.GetUser()), nil
}

func (s *Service) deactivateUser(ctx context.Context, r *request) (reply, error) {
	id, err := pathID(r)
	if err != nil {
		return reply{}, err
	}
	var in struct {
		SkipErase bool `json:"skip_erase"`
	}
	if err := r.decodeOptional(&in); err != nil {
		return reply{}, err
	}
	resp, err := s.accounts.DeactivateUser(ctx, &accountsv1.DeactivateUserRequest{UserId: id, Erase: !in.SkipErase})
	if err != nil {
		return reply{}, notFound(err, "User", id)
	}
	return s.userReply(http.StatusOK, resp.GetUser()), nil
}

// userChange runs a change of a user that takes only its id.
func (s *Service) userChange(r *request, call func(id string) (*accountsv1.User, error)) (reply, error) {
	id, err := pathID(r)
	if err != nil {
		return reply{}, err
	}
	u, err := call(id)
	if err != nil {
		return reply{}, notFound(err, "User", id)
	}
	return s.userReply(http.StatusOK, u), nil
}

func (s *Service) reactivateUser(ctx context.Context, r *request) (reply, error) {
	return s.userChange(r, func(id string) (*accountsv1.User, error) {
		resp, err := s.accounts.ReactivateUser(ctx, &accountsv1.ReactivateUserRequest{UserId: id})
		return resp.GetUser(), err
	})
}

func (s *Service) lockUser(ctx context.Context, r *request) (reply, error) {
	return s.userChange(r, func(id string) (*accountsv1.User, error) {
		resp, err := s.accounts.LockUser(ctx, &accountsv1.LockUserRequest{UserId: id, Reason: "locked through the admin API"})
		return resp.GetUser(), err
	})
}

func (s *Service) unlockUser(ctx context.Context, r *request) (reply, error) {
	return s.userChange(r, func(id string) (*accountsv1.User, error) {
		resp, err := s.accounts.UnlockUser(ctx, &accountsv1.UnlockUserRequest{UserId: id})
		return resp.GetUser(), err
	})
}

// handleSiteConfig answers the deployment's configuration.
func (s *Service) handleSiteConfig(context.Context, *request) (reply, error) {
	return reply{status: http.StatusOK, body: s.cfg.Site}, nil
}

// handleVersion answers the running version.
func (s *Service) handleVersion(context.Context, *request) (reply, error) {
	return reply{status: http.StatusOK, body: map[string]string{"version": s.cfg.Version}}, nil
}

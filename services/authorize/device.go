package authorize

import (
	"context"
	"crypto/subtle"
	"errors"
	"mime"
	"net/http"
	"net/url"

	"gatehouse.dev/platform/errs"
	"gatehouse.dev/platform/eventlog"
	"gatehouse.dev/platform/httpx"
	"gatehouse.dev/platform/ids"
	eventsv1 "gatehouse.dev/proto/gatehouse/events/v1"
	"gatehouse.dev/services/authorize/internal/clientmeta"
	"gatehouse.dev/services/authorize/internal/device"
	"gatehouse.dev/services/authorize/internal/grant"
	"gatehouse.dev/services/authorize/internal/oautherr"
	"gatehouse.dev/services/authorize/internal/scope"
)

// maxDeviceBody bounds a device authorization request.
const maxDeviceBody = 64 << 10

// deviceError is an OAuth error answer of the device authorization endpoint.
type deviceError struct {
	status            int
	code, description string
}

func deviceInvalidClient(desc string) *deviceError {
	return &deviceError{status: http.StatusUnauthorized, code: "invalid_client", description: desc}
}

func deviceInvalidRequest(desc string) *deviceError {
	return &deviceError{status: http.StatusBadRequest, code: oautherr.InvalidRequest, description: desc}
}

// handleDeviceAuthorization is the device authorization endpoint (RFC 8628
// §3.1–3.2): a device asks for access and gets a device code to poll the
// token endpoint with and a user code for the person to type at /link.
func (s *Service) handleDeviceAuthorization(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	form, de := readDeviceForm(w, r)
	if de == nil {
		if ok, status := s.admit(w, r, s.cfg.Limits.DeviceAuthorization); !ok {
			httpx.WriteOAuthError(w, status, "temporarily_unavailable", tooManyText(status, "device authorization requests"))
			return
		}
		var resp map[string]any
		resp, de = s.deviceAuthorization(r.Context(), r, form)
		if de == nil {
			httpx.WriteJSON(w, http.StatusOK, resp)
			return
		}
	}
	httpx.WriteOAuthError(w, de.status, de.code, de.description)
}

// readDeviceForm reads an application/x-www-form-urlencoded POST body.
func readDeviceForm(w http.ResponseWriter, r *http.Request) (url.Values, *deviceError) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		return nil, &deviceError{status: http.StatusMethodNotAllowed, code: oautherr.InvalidRequest, description: "use POST"}
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, deviceInvalidRequest("the body must be application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxDeviceBody)
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, deviceInvalidRequest("the body is larger than 64 KiB")
		}
		return nil, deviceInvalidRequest("the body is not valid form encoding")
	}
	for k, v := range r.PostForm {
		if len(v) > 1 {
			return nil, deviceInvalidRequest("the parameter " + k + " appears more than once")
		}
	}
	return r.PostForm, nil
}

func (s *Service) deviceAuthorization(ctx context.Context, r *http.Request, form url.Values) (map[string]any, *deviceError) {
	c, de := s.authenticateDeviceClient(ctx, r, form)
	if de != nil {
		return nil, de
	}
	if !contains(c.Meta.GrantTypes, clientmeta.GrantDeviceCode) {
		return nil, &deviceError{status: http.StatusBadRequest, code: "unauthorized_client", description: "this client is not registered for the " + clientmeta.GrantDeviceCode + " grant"}
	}
	scopes, err := scope.Parse(form.Get("scope"))
	if err == nil {
		_, err = scope.Interpret(scopes)
	}
	if err != nil {
		oe := asOAuth(err, oautherr.InvalidScope)
		return nil, &deviceError{status: http.StatusBadRequest, code: oe.Code, description: oe.Description}
	}
	unavailable := &deviceError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable", description: "the device authorization cannot be recorded right now; try again"}
	now := s.now()
	userCode, err := s.freshUserCode(ctx)
	if err != nil {
		s.logger.ErrorContext(ctx, "draw a user code", "err", err)
		return nil, unavailable
	}
	id, deviceCode := ids.New(), device.NewDeviceCode()
	appended, err := s.log.Append(ctx, eventlog.Write{Expect: eventlog.ExpectNew(), Event: eventlog.Event{
		Aggregate: deviceRef(id), Actor: "client:" + c.ID,
		Payload: &eventsv1.DeviceAuthorizationRequested{
			DeviceGrantId: id, ClientId: c.ID, Scope: scopes.String(),
			DeviceCodeHash: device.Hash(deviceCode), UserCodeHash: device.Hash(userCode),
			ExpiresAt: grant.Timestamp(now.Add(device.Lifetime)), Interval: int32(device.Interval.Seconds()),
		},
	}})
	if err == nil {
		// The person may type the code before the device shows it twice.
		err = s.projections.WaitFor(ctx, devicesProjection, appended.Last())
	}
	if err != nil {
		s.logger.ErrorContext(ctx, "record device authorization", "err", err)
		return nil, unavailable
	}
	shown := device.FormatUserCode(userCode)
	return map[string]any{
		"device_code":               deviceCode,
		"user_code":                 shown,
		"verification_uri":          s.endpoint("link"),
		"verification_uri_complete": s.endpoint("link") + "?" + url.Values{"code": {shown}}.Encode(),
		"expires_in":                int(device.Lifetime.Seconds()),
		"interval":                  int(device.Interval.Seconds()),
	}, nil
}

// freshUserCode draws a user code no live device grant has.
func (s *Service) freshUserCode(ctx context.Context) (string, error) {
	for range 5 {
		code := device.NewUserCode()
		var taken bool
		err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM devices WHERE user_code_hash = $1 AND expires_at > $2)`,
			device.Hash(code), s.now()).Scan(&taken)
		if err != nil {
			return "", err
		}
		if !taken {
			return code, nil
		}
	}
	return "", errors.New("no free user code after 5 draws")
}

// authenticateDeviceClient authenticates the client of a device
// authorization request as the token endpoint does (RFC 6749 §2.3.1): public
// clients send their client_id, clients with a secret send it with HTTP
// Basic or in the body, whichever they registered. The secret is compared
// by its SHA-256 in constant time. private_key_jwt clients cannot use this
// endpoint: the assertion replay cache lives in the token service.
func (s *Service) authenticateDeviceClient(ctx context.Context, r *http.Request, form url.Values) (*client, *deviceError) {
	basicID, basicSecret, hasBasic := r.BasicAuth()
	if hasBasic {
		var err1, err2 error
		basicID, err1 = url.QueryUnescape(basicID)
		basicSecret, err2 = url.QueryUnescape(basicSecret)
		if err1 != nil || err2 != nil {
			return nil, deviceInvalidClient("malformed Basic credentials")
		}
	}
	postSecret, hasPost := form.Get("client_secret"), form.Has("client_secret")
	if form.Has("client_assertion") {
		return nil, deviceInvalidClient("client assertions (private_key_jwt) are not supported at the device authorization endpoint")
	}
	if hasBasic && hasPost {
		return nil, deviceInvalidRequest("use exactly one client authentication method")
	}
	id := form.Get("client_id")
	if hasBasic {
		if id != "" && id != basicID {
			return nil, deviceInvalidRequest("client_id differs from the authenticated client")
		}
		id = basicID
	}
	if id == "" {
		return nil, deviceInvalidClient("client authentication is required")
	}
	c, err := s.client(ctx, id)
	if err != nil {
		if errs.KindOf(err) == errs.KindNotFound {
			return nil, deviceInvalidClient("unknown client")
		}
		s.logger.ErrorContext(ctx, "read client", "err", err)
		return nil, &deviceError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable", description: "clients cannot be checked right now"}
	}
	method := c.Meta.TokenEndpointAuthMethod
	if method == "" {
		method = clientmeta.AuthClientSecretBasic
	}
	switch {
	case method == clientmeta.AuthClientSecretBasic && hasBasic, method == clientmeta.AuthClientSecretPost && hasPost:
		secret := basicSecret
		if hasPost {
			secret = postSecret
		}
		if c.SecretHash == "" || subtle.ConstantTimeCompare([]byte(SecretHash(secret)), []byte(c.SecretHash)) != 1 {
			return nil, deviceInvalidClient("client authentication failed")
		}
	case method == clientmeta.AuthNone && !hasBasic && !hasPost:
	default:
		return nil, deviceInvalidClient("the client must authenticate with " + method)
	}
	return c, nil
}

// deviceRef names a device grant's aggregate.
func deviceRef(id string) eventlog.Ref {
	return eventlog.Ref{Type: eventsv1.AuthorizeDevice.Type, ID: id}
}

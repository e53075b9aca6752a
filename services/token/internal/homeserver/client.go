// Package homeserver is a client of Synapse's homeserver-side API for an
// authentication service, /_synapse/mas/ (the endpoints MAS calls in its
// "modern" mode): users are provisioned, deactivated and reactivated there, and
// their devices created and deleted, so that the homeserver knows every user
// and device a token names.
//
// Every call authenticates with "Authorization: Bearer <matrix.secret>", takes
// a context, has a timeout, and fails with an *Error that names the call and
// says whether repeating it later may succeed (Retryable). Every call is
// idempotent, so a caller retries a retryable failure as it is.
//
// The package also holds the pure half of provisioning: folding a user's
// events into what the homeserver should know (UserState) and deciding the
// calls an event needs (UserChanges).
//
// Requests and answers follow Synapse's synapse/rest/synapse/mas/*.py (and
// MAS's crates/matrix-synapse/src/modern.rs). Where the reference is silent:
//   - provision_user gets "locked" as MAS sends it; a Synapse that predates
//     the field ignores it (its request models ignore unknown fields), and
//     the lock is then Gatehouse's alone.
//   - set_X and unset_X are never both present: Synapse refuses the pair even
//     when one of them is false.
//   - A 2xx with an unreadable body, a timeout and a dropped connection are
//     retryable; a redirect is not followed and counts as a refusal.
package homeserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultTimeout bounds one call, from connecting to reading the answer.
const DefaultTimeout = 10 * time.Second

// maxBody bounds how much of an answer is read.
const maxBody = 64 << 10

// Client calls one homeserver's /_synapse/mas/ API.
type Client struct {
	base    *url.URL
	secret  string
	http    *http.Client
	timeout time.Duration
	// measures count and time the calls; nil: not measured (metrics.go).
	measures *measures
}

// Option configures a Client.
type Option func(*Client)

// WithTimeout bounds each call (DefaultTimeout otherwise).
func WithTimeout(d time.Duration) Option {
	return func(c *Client) {
		if d > 0 {
			c.timeout = d
		}
	}
}

// WithHTTPClient sends requests with hc (for its transport); redirects are
// never followed whatever hc says.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) {
		clone := *hc
		clone.CheckRedirect = noRedirects
		c.http = &clone
	}
}

func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// New returns a client of the homeserver at baseURL (its client-server API
// base, for example "http://synapse:8008/"), authenticating with secret.
func New(baseURL, secret string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("homeserver: %q is not an http(s) URL", baseURL)
	}
	if secret == "" {
		return nil, errors.New("homeserver: the shared secret is empty")
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	u.RawQuery, u.Fragment = "", ""
	transport := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: DefaultTimeout,
	}
	c := &Client{base: u, secret: secret, timeout: DefaultTimeout,
		http: &http.Client{Transport: transport, CheckRedirect: noRedirects}}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// Error is a failed call.
type Error struct {
	// Op is the endpoint called, for example "provision_user".
	Op string
	// Status is the HTTP status the homeserver answered; 0 when no answer
	// arrived (connection refused, timeout, ...).
	Status int
	// Errcode and Message are the Matrix error the homeserver sent, if any.
	Errcode, Message string
	// Err is the transport's error when no answer arrived.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("homeserver " + e.Op + ": ")
	switch {
	case e.Status == 0:
		fmt.Fprintf(&b, "no answer: %v", e.Err)
	default:
		fmt.Fprintf(&b, "HTTP %d", e.Status)
		if e.Errcode != "" || e.Message != "" {
			fmt.Fprintf(&b, " (%s: %s)", e.Errcode, e.Message)
		}
	}
	if e.Retryable() {
		b.WriteString(" [retryable]")
	} else {
		b.WriteString(" [permanent]")
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether the same call may succeed later: no answer at
// all, a 5xx or a 429. Any other 4xx is the homeserver refusing the request
// itself, which repeating does not change.
func (e *Error) Retryable() bool {
	return e.Status == 0 || e.Status >= 500 || e.Status == http.StatusTooManyRequests
}

// IsRetryable reports whether err is an *Error that may succeed when repeated.
func IsRetryable(err error) bool {
	e, ok := errors.AsType[*Error](err)
	return ok && e.Retryable()
}

// IsPermanent reports whether err is an *Error that repeating cannot fix.
func IsPermanent(err error) bool {
	e, ok := errors.AsType[*Error](err)
	return ok && !e.Retryable()
}

// IsNotFound reports whether the homeserver answered 404 (for the calls on a
// user: the user does not exist there).
func IsNotFound(err error) bool {
	e, ok := errors.AsType[*Error](err)
	return ok && e.Status == http.StatusNotFound
}

// Optional is a field of a request that is either left alone or set.
type Optional[T any] struct {
	Value T
	Set   bool
}

// Some is an Optional set to v.
func Some[T any](v T) Optional[T] { return Optional[T]{Value: v, Set: true} }

// ProvisionRequest creates a user or changes what the homeserver knows of one.
// Fields that are not Set are left as they are.
type ProvisionRequest struct {
	// Localpart is the user's Matrix localpart.
	Localpart string
	// DisplayName sets the display name; set to "" it clears it.
	DisplayName Optional[string]
	// Emails replaces the user's email addresses; set to none it removes them all.
	Emails Optional[[]string]
	// Locked locks or unlocks the account.
	Locked Optional[bool]
}

// MarshalJSON writes the body Synapse expects: set_/unset_ pairs of which at
// most one is present (Synapse refuses both), and locked only when set.
func (r ProvisionRequest) MarshalJSON() ([]byte, error) {
	body := map[string]any{"localpart": r.Localpart}
	if r.DisplayName.Set {
		if r.DisplayName.Value == "" {
			body["unset_displayname"] = true
		} else {
			body["set_displayname"] = r.DisplayName.Value
		}
	}
	if r.Emails.Set {
		if len(r.Emails.Value) == 0 {
			body["unset_emails"] = true
		} else {
			body["set_emails"] = r.Emails.Value
		}
	}
	if r.Locked.Set {
		body["locked"] = r.Locked.Value
	}
	return json.Marshal(body)
}

// ProvisionUser creates the user or updates it, and reports whether it was
// created (201) rather than updated (200).
func (c *Client) ProvisionUser(ctx context.Context, req ProvisionRequest) (created bool, err error) {
	status, err := c.post(ctx, "provision_user", req)
	return status == http.StatusCreated, err
}

// IsLocalpartAvailable asks whether a new user may take localpart: false when
// the homeserver says it is taken, invalid or reserved for an application
// service (M_USER_IN_USE, M_INVALID_USERNAME, M_EXCLUSIVE).
func (c *Client) IsLocalpartAvailable(ctx context.Context, localpart string) (bool, error) {
	_, err := c.do(ctx, http.MethodGet, "is_localpart_available", url.Values{"localpart": {localpart}}, nil, nil)
	if e, ok := errors.AsType[*Error](err); ok && e.Status == http.StatusBadRequest {
		switch e.Errcode {
		case "M_USER_IN_USE", "M_INVALID_USERNAME", "M_EXCLUSIVE":
			return false, nil
		}
	}
	return err == nil, err
}

// User is what the homeserver knows of a user.
type User struct {
	UserID        string `json:"user_id"`
	DisplayName   string `json:"display_name"`
	AvatarURL     string `json:"avatar_url"`
	IsSuspended   bool   `json:"is_suspended"`
	IsDeactivated bool   `json:"is_deactivated"`
}

// QueryUser reads a user; a user the homeserver does not know is an error
// for which IsNotFound holds.
func (c *Client) QueryUser(ctx context.Context, localpart string) (User, error) {
	var u User
	_, err := c.do(ctx, http.MethodGet, "query_user", url.Values{"localpart": {localpart}}, nil, &u)
	return u, err
}

// DeleteUser deactivates the user, erasing its data when erase is set.
func (c *Client) DeleteUser(ctx context.Context, localpart string, erase bool) error {
	_, err := c.post(ctx, "delete_user", map[string]any{"localpart": localpart, "erase": erase})
	return err
}

// ReactivateUser reactivates a deactivated user.
func (c *Client) ReactivateUser(ctx context.Context, localpart string) error {
	_, err := c.post(ctx, "reactivate_user", map[string]any{"localpart": localpart})
	return err
}

// UpsertDevice creates the device, or updates its display name when one is
// given; the user must exist.
func (c *Client) UpsertDevice(ctx context.Context, localpart, deviceID, displayName string) error {
	body := map[string]any{"localpart": localpart, "device_id": deviceID}
	if displayName != "" {
		body["display_name"] = displayName
	}
	_, err := c.post(ctx, "upsert_device", body)
	return err
}

// UpdateDeviceDisplayName renames a device.
func (c *Client) UpdateDeviceDisplayName(ctx context.Context, localpart, deviceID, displayName string) error {
	_, err := c.post(ctx, "update_device_display_name", map[string]any{"localpart": localpart, "device_id": deviceID, "display_name": displayName})
	return err
}

// DeleteDevice deletes a device (and its access tokens, keys, ...).
func (c *Client) DeleteDevice(ctx context.Context, localpart, deviceID string) error {
	_, err := c.post(ctx, "delete_device", map[string]any{"localpart": localpart, "device_id": deviceID})
	return err
}

// SyncDevices makes deviceIDs the user's whole set of devices: missing ones
// are created, the others deleted.
func (c *Client) SyncDevices(ctx context.Context, localpart string, deviceIDs []string) error {
	if deviceIDs == nil {
		deviceIDs = []string{}
	}
	_, err := c.post(ctx, "sync_devices", map[string]any{"localpart": localpart, "devices": deviceIDs})
	return err
}

// AllowCrossSigningReset lets the user replace their cross-signing master key
// without interactive authentication for the next ten minutes.
func (c *Client) AllowCrossSigningReset(ctx context.Context, localpart string) error {
	_, err := c.post(ctx, "allow_cross_signing_reset", map[string]any{"localpart": localpart})
	return err
}

func (c *Client) post(ctx context.Context, op string, body any) (int, error) {
	return c.do(ctx, http.MethodPost, op, nil, body, nil)
}

// call makes one call and returns the answer's status. A 2xx decodes into
// out (when given); anything else is an *Error. do measures it (metrics.go).
func (c *Client) call(ctx context.Context, method, op string, query url.Values, body, out any) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	u := c.base.ResolveReference(&url.URL{Path: "_synapse/mas/" + op, RawQuery: query.Encode()})
	var reader io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, &Error{Op: op, Status: http.StatusBadRequest, Message: "encoding the request: " + err.Error()}
		}
		reader = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), reader)
	if err != nil {
		return 0, &Error{Op: op, Err: err}
	}
	req.Header.Set("Authorization", "Bearer "+c.secret)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, &Error{Op: op, Err: redactURL(err)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return 0, &Error{Op: op, Err: fmt.Errorf("reading the answer: %w", err)}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := &Error{Op: op, Status: resp.StatusCode}
		var matrix struct {
			Errcode string `json:"errcode"`
			Error   string `json:"error"`
		}
		if json.Unmarshal(data, &matrix) == nil {
			e.Errcode, e.Message = matrix.Errcode, truncate(matrix.Error, 200)
		}
		return resp.StatusCode, e
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			// A 2xx we cannot read is the homeserver misbehaving: try again later.
			return resp.StatusCode, &Error{Op: op, Err: fmt.Errorf("decoding the answer: %w", err)}
		}
	}
	return resp.StatusCode, nil
}

// redactURL keeps the transport's error but drops the URL it quotes, which
// could carry credentials in its userinfo.
func redactURL(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

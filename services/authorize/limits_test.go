package authorize

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"gatehouse.dev/platform/ratelimit"
)

// Each anonymous endpoint that records what it is asked is limited per
// client address: past the burst it answers 429 with Retry-After (an OAuth
// error on the JSON endpoints), while another address is served.
func TestAnonymousEndpointsAreLimitedPerAddress(t *testing.T) {
	e := newDeviceEnv(t)
	public, _ := e.registerDeviceClient(t, map[string]any{
		"client_name": "TV", "client_uri": "https://tv.example.org/", "application_type": "native",
		"grant_types": []string{"urn:ietf:params:oauth:grant-type:device_code"}, "token_endpoint_auth_method": "none",
	})
	rules := ratelimit.DefaultRules()
	e.svc.cfg.Limits = rules

	send := func(from, method, path, contentType, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.RemoteAddr = from
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		rec := httptest.NewRecorder()
		e.mux.ServeHTTP(rec, req)
		return rec
	}
	registration := `{"client_name":"x","client_uri":"https://app.example/","redirect_uris":["https://app.example/cb"],"token_endpoint_auth_method":"none"}`
	device := url.Values{"client_id": {public}}.Encode()
	authorize := "/authorize?" + url.Values{"client_id": {public}, "response_type": {"code"}}.Encode()
	for _, tt := range []struct {
		name  string
		burst int
		send  func(from string) *httptest.ResponseRecorder
		json  bool
	}{
		{"client registration", rules.ClientRegistration.Burst, func(from string) *httptest.ResponseRecorder {
			return send(from, http.MethodPost, "/oauth2/registration", "application/json", registration)
		}, true},
		{"device authorization", rules.DeviceAuthorization.Burst, func(from string) *httptest.ResponseRecorder {
			return send(from, http.MethodPost, "/oauth2/device", "application/x-www-form-urlencoded", device)
		}, true},
		{"authorization", rules.Authorization.Burst, func(from string) *httptest.ResponseRecorder {
			return send(from, http.MethodGet, authorize, "", "")
		}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for i := range tt.burst {
				if rec := tt.send("203.0.113.9:4000"); rec.Code == http.StatusTooManyRequests {
					t.Fatalf("request %d of the burst of %d refused", i+1, tt.burst)
				}
			}
			rec := tt.send("203.0.113.9:4001")
			if rec.Code != http.StatusTooManyRequests {
				t.Fatalf("past the burst: %d %s", rec.Code, rec.Body)
			}
			if secs, err := strconv.Atoi(rec.Header().Get("Retry-After")); err != nil || secs < 1 {
				t.Errorf("Retry-After %q", rec.Header().Get("Retry-After"))
			}
			if tt.json {
				var out map[string]string
				if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out["error"] != "temporarily_unavailable" {
					t.Errorf("body %s", rec.Body)
				}
			}
			if rec := tt.send("198.51.100.20:4000"); rec.Code == http.StatusTooManyRequests {
				t.Fatal("another address refused")
			}
		})
	}
}

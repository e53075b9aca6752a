package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// standIn is a STAND-IN for the homeserver: no Synapse can run here, so this
// httptest server implements the part of Synapse's /_synapse/mas/ API that
// Gatehouse calls, with Synapse's semantics as synapse/rest/synapse/mas/*.py
// has them (403 without the shared secret, 404 for an unknown user on every
// call but provision_user, 201 when provision_user or upsert_device creates,
// sync_devices setting the whole set). It keeps users and devices in memory,
// records every call it accepts in order, and can be made unavailable (503)
// or down (connections dropped without an answer).
type standIn struct {
	srv *httptest.Server

	mu      sync.Mutex
	mode    string // "up", "unavailable" or "down"
	calls   []hsCall
	refused int // calls answered 503 or dropped
	users   map[string]*hsUser
}

// hsCall is one call the stand-in accepted.
type hsCall struct {
	Op     string
	Body   map[string]any
	Status int
}

// String is the op and its body as sorted JSON, for exact comparisons.
func (c hsCall) String() string {
	b, _ := json.Marshal(c.Body)
	return c.Op + " " + string(b)
}

// hsUser is a homeserver account as the stand-in keeps it.
type hsUser struct {
	DisplayName         string
	Emails              []string
	Locked, Deactivated bool
	Erased              bool
	Devices             map[string]string // device id → display name
}

func newStandIn(t testing.TB) *standIn {
	h := &standIn{mode: "up", users: map[string]*hsUser{}}
	h.srv = httptest.NewServer(h)
	t.Cleanup(h.srv.Close)
	return h
}

// URL is the homeserver's base URL, for GATEHOUSE_MATRIX_HOMESERVER_URL.
func (h *standIn) URL() string { return h.srv.URL + "/" }

func (h *standIn) setMode(mode string) {
	h.mu.Lock()
	h.mode = mode
	h.mu.Unlock()
}

// user returns a copy of a user, or nil.
func (h *standIn) user(localpart string) *hsUser {
	h.mu.Lock()
	defer h.mu.Unlock()
	u := h.users[localpart]
	if u == nil {
		return nil
	}
	c := *u
	c.Emails = slices.Clone(u.Emails)
	c.Devices = maps.Clone(u.Devices)
	return &c
}

// devices lists a user's device ids, sorted.
func (h *standIn) devices(localpart string) []string {
	u := h.user(localpart)
	if u == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(u.Devices))
}

// callLog returns the calls accepted from index from on.
func (h *standIn) callLog(from int) []hsCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.calls[min(from, len(h.calls)):])
}

func (h *standIn) refusedCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.refused
}

// replaceUsers forgets every user and device and keeps these instead (a
// homeserver restored from an old backup, say).
func (h *standIn) replaceUsers(users map[string]*hsUser) {
	h.mu.Lock()
	h.users = users
	h.mu.Unlock()
}

func (h *standIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+homeserverSecret {
		standInWrite(w, http.StatusForbidden, map[string]any{"errcode": "M_FORBIDDEN", "error": "This endpoint must only be called by MAS"})
		return
	}
	op, ok := strings.CutPrefix(r.URL.Path, "/_synapse/mas/")
	if !ok {
		standInWrite(w, http.StatusNotFound, map[string]any{"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"})
		return
	}
	body := map[string]any{}
	if r.Method == http.MethodPost {
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil {
			standInWrite(w, http.StatusBadRequest, map[string]any{"errcode": "M_NOT_JSON", "error": err.Error()})
			return
		}
	} else {
		body["localpart"] = r.URL.Query().Get("localpart")
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	switch h.mode {
	case "unavailable":
		h.refused++
		standInWrite(w, http.StatusServiceUnavailable, map[string]any{"errcode": "M_UNKNOWN", "error": "the stand-in is unavailable"})
		return
	case "down":
		h.refused++
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
		}
		return
	}
	status, answer := h.handle(op, body)
	h.calls = append(h.calls, hsCall{Op: op, Body: body, Status: status})
	standInWrite(w, status, answer)
}

// handle applies one call; h.mu is held.
func (h *standIn) handle(op string, body map[string]any) (int, any) {
	localpart, _ := body["localpart"].(string)
	str := func(k string) string { s, _ := body[k].(string); return s }
	u := h.users[localpart]
	if u == nil && op != "provision_user" && op != "is_localpart_available" {
		return http.StatusNotFound, map[string]any{"errcode": "M_NOT_FOUND", "error": "User not found"}
	}
	switch op {
	case "provision_user":
		for _, f := range []string{"displayname", "avatar_url", "emails"} {
			_, set := body["set_"+f]
			_, unset := body["unset_"+f]
			if set && unset {
				return http.StatusBadRequest, map[string]any{"errcode": "M_BAD_JSON", "error": "Cannot specify both unset_" + f + " and set_" + f}
			}
		}
		status := http.StatusOK
		if u == nil {
			u = &hsUser{DisplayName: localpart, Devices: map[string]string{}}
			h.users[localpart] = u
			status = http.StatusCreated
		}
		if _, ok := body["set_displayname"]; ok {
			u.DisplayName = str("set_displayname")
		} else if body["unset_displayname"] == true {
			u.DisplayName = ""
		}
		if emails, ok := body["set_emails"].([]any); ok {
			u.Emails = nil
			for _, e := range emails {
				u.Emails = append(u.Emails, e.(string))
			}
		} else if body["unset_emails"] == true {
			u.Emails = nil
		}
		if locked, ok := body["locked"].(bool); ok {
			u.Locked = locked
		}
		return status, map[string]any{}
	case "query_user":
		return http.StatusOK, map[string]any{"user_id": "@" + localpart + ":example.org", "display_name": u.DisplayName,
			"avatar_url": nil, "is_suspended": false, "is_deactivated": u.Deactivated}
	case "is_localpart_available":
		if u != nil {
			return http.StatusBadRequest, map[string]any{"errcode": "M_USER_IN_USE", "error": "User ID already taken."}
		}
		return http.StatusOK, map[string]any{}
	case "delete_user":
		u.Deactivated, u.Erased = true, body["erase"] == true
		u.Devices, u.Emails = map[string]string{}, nil
		return http.StatusOK, map[string]any{}
	case "reactivate_user":
		u.Deactivated = false
		return http.StatusOK, map[string]any{}
	case "upsert_device":
		id := str("device_id")
		_, existed := u.Devices[id]
		if name, ok := body["display_name"].(string); ok || !existed {
			u.Devices[id] = name
		}
		if existed {
			return http.StatusOK, map[string]any{}
		}
		return http.StatusCreated, map[string]any{}
	case "update_device_display_name":
		u.Devices[str("device_id")] = str("display_name")
		return http.StatusOK, map[string]any{}
	case "delete_device":
		delete(u.Devices, str("device_id"))
		return http.StatusNoContent, nil
	case "sync_devices":
		want := map[string]string{}
		devices, _ := body["devices"].([]any)
		for _, d := range devices {
			want[d.(string)] = u.Devices[d.(string)]
		}
		u.Devices = want
		return http.StatusOK, map[string]any{}
	case "allow_cross_signing_reset":
		return http.StatusOK, map[string]any{}
	}
	return http.StatusNotFound, map[string]any{"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"}
}

func standInWrite(w http.ResponseWriter, status int, v any) {
	if v == nil {
		w.WriteHeader(status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// eventually polls cond until it holds, failing the test after 20 seconds.
func standInWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// opsOf lists the calls' strings, keeping those keep accepts.
func opsOf(calls []hsCall, keep func(hsCall) bool) []string {
	var out []string
	for _, c := range calls {
		if keep(c) {
			out = append(out, c.String())
		}
	}
	return out
}

func (u *hsUser) String() string { return fmt.Sprintf("%+v", *u) }

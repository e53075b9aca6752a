package clientaddr

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

func TestResolve(t *testing.T) {
	// The proxies of these cases: a load balancer at 10.0.0.1 in front of an
	// ingress at 10.0.0.2, both in the default trusted ranges.
	tests := []struct {
		name    string
		peer    string
		header  Header
		xff     []string // X-Forwarded-For lines
		fwd     []string // Forwarded lines
		trusted []string // nil: the defaults
		want    string   // "" for no address
	}{
		{name: "direct client, no header", peer: "203.0.113.7:5000", want: "203.0.113.7"},
		{name: "untrusted peer's own X-Forwarded-For is ignored", peer: "203.0.113.7:5000",
			xff: []string{"198.51.100.1"}, want: "203.0.113.7"},
		{name: "untrusted peer's own Forwarded is ignored", peer: "203.0.113.7:5000", header: Forwarded,
			fwd: []string{"for=198.51.100.1"}, want: "203.0.113.7"},
		{name: "one proxy", peer: "10.0.0.2:80", xff: []string{"203.0.113.7"}, want: "203.0.113.7"},
		{name: "two proxies", peer: "10.0.0.2:80", xff: []string{"203.0.113.7, 10.0.0.1"}, want: "203.0.113.7"},
		{name: "a client's forged entries lie to the left and are never reached", peer: "10.0.0.2:80",
			xff: []string{"127.0.0.1, 198.51.100.99, 203.0.113.7"}, want: "203.0.113.7"},
		{name: "several header lines read in order", peer: "10.0.0.2:80",
			xff: []string{"198.51.100.99", "203.0.113.7, 10.0.0.1"}, want: "203.0.113.7"},
		{name: "entries with ports", peer: "10.0.0.2:80", xff: []string{"203.0.113.7:4711, 10.0.0.1:80"}, want: "203.0.113.7"},
		{name: "IPv6 client with brackets and port", peer: "[::1]:80", xff: []string{"[2001:db8::7]:4711"}, want: "2001:db8::7"},
		{name: "IPv6 client bare", peer: "[fd00::2]:80", xff: []string{"2001:db8::7"}, want: "2001:db8::7"},
		{name: "IPv4-mapped peer is unmapped and trusted", peer: "[::ffff:10.0.0.2]:80", xff: []string{"203.0.113.7"}, want: "203.0.113.7"},
		{name: "IPv4-mapped client is unmapped", peer: "10.0.0.2:80", xff: []string{"::ffff:203.0.113.7"}, want: "203.0.113.7"},
		{name: "every hop trusted: the farthest", peer: "10.0.0.2:80", xff: []string{"192.168.1.5, 10.0.0.1"}, want: "192.168.1.5"},
		{name: "garbage left of the client is never reached", peer: "10.0.0.2:80", xff: []string{"<script>, 203.0.113.7"}, want: "203.0.113.7"},
		{name: "garbage where the client should be: the last trusted hop", peer: "10.0.0.2:80",
			xff: []string{"not-an-ip, 10.0.0.1"}, want: "10.0.0.1"},
		{name: "garbage right at the peer: the peer", peer: "10.0.0.2:80", xff: []string{"203.0.113.7, garbage"}, want: "10.0.0.2"},
		{name: "empty entry: the peer", peer: "10.0.0.2:80", xff: []string{"203.0.113.7,"}, want: "10.0.0.2"},
		{name: "zone is not an address", peer: "10.0.0.2:80", xff: []string{"fe80::1%eth0"}, want: "10.0.0.2"},
		{name: "blank header: the peer", peer: "10.0.0.2:80", xff: []string{"  "}, want: "10.0.0.2"},
		{name: "trusted peer without header is the client", peer: "127.0.0.1:5000", want: "127.0.0.1"},
		{name: "X-Forwarded-For is not read when Forwarded is configured", peer: "10.0.0.2:80", header: Forwarded,
			xff: []string{"198.51.100.1"}, fwd: []string{"for=203.0.113.7"}, want: "203.0.113.7"},
		{name: "Forwarded is not read when X-Forwarded-For is configured", peer: "10.0.0.2:80",
			fwd: []string{"for=198.51.100.1"}, want: "10.0.0.2"},
		{name: "Forwarded: two elements and other parameters", peer: "10.0.0.2:80", header: Forwarded,
			fwd: []string{`for=203.0.113.7;proto=https;by=10.0.0.1, For="10.0.0.1:80"`}, want: "203.0.113.7"},
		{name: "Forwarded: quoted IPv6 with port", peer: "10.0.0.2:80", header: Forwarded,
			fwd: []string{`for="[2001:db8:cafe::17]:4711"`}, want: "2001:db8:cafe::17"},
		{name: "Forwarded: a comma inside quotes does not split", peer: "10.0.0.2:80", header: Forwarded,
			fwd: []string{`for=203.0.113.7;x="a,b", for=10.0.0.1`}, want: "203.0.113.7"},
		{name: "Forwarded: unknown where the client should be", peer: "10.0.0.2:80", header: Forwarded,
			fwd: []string{"for=unknown, for=10.0.0.1"}, want: "10.0.0.1"},
		{name: "Forwarded: an obfuscated name", peer: "10.0.0.2:80", header: Forwarded,
			fwd: []string{"for=_hidden"}, want: "10.0.0.2"},
		{name: "Forwarded: element without for", peer: "10.0.0.2:80", header: Forwarded,
			fwd: []string{"proto=https"}, want: "10.0.0.2"},
		{name: "Forwarded: open quote is malformed as a whole", peer: "10.0.0.2:80", header: Forwarded,
			fwd: []string{`for=203.0.113.7, for="10.0.0.1`}, want: "10.0.0.2"},
		{name: "Forwarded: pair without = is malformed", peer: "10.0.0.2:80", header: Forwarded,
			fwd: []string{`for=203.0.113.7;junk`}, want: "10.0.0.2"},
		{name: "nobody trusted", peer: "127.0.0.1:80", trusted: []string{}, xff: []string{"203.0.113.7"}, want: "127.0.0.1"},
		{name: "one trusted address", peer: "127.0.0.2:80", trusted: []string{"127.0.0.2"},
			xff: []string{"127.0.0.1, 127.0.0.9"}, want: "127.0.0.9"},
		{name: "peer not an IP (unix socket)", peer: "@", xff: []string{"203.0.113.7"}, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			trusted := tt.trusted
			if trusted == nil {
				trusted = DefaultTrustedProxies()
			}
			header := tt.header
			if header == "" {
				header = XForwardedFor
			}
			res, err := New(trusted, header)
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tt.peer
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			for _, v := range tt.fwd {
				r.Header.Add("Forwarded", v)
			}
			got := res.Resolve(r)
			if tt.want == "" {
				if got.IsValid() {
					t.Fatalf("Resolve = %v, want no address", got)
				}
				return
			}
			if got != netip.MustParseAddr(tt.want) {
				t.Fatalf("Resolve = %v, want %s", got, tt.want)
			}
		})
	}
}

func TestMiddlewareAndOf(t *testing.T) {
	res, err := New([]string{"10.0.0.0/8"}, XForwardedFor)
	if err != nil {
		t.Fatal(err)
	}
	var seen string
	h := res.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = String(r) }))
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "10.1.2.3:80"
	r.Header.Set("X-Forwarded-For", "2001:db8::7")
	h.ServeHTTP(httptest.NewRecorder(), r)
	if seen != "2001:db8::7" {
		t.Errorf("behind the middleware: %q", seen)
	}
	// Without the middleware (a handler tested on its own): the peer.
	if got := String(r); got != "10.1.2.3" {
		t.Errorf("without the middleware: %q", got)
	}
	r.RemoteAddr = "pipe"
	if got := String(r); got != "" {
		t.Errorf("no address: %q", got)
	}
}

func TestKeyOf(t *testing.T) {
	for in, want := range map[string]string{
		"203.0.113.7":              "203.0.113.7",
		"2001:db8:1:2:3:4:5:6":     "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1":     "2001:db8:1:2::/64", // same /64: same budget
		"2001:db8:1:3::1":          "2001:db8:1:3::/64",
		"::1":                      "::/64",
		"::ffff:203.0.113.7":       "203.0.113.7",
		"fe80::1%eth0":             "fe80::/64",
		"2001:db8:abcd:12::dead:1": "2001:db8:abcd:12::/64",
	} {
		a := normalize(netip.MustParseAddr(in))
		if got := KeyOf(a); got != want {
			t.Errorf("KeyOf(%s) = %s, want %s", in, got, want)
		}
	}
	if got := KeyOf(netip.Addr{}); got != "unknown" {
		t.Errorf("KeyOf(no address) = %s", got)
	}
}

func TestNewRefusesBadConfiguration(t *testing.T) {
	for _, tt := range []struct {
		trusted []string
		header  Header
	}{
		{[]string{"10.0.0.0/33"}, XForwardedFor},
		{[]string{"proxy.example"}, XForwardedFor},
		{[]string{"fe80::1%eth0"}, XForwardedFor},
		{[]string{"::ffff:10.0.0.0/104"}, XForwardedFor},
		{nil, "x-real-ip"},
	} {
		if _, err := New(tt.trusted, tt.header); err == nil {
			t.Errorf("New(%v, %q) accepted", tt.trusted, tt.header)
		}
	}
	if _, err := New([]string{"10.0.0.1", " 192.168.0.0/16 ", "2001:db8::/32"}, Forwarded); err != nil {
		t.Errorf("good configuration refused: %v", err)
	}
}

// WithAddr's context carries the address through contexts derived from it,
// and everything of its parent.
func TestWithAddr(t *testing.T) {
	res, err := New([]string{"10.0.0.0/8"}, XForwardedFor)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "10.1.2.3:80"
	r.Header.Set("X-Forwarded-For", "192.0.2.9")
	type key struct{}
	parent, cancelParent := context.WithCancel(context.WithValue(context.Background(), key{}, "parent's"))
	ctx, cancel := context.WithTimeout(res.WithAddr(parent, r), time.Minute)
	defer cancel()
	inner := r.WithContext(ctx)
	if got := String(inner); got != "192.0.2.9" {
		t.Errorf("String = %q, want 192.0.2.9", got)
	}
	if ctx.Value(key{}) != "parent's" {
		t.Error("the parent's value is lost")
	}
	cancelParent()
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("cancelling the parent did not end the derived context")
	}
}

// Package clientaddr finds the address of the client behind a public HTTP
// request, the one helper every service uses for it: sessions record it, rate
// limits key on it, CAPTCHA providers are told it.
//
// A request's TCP peer is a reverse proxy in most deployments. The forwarding
// header the proxies set (X-Forwarded-For, or RFC 7239 Forwarded) is read only
// when the peer is a trusted proxy, and then from right to left: each trusted
// proxy vouches for the hop to its left, so the client is the first address,
// walking right to left, that is not a trusted proxy. Whatever a client writes
// into the header itself lies further left and is never reached. An entry that
// is not an address (garbage, "unknown", an obfuscated name) ends the walk at
// the nearest hop already vouched for — the peer, when the header is malformed
// as a whole.
//
// Only one header is read, the one the proxies are configured to set: a proxy
// that sets one passes the other through untouched from the client, so reading
// both would let a client choose its address.
//
// The host resolves the address once per request (Resolver.WithAddr); the
// services read it with Of. For rate limits, Key groups IPv6 addresses by /64,
// the allocation of one subscriber; sessions record the full address.
package clientaddr

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Header names the forwarding header trusted proxies set.
type Header string

// The forwarding headers a Resolver reads.
const (
	// XForwardedFor is X-Forwarded-For: a comma-separated list of addresses,
	// each proxy appending its peer (nginx, HAProxy, Caddy, Traefik, Envoy,
	// cloud load balancers).
	XForwardedFor Header = "x-forwarded-for"
	// Forwarded is RFC 7239's Forwarded: the for= parameter of each element.
	Forwarded Header = "forwarded"
)

// DefaultTrustedProxies are the ranges trusted by default, as MAS does:
// loopback and the private ranges (RFC 1918 and IPv6 unique local addresses).
func DefaultTrustedProxies() []string {
	return []string{"127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fd00::/8"}
}

// Resolver finds the client address of requests from their peer and the
// forwarding header of trusted proxies.
type Resolver struct {
	trusted []netip.Prefix
	header  Header
}

// New returns a Resolver trusting the proxies in the given CIDR ranges (a
// bare address is a range of one) to set header.
func New(trusted []string, header Header) (*Resolver, error) {
	prefixes, err := ParsePrefixes(trusted)
	if err != nil {
		return nil, err
	}
	if header != XForwardedFor && header != Forwarded {
		return nil, fmt.Errorf("clientaddr: header %q is not %s or %s", header, XForwardedFor, Forwarded)
	}
	return &Resolver{trusted: prefixes, header: header}, nil
}

// ParsePrefixes parses CIDR ranges, or bare addresses as ranges of one.
func ParsePrefixes(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			if p.Addr().Is4In6() {
				return nil, fmt.Errorf("clientaddr: %q: write IPv4 ranges as IPv4", s)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("clientaddr: %q is not a CIDR range or an address", s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// Resolve returns the client address of r: its peer, or, when the peer is a
// trusted proxy, the first untrusted hop of the forwarding header from the
// right. The zero Addr when the peer is not an IP address (a unix socket).
func (res *Resolver) Resolve(r *http.Request) netip.Addr {
	addr := Peer(r)
	if !addr.IsValid() || !res.isTrusted(addr) {
		return addr
	}
	var hops []netip.Addr
	var ok bool
	switch res.header {
	case Forwarded:
		hops, ok = parseForwarded(strings.Join(r.Header.Values("Forwarded"), ","))
	default:
		hops, ok = parseXForwardedFor(strings.Join(r.Header.Values("X-Forwarded-For"), ","))
	}
	if !ok {
		return addr
	}
	for i := len(hops) - 1; i >= 0; i-- {
		hop := hops[i]
		if !hop.IsValid() {
			return addr // not an address: the nearest hop vouched for
		}
		addr = hop
		if !res.isTrusted(hop) {
			return hop
		}
	}
	return addr // every hop is a trusted proxy: the farthest one
}

// isTrusted reports whether a is in a trusted range.
func (res *Resolver) isTrusted(a netip.Addr) bool {
	for _, p := range res.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ctxKey keys the resolved address in a request's context.
type ctxKey struct{}

// Middleware resolves each request's client address once, for Of.
func (res *Resolver) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(res.WithAddr(r.Context(), r)))
	})
}

// WithAddr is ctx carrying r's client address for Of, for a server that
// derives each request's context once (httpx.Edge.Context) rather than
// through Middleware.
func (res *Resolver) WithAddr(ctx context.Context, r *http.Request) context.Context {
	return &addrContext{Context: ctx, addr: res.Resolve(r)}
}

// addrContext is a context carrying a client address: one allocation, where
// context.WithValue makes two (the context and the address as an any).
type addrContext struct {
	context.Context
	addr netip.Addr
}

// Value is the addrContext itself for ctxKey, else the parent's value.
func (c *addrContext) Value(key any) any {
	if _, ok := key.(ctxKey); ok {
		return c
	}
	return c.Context.Value(key)
}

// Of is the client address of r as the host's Middleware resolved it, or
// r's peer when no Resolver ran (a handler tested on its own).
func Of(r *http.Request) netip.Addr {
	if c, ok := r.Context().Value(ctxKey{}).(*addrContext); ok {
		return c.addr
	}
	return Peer(r)
}

// String is the client address of r as text (the full address, for sessions
// and activity), or "" when unknown.
func String(r *http.Request) string {
	a := Of(r)
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// Key is the rate-limit key of r's client address (see KeyOf).
func Key(r *http.Request) string { return KeyOf(Of(r)) }

// KeyOf is the rate-limit key of an address: an IPv4 address itself, the /64
// network of an IPv6 address (one subscriber usually holds a whole /64), and
// "unknown" for no address, so that requests whose address is unknown share
// one budget rather than escape it.
func KeyOf(a netip.Addr) string {
	switch {
	case !a.IsValid():
		return "unknown"
	case a.Is4():
		return a.String()
	}
	return netip.PrefixFrom(a, 64).Masked().String()
}

// Peer is r's TCP peer address, IPv4-mapped addresses unmapped and zones
// dropped; the zero Addr when RemoteAddr is not an IP address and port.
func Peer(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		a, err := netip.ParseAddr(r.RemoteAddr) // some tests set a bare address
		if err != nil {
			return netip.Addr{}
		}
		return normalize(a)
	}
	return normalize(ap.Addr())
}

// normalize unmaps an IPv4-mapped address and drops a zone.
func normalize(a netip.Addr) netip.Addr { return a.Unmap().WithZone("") }

// parseXForwardedFor splits X-Forwarded-For into hops: each an address,
// optionally with a port ("192.0.2.1:443", "[2001:db8::1]:443"), or the zero
// Addr for an entry that is none. ok is false for an empty header.
func parseXForwardedFor(v string) ([]netip.Addr, bool) {
	if strings.TrimSpace(v) == "" {
		return nil, false
	}
	var hops []netip.Addr
	for entry := range strings.SplitSeq(v, ",") {
		hops = append(hops, parseNode(strings.TrimSpace(entry)))
	}
	return hops, true
}

// parseForwarded reads the for= parameter of each element of a Forwarded
// header (RFC 7239 §4): elements separated by commas, pairs by semicolons,
// values tokens or quoted strings. An element without for= is a hop of
// unknown address. ok is false for an empty or malformed header.
func parseForwarded(v string) ([]netip.Addr, bool) {
	if strings.TrimSpace(v) == "" {
		return nil, false
	}
	elements, ok := splitOutsideQuotes(v, ',')
	if !ok {
		return nil, false
	}
	hops := make([]netip.Addr, 0, len(elements))
	for _, el := range elements {
		pairs, ok := splitOutsideQuotes(el, ';')
		if !ok {
			return nil, false
		}
		hop := netip.Addr{}
		for _, pair := range pairs {
			k, val, found := strings.Cut(strings.TrimSpace(pair), "=")
			if !found {
				if strings.TrimSpace(pair) == "" {
					continue
				}
				return nil, false
			}
			if !strings.EqualFold(strings.TrimSpace(k), "for") {
				continue
			}
			val = strings.TrimSpace(val)
			if strings.HasPrefix(val, `"`) {
				if len(val) < 2 || !strings.HasSuffix(val, `"`) {
					return nil, false
				}
				val = strings.ReplaceAll(val[1:len(val)-1], `\`, "")
			}
			hop = parseNode(val)
		}
		hops = append(hops, hop)
	}
	return hops, true
}

// splitOutsideQuotes splits s at sep where sep is not inside a quoted string;
// ok is false when a quote is left open.
func splitOutsideQuotes(s string, sep byte) (parts []string, ok bool) {
	quoted, escaped, start := false, false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case escaped:
			escaped = false
		case quoted && c == '\\':
			escaped = true
		case c == '"':
			quoted = !quoted
		case c == sep && !quoted:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	if quoted {
		return nil, false
	}
	return append(parts, s[start:]), true
}

// parseNode reads one hop: an IPv4 address, an IPv6 address (bare or in
// brackets), either with a port; anything else is the zero Addr.
func parseNode(s string) netip.Addr {
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return normalize(a)
	}
	host := s
	if strings.HasPrefix(s, "[") || strings.Count(s, ":") == 1 {
		h, _, err := net.SplitHostPort(s)
		if err != nil {
			h = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
			if !strings.HasPrefix(s, "[") || !strings.HasSuffix(s, "]") {
				return netip.Addr{}
			}
		}
		host = h
	}
	a, err := netip.ParseAddr(host)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}
	}
	return normalize(a)
}

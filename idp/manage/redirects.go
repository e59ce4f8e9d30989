package manage

import (
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/keyward/keyward/storage"
)

// MaxRedirectURIs bounds the redirect URIs of one client, each kind.
const MaxRedirectURIs = 20

// MaxRedirectURILen bounds one redirect URI.
const MaxRedirectURILen = 2000

// CheckRedirectURI is the rule for a registered redirect URI (and
// post-logout redirect URI): an absolute https URL, or http on a loopback
// address for native apps (RFC 8252 §7.3: 127.0.0.1 or [::1], any port at
// use; "localhost" is refused, §8.3), or a private-use scheme with a dot
// (RFC 8252 §7.1, "com.example.app:/cb"); no fragment (RFC 6749 §3.1.2), no
// user info, no wildcard.
func CheckRedirectURI(raw string) error {
	if raw == "" || len(raw) > MaxRedirectURILen {
		return fmt.Errorf("redirect URI must be 1 to %d bytes", MaxRedirectURILen)
	}
	if strings.ContainsAny(raw, " *\t\r\n") {
		return fmt.Errorf("redirect URI %q must not contain spaces or wildcards", raw)
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() {
		return fmt.Errorf("redirect URI %q must be an absolute URI", raw)
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return fmt.Errorf("redirect URI %q must not have a fragment (RFC 6749 §3.1.2)", raw)
	}
	if u.User != nil {
		return fmt.Errorf("redirect URI %q must not have user information", raw)
	}
	switch u.Scheme {
	case "https":
		if u.Host == "" {
			return fmt.Errorf("redirect URI %q has no host", raw)
		}
	case "http":
		if !IsLoopbackHost(u.Hostname()) {
			return fmt.Errorf("redirect URI %q: plain http only on a loopback address, 127.0.0.1 or [::1] (RFC 8252 §7.3)", raw)
		}
	default:
		if !strings.Contains(u.Scheme, ".") || u.Opaque != "" && !strings.HasPrefix(u.Opaque, "/") {
			return fmt.Errorf("redirect URI %q: use https, loopback http, or a reverse-DNS private-use scheme (RFC 8252 §7.1)", raw)
		}
	}
	return nil
}

// IsLoopbackHost reports whether host is a loopback IP literal (RFC 8252
// §7.3): 127.0.0.1 or ::1, not the name localhost.
func IsLoopbackHost(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback() && (ip.To4() == nil || ip.Equal(net.IPv4(127, 0, 0, 1)))
}

// MatchRedirectURI reports whether presented matches one of registered:
// exact string equality, except that a registered loopback http URI
// matches any port (RFC 8252 §7.3) with everything else equal.
func MatchRedirectURI(registered []string, presented string) bool {
	for _, r := range registered {
		if r == presented {
			return true
		}
	}
	p, err := url.Parse(presented)
	if err != nil || p.Scheme != "http" || !IsLoopbackHost(p.Hostname()) || p.Fragment != "" || p.User != nil {
		return false
	}
	for _, r := range registered {
		ru, err := url.Parse(r)
		if err != nil || ru.Scheme != "http" || !IsLoopbackHost(ru.Hostname()) {
			continue
		}
		if ru.Hostname() == p.Hostname() && ru.EscapedPath() == p.EscapedPath() && ru.RawQuery == p.RawQuery &&
			ru.ForceQuery == p.ForceQuery && (p.Port() == "" || validPort(p.Port())) {
			return true
		}
	}
	return false
}

func validPort(p string) bool {
	if len(p) > 5 {
		return false
	}
	n := 0
	for _, c := range p {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n > 0 && n < 65536
}

// checkRedirects checks a client's redirect URIs and that a client with
// the authorization_code grant has at least one.
func checkRedirects(c *storage.Client) error {
	for _, l := range []storage.List{c.RedirectURIs, c.PostLogoutRedirectURIs} {
		if len(l) > MaxRedirectURIs {
			return fmt.Errorf("at most %d redirect URIs of each kind", MaxRedirectURIs)
		}
		for _, r := range l {
			if err := CheckRedirectURI(r); err != nil {
				return err
			}
		}
	}
	if c.GrantTypes.Has(GrantAuthorizationCode) && len(c.RedirectURIs) == 0 {
		return fmt.Errorf("the authorization_code grant needs at least one redirect URI")
	}
	return nil
}

package ui

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
)

// CSRF protection (doc.go says why this design): a signed double-submit
// token. The browser holds a random value in a cookie; every form carries
// HMAC-SHA256(key, value) in its hidden field CSRFField. A POST is accepted
// only when the field matches the cookie it came with. Another site can
// make the browser send the cookie but can neither read it nor compute the
// field; http.CrossOriginProtection (Pages.protect) refuses cross-origin
// POSTs before this check even runs.

// CSRFField is the name of the hidden form field that carries the token.
const CSRFField = "csrf_token"

// Cookie names: browsers accept a __Host- cookie only with Secure, from an
// https origin, with Path=/ and no Domain (RFC 6265bis §4.1.3.2), which
// pins it to this host. Plain http (http://localhost in development) gets
// the unprefixed name.
const (
	csrfCookieSecure = "__Host-keyward-csrf"
	csrfCookiePlain  = "keyward-csrf"
)

// csrfValueLen is the decoded length of a cookie value: 256 random bits.
const csrfValueLen = 32

type csrf struct {
	key    []byte
	secure bool // Config.SecureCookies: the site is served over https
}

// isSecure reports whether r reached the server over https: directly, or
// through a proxy for an https site (Config.SecureCookies).
func (c *csrf) isSecure(r *http.Request) bool { return c.secure || r.TLS != nil }

func (c *csrf) cookieName(r *http.Request) string {
	if c.isSecure(r) {
		return csrfCookieSecure
	}
	return csrfCookiePlain
}

// cookieValue returns the request's cookie value when it is well formed.
func (c *csrf) cookieValue(r *http.Request) (string, bool) {
	ck, err := r.Cookie(c.cookieName(r))
	if err != nil {
		return "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(ck.Value)
	if err != nil || len(b) != csrfValueLen {
		return "", false
	}
	return ck.Value, true
}

// token returns the form token for r, setting a new cookie on w when r
// carries none (or a malformed one).
func (c *csrf) token(w http.ResponseWriter, r *http.Request) string {
	v, ok := c.cookieValue(r)
	if !ok {
		b := make([]byte, csrfValueLen)
		rand.Read(b)
		v = base64.RawURLEncoding.EncodeToString(b)
		http.SetCookie(w, &http.Cookie{
			Name: c.cookieName(r), Value: v, Path: "/",
			Secure: c.isSecure(r), HttpOnly: true, SameSite: http.SameSiteStrictMode,
		})
	}
	return c.sign(v)
}

func (c *csrf) sign(v string) string {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte("keyward csrf v1\x00"))
	m.Write([]byte(v))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// valid reports whether the form of r (already parsed) carries the token
// of r's cookie: false when either is missing or they do not match.
func (c *csrf) valid(r *http.Request) bool {
	v, ok := c.cookieValue(r)
	if !ok {
		return false
	}
	got := r.PostForm[CSRFField]
	if len(got) != 1 {
		return false
	}
	return hmac.Equal([]byte(got[0]), []byte(c.sign(v)))
}

package ui

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/keyward/keyward/idp/web"
)

// testFlows is an in-memory AccountFlows that behaves like the real flows
// (idp/account, on another branch) where the pages can tell: tokens are
// single-use and expire, a newer reset token supersedes the older, the
// policy refuses a password before the token is consumed, and a throttle
// can be switched on. It counts every call, so tests can prove a request
// consumed nothing.
type testFlows struct {
	mu        sync.Mutex
	now       time.Time
	tokens    map[string]*testToken
	passwords map[string]string // user -> password set by a reset
	verified  map[string]bool
	calls     map[string]int // method -> calls
	throttle  error          // returned by every method when set
	requested []string       // "u:name@lang" or "e:address@lang" of each reset request
}

type testToken struct {
	user, kind string
	expires    time.Time
	used       bool
}

func newTestFlows() *testFlows {
	return &testFlows{now: time.Date(2026, 12, 6, 5, 0, 0, 0, time.UTC), tokens: map[string]*testToken{},
		passwords: map[string]string{}, verified: map[string]bool{}, calls: map[string]int{}}
}

var errInvalidToken = &web.Error{Code: web.ErrInvalidToken, Description: "the link is invalid or expired", Status: http.StatusBadRequest}

// issue mints a token of kind ("kwpr_" or "kwev_") for user, valid 30
// minutes, superseding the user's older ones of that kind.
func (f *testFlows) issue(user, kind string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, t := range f.tokens {
		if t.user == user && t.kind == kind {
			t.used = true
		}
	}
	b := make([]byte, 32)
	rand.Read(b)
	tok := kind + base64.RawURLEncoding.EncodeToString(b)
	f.tokens[tok] = &testToken{user: user, kind: kind, expires: f.now.Add(30 * time.Minute)}
	return tok
}

func (f *testFlows) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

func (f *testFlows) count(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

// usable reports whether tok is unused and unexpired (without a call count).
func (f *testFlows) usable(tok string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.tokens[tok]
	return ok && !t.used && f.now.Before(t.expires)
}

// lookup finds a usable token of kind; the caller holds mu.
func (f *testFlows) lookup(tok, kind string) (*testToken, error) {
	t, ok := f.tokens[tok]
	if !ok || t.kind != kind || t.used || !f.now.Before(t.expires) {
		return nil, errInvalidToken
	}
	return t, nil
}

func (f *testFlows) CheckResetToken(ctx context.Context, token string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["CheckResetToken"]++
	if f.throttle != nil {
		return f.throttle
	}
	_, err := f.lookup(token, ResetTokenPrefix)
	return err
}

func (f *testFlows) ResetPassword(ctx context.Context, token, pw string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["ResetPassword"]++
	if f.throttle != nil {
		return f.throttle
	}
	t, err := f.lookup(token, ResetTokenPrefix)
	if err != nil {
		return err
	}
	switch {
	case utf8.RuneCountInString(pw) < 15:
		return &web.Error{Code: "invalid_password", Rule: "too_short", Status: http.StatusBadRequest,
			Description: "password must be at least 15 characters"}
	case strings.Contains(strings.ToLower(pw), t.user):
		return &web.Error{Code: "invalid_password", Rule: "contains_username", Status: http.StatusBadRequest,
			Description: "password must not contain the username"}
	case strings.HasPrefix(pw, "password"):
		return &web.Error{Code: "invalid_password", Rule: "blocklisted", Status: http.StatusBadRequest,
			Description: "password is too common"}
	}
	t.used = true
	f.passwords[t.user] = pw
	return nil
}

func (f *testFlows) VerifyEmail(ctx context.Context, token string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["VerifyEmail"]++
	if f.throttle != nil {
		return f.throttle
	}
	t, err := f.lookup(token, VerifyTokenPrefix)
	if err != nil {
		return err
	}
	t.used = true
	f.verified[t.user] = true
	return nil
}

func (f *testFlows) RequestPasswordReset(ctx context.Context, username, email, lang string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["RequestPasswordReset"]++
	if f.throttle != nil {
		return f.throttle
	}
	if (username == "") == (email == "") || strings.ContainsAny(username, " \t") {
		return &web.Error{Code: web.ErrInvalidRequest, Description: "give either username or email", Status: http.StatusBadRequest}
	}
	if email != "" {
		f.requested = append(f.requested, "e:"+email+"@"+lang)
	} else {
		f.requested = append(f.requested, "u:"+username+"@"+lang)
	}
	return nil
}

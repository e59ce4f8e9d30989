package oauth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage"
)

// errUserInactive: the session's user is disabled or gone.
var errUserInactive = errors.New("user inactive")

// codeHash is the only form of an authorization code the database holds.
func codeHash(code string) []byte {
	h := sha256.Sum256([]byte(code))
	return h[:]
}

// issueCode stores a new code for req under the login session sess and
// returns it: 256 random bits, 60 s, single use.
func (s *Provider) issueCode(ctx context.Context, req storage.AuthRequest, sess storage.LoginSession) (string, error) {
	u, err := s.cfg.Store.User(ctx, sess.UserID)
	if errors.Is(err, storage.ErrNotFound) {
		return "", errUserInactive
	}
	if err != nil {
		return "", err
	}
	if u.Disabled {
		return "", errUserInactive
	}
	code := randomID(32)
	now := s.now()
	err = s.cfg.Store.CreateAuthCode(ctx, storage.AuthCode{
		Hash: codeHash(code), ClientID: req.ClientID, UserID: u.ID, RedirectURI: req.RedirectURI,
		CodeChallenge: req.CodeChallenge, Nonce: req.Nonce, Scope: req.Scope, Audience: req.Audience,
		SessionID: sess.ID, AuthTime: sess.AuthTime, AMR: sess.AMR, PasswordChangedAt: u.PasswordChangedAt,
		CreatedAt: storage.At(now), ExpiresAt: storage.At(now.Add(AuthCodeTTL)),
	})
	if err != nil {
		return "", err
	}
	return code, nil
}

// codeGrant is the authorization_code grant (RFC 6749 §4.1.3) with PKCE
// S256 (RFC 7636 §4.6): the code is used up by any presentation; its
// client, redirect URI, verifier and lifetime must all match; a second
// presentation revokes what the first one got.
type codeGrant struct{ s *Provider }

// errBadCode is the one answer to a code that cannot be used.
func errBadCode() *web.Error {
	return &web.Error{Code: web.ErrInvalidGrant, Description: "the authorization code is invalid, expired or already used"}
}

// validVerifier: RFC 7636 §4.1, 43 to 128 unreserved characters.
func validVerifier(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for _, c := range v {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.ContainsRune("-._~", c)) {
			return false
		}
	}
	return true
}

// S256 is the PKCE S256 challenge of verifier (RFC 7636 §4.2).
func S256(verifier string) string {
	h := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

func (g codeGrant) exchange(ctx context.Context, c storage.Client, f form) (issuance, error) {
	s := g.s
	code, redirect, verifier := f["code"], f["redirect_uri"], f["code_verifier"]
	switch {
	case code == "":
		return issuance{}, web.BadRequest("code is required")
	case redirect == "":
		return issuance{}, web.BadRequest("redirect_uri is required")
	case verifier == "":
		return issuance{}, web.BadRequest("code_verifier is required (PKCE)")
	case len(code) > 128:
		return issuance{}, errBadCode()
	}
	now := s.now()
	ac, err := s.cfg.Store.UseAuthCode(ctx, codeHash(code), now)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return issuance{}, errBadCode()
	case errors.Is(err, storage.ErrCodeReplayed):
		s.log.WarnContext(ctx, "authorization code replay: its tokens are revoked", "client_id", c.ID, "sub", ac.UserID, "family_id", ac.FamilyID)
		s.audit.Record(ctx, audit.Event{Type: audit.RefreshReuseDetected, Reason: "code_replayed", Actor: ac.UserID, Subject: ac.FamilyID, ClientID: c.ID})
		return issuance{}, errBadCode()
	case err != nil:
		return issuance{}, err
	}
	ok := ac.ClientID == c.ID && now.Before(ac.ExpiresAt.Time) && ac.RedirectURI == redirect && validVerifier(verifier) &&
		subtle.ConstantTimeCompare([]byte(S256(verifier)), []byte(ac.CodeChallenge)) == 1
	if !ok {
		s.log.InfoContext(ctx, "authorization code refused", "client_id", c.ID, "code_client_id", ac.ClientID,
			"expired", !now.Before(ac.ExpiresAt.Time), "redirect_match", ac.RedirectURI == redirect)
		return issuance{}, errBadCode()
	}
	u, err := s.cfg.Store.User(ctx, ac.UserID)
	if errors.Is(err, storage.ErrNotFound) || err == nil && (u.Disabled || !u.PasswordChangedAt.Equal(ac.PasswordChangedAt.Time)) {
		return issuance{}, errBadCode()
	}
	if err != nil {
		return issuance{}, err
	}
	is := issuance{subject: u.ID, user: &u, userGrant: true, scope: ac.Scope, audience: ac.Audience,
		authTime: ac.AuthTime.Time, signIn: storage.SignIn{PasswordChangedAt: ac.PasswordChangedAt},
		nonce: ac.Nonce, amr: ac.AMR, codeHash: ac.Hash}
	if err := s.startFamily(ctx, c, &is, s.cfg.RefreshTokenTTL, manage.GrantAuthorizationCode); err != nil {
		if errors.Is(err, storage.ErrSignInStale) {
			return issuance{}, errBadCode()
		}
		return issuance{}, err
	}
	return is, nil
}

// formPostPage is the form_post response (OAuth 2.0 Form Post Response
// Mode): a form of hidden fields the inline script (allowed by its CSP
// nonce alone) submits, with a button for browsers without scripts.
var formPostPage = template.Must(template.New("form_post").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Continue</title></head>
<body><form method="post" action="{{.Action}}">
{{range $k, $v := .Fields}}<input type="hidden" name="{{$k}}" value="{{$v}}">
{{end}}<noscript><button type="submit">Continue</button></noscript></form>
<script nonce="{{.Nonce}}">document.forms[0].submit()</script></body></html>
`))

// writeFormPost answers with the auto-submitting form to action.
func writeFormPost(w http.ResponseWriter, action string, params url.Values) {
	fields := make(map[string]string, len(params))
	for k := range params {
		fields[k] = params.Get(k)
	}
	nonce := randomID(16)
	target := "'none'"
	if u, err := url.Parse(action); err == nil && u.Scheme != "" {
		target = u.Scheme + ":"
		if u.Host != "" {
			target = u.Scheme + "://" + u.Host
		}
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'nonce-"+nonce+"'; form-action "+target+
		"; frame-ancestors 'none'; base-uri 'none'")
	w.WriteHeader(http.StatusOK)
	formPostPage.Execute(w, struct {
		Action template.URL
		Fields map[string]string
		Nonce  string
	}{template.URL(action), fields, nonce})
}

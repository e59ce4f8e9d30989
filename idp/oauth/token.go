package oauth

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/idp/password"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage"
)

// Store is the part of storage the token, revocation, introspection
// and userinfo endpoints use. *storage.DB satisfies it.
type Store interface {
	Client(ctx context.Context, id string) (storage.Client, error)
	User(ctx context.Context, id string) (storage.User, error)
	UserByUsername(ctx context.Context, username string) (storage.User, error)
	UpdateUser(ctx context.Context, id string, update func(*storage.User) error) (storage.User, error)
	CreateRefreshFamily(ctx context.Context, f storage.RefreshFamily, first storage.RefreshToken, in storage.SignIn) error
	RotateRefreshToken(ctx context.Context, rot storage.Rotation) (storage.RotateResult, error)
	RefreshToken(ctx context.Context, hash []byte) (storage.RefreshToken, storage.RefreshFamily, error)
	RefreshFamily(ctx context.Context, id string) (storage.RefreshFamily, error)
	RevokeRefreshFamily(ctx context.Context, id, reason string, now time.Time) error
	RevokeAccessToken(ctx context.Context, jti string, expiresAt time.Time) error
	AccessTokenRevoked(ctx context.Context, jti string) (bool, error)
	DeleteExpiredTokens(ctx context.Context, before time.Time) (int64, error)

	// The authorization endpoint and the authorization_code grant.
	CreateAuthRequest(ctx context.Context, r *storage.AuthRequest) error
	AuthRequest(ctx context.Context, id string) (storage.AuthRequest, error)
	DeleteAuthRequest(ctx context.Context, id string) error
	CreateAuthCode(ctx context.Context, c storage.AuthCode) error
	UseAuthCode(ctx context.Context, hash []byte, now time.Time) (storage.AuthCode, error)
	RecordAuthCodeTokens(ctx context.Context, hash []byte, familyID, jti string, accessExpiresAt, now time.Time) error

	// TOTPCredential is the user's second factor (idp/login); ErrNotFound
	// when none. The password grant, which cannot ask for it, refuses a
	// user who has one.
	TOTPCredential(ctx context.Context, userID string) (storage.TOTPCredential, error)
}

// Token endpoint defaults (DESIGN "Tokens").
const (
	DefaultAccessTokenTTL      = 15 * time.Minute
	DefaultRefreshTokenTTL     = 30 * 24 * time.Hour
	DefaultRefreshTokenIdleTTL = 7 * 24 * time.Hour
	DefaultRefreshReuseWindow  = 10 * time.Second
)

// tokenDefaults fills in zero token settings.
func (cfg *Config) tokenDefaults() {
	if cfg.AccessTokenTTL <= 0 {
		cfg.AccessTokenTTL = DefaultAccessTokenTTL
	}
	if cfg.RefreshTokenTTL <= 0 {
		cfg.RefreshTokenTTL = DefaultRefreshTokenTTL
	}
	if cfg.PasswordRefreshTokenTTL <= 0 || cfg.PasswordRefreshTokenTTL > cfg.RefreshTokenTTL {
		cfg.PasswordRefreshTokenTTL = cfg.RefreshTokenTTL
	}
	if cfg.RefreshTokenIdleTTL <= 0 {
		cfg.RefreshTokenIdleTTL = DefaultRefreshTokenIdleTTL
	}
	if cfg.RefreshReuseWindow == 0 {
		cfg.RefreshReuseWindow = DefaultRefreshReuseWindow
	}
}

// form is a parsed form body: one non-empty value per parameter.
type form map[string]string

// knownParams are the parameters whose names an error may repeat back.
var knownParams = map[string]bool{
	"grant_type": true, "username": true, "password": true, "scope": true, "refresh_token": true,
	"client_id": true, "client_secret": true, "audience": true, "resource": true, "token": true,
	"token_type_hint": true, "access_token": true, "code": true, "redirect_uri": true, "code_verifier": true,
}

// parseForm reads an application/x-www-form-urlencoded body (RFC 6749
// Appendix B) and never the query string: any query is invalid_request
// (RFC 6749 §3.2, TE-05). A repeated parameter is invalid_request (TE-04);
// an empty one counts as absent (RFC 6749 §3.2); unknown ones are kept and
// ignored by the caller (TE-07). A body past the middleware's cap (bodyCap:
// 16 KiB on /oauth2/*) is 413 invalid_request, refused after reading at
// most the cap plus one byte (IN-01). It deliberately avoids the net/http
// form helpers (ParseForm and the Form fields and getters), which merge the
// query in and read up to 10 MB.
func parseForm(r *http.Request) (form, error) {
	if r.URL.RawQuery != "" || r.URL.ForceQuery {
		return nil, web.BadRequest("parameters belong in the request body, not the URL")
	}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" || len(r.Header.Values("Content-Type")) > 1 {
		return nil, web.BadRequest("the request body must be application/x-www-form-urlencoded")
	}
	for k, v := range params {
		if k != "charset" || !strings.EqualFold(v, "utf-8") {
			return nil, web.BadRequest("the request body must be UTF-8 application/x-www-form-urlencoded")
		}
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, web.TooLarge()
		}
		return nil, web.BadRequest("the request body is unreadable")
	}
	vals, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, web.BadRequest("the request body is not valid form encoding")
	}
	f := make(form, len(vals))
	for k, vs := range vals {
		if len(vs) > 1 {
			if knownParams[k] {
				return nil, web.BadRequest("parameter " + k + " is repeated")
			}
			return nil, web.BadRequest("a parameter is repeated")
		}
		if !utf8.ValidString(k) || !utf8.ValidString(vs[0]) {
			return nil, web.BadRequest("parameters must be UTF-8")
		}
		if vs[0] != "" {
			f[k] = vs[0]
		}
	}
	return f, nil
}

// Length limits on token request fields (IN-03, ASVS 2.2.1). The scope
// limits are in scope.go, the client id's in clientauth.go, the password's
// is password.MaxBytes (PW-06).
const (
	// MaxUsernameChars bounds the username parameter. Names of 65 to 256
	// characters cannot exist (manage.MaxUsernameLength) and are answered as an
	// unknown user; only longer ones are refused as malformed.
	MaxUsernameChars = 256
	// MaxRefreshTokenBytes bounds refresh_token. Keyward's own are 48 bytes
	// (refresh tokens are checked by exact shape afterwards).
	MaxRefreshTokenBytes = 512
)

// checkLengths refuses a token request with a field longer than any valid
// value: 400 invalid_request (IN-03). It looks at the request alone, so the
// answer never depends on whether an account exists (TE-11), and the token
// handler runs it before client authentication, any lookup and any hashing
// (AV-02). Fields a grant does not use are checked too.
func checkLengths(f form) error {
	scope := f["scope"]
	switch {
	case utf8.RuneCountInString(f["username"]) > MaxUsernameChars:
		return web.BadRequest("username is too long")
	case passwordTooLong(f["password"]):
		return web.BadRequest("password is too long")
	case len(scope) > MaxScopeBytes:
		return web.BadRequest("scope is too long")
	case strings.Count(scope, " ") >= MaxScopeTokens:
		return web.BadRequest("scope has too many values")
	case len(f["refresh_token"]) > MaxRefreshTokenBytes:
		return web.BadRequest("refresh_token is too long")
	}
	return nil
}

// passwordTooLong reports whether pw is over the password cap as received
// or after NFKC, the two lengths the hasher refuses (PW-06), so a password
// that normalization would lengthen past the cap is refused before the user
// is looked up.
func passwordTooLong(pw string) bool {
	return len(pw) > password.MaxBytes || len(password.Normalize(pw)) > password.MaxBytes
}

// grant is one grant type: it checks its own parameters and credentials
// and says what to issue. Client authentication, the client's right to the
// grant type and issuing are the token handler's.
type grant interface {
	exchange(ctx context.Context, c storage.Client, f form) (issuance, error)
}

// grant returns the grant type named exactly name (TE-08), or nil.
func (s *Provider) grant(name string) grant {
	switch name {
	case manage.GrantPassword:
		if s.cfg.Passwords != nil {
			return passwordGrant{s}
		}
	case manage.GrantRefreshToken:
		return refreshGrant{s}
	case manage.GrantClientCredentials:
		return clientCredentialsGrant{s}
	case manage.GrantAuthorizationCode:
		if s.cfg.Interaction != nil {
			return codeGrant{s}
		}
	}
	return nil
}

// issuance is what a grant decided to issue.
type issuance struct {
	grantType string
	subject   string        // user id, or manage.ClientSubjectPrefix + client id
	user      *storage.User // for ID token claims; nil for client grants and when not needed
	userGrant bool
	scope     []string
	audience  string
	authTime  time.Time
	// signIn is what the login read of the account when it checked the
	// password; startFamily has storage re-check it (CreateRefreshFamily).
	signIn   storage.SignIn
	familyID string // refresh family, the sid claim; "" without one
	refresh  string // refresh token to return; "" for none
	// The authorization_code grant's: the ID token's nonce and amr, and the
	// code the tokens come from (a replay revokes them).
	nonce    string
	amr      []string
	codeHash []byte
}

// tokenResponse is RFC 6749 §5.1.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
	IDToken      string `json:"id_token,omitempty"`
}

// Token serves POST /oauth2/token (RFC 6749 §3.2): parse, authenticate the
// client, pick the grant, let it decide, issue.
func (s *Provider) Token(w http.ResponseWriter, r *http.Request) (err error) {
	ctx := r.Context()
	var name string
	defer func() { s.metrics.TokenRequest(name, tokenOutcome(err)) }()
	f, err := parseForm(r)
	if err != nil {
		return err
	}
	if err := checkLengths(f); err != nil {
		return err
	}
	c, err := s.authenticateClient(ctx, r, f)
	if err != nil {
		return err
	}
	name = f["grant_type"]
	if name == "" {
		return web.BadRequest("grant_type is required")
	}
	g := s.grant(name)
	if g == nil {
		return &web.Error{Code: web.ErrUnsupportedGrantType, Description: "the grant type is not supported"}
	}
	if !c.GrantTypes.Has(name) {
		return &web.Error{Code: web.ErrUnauthorizedClient, Description: "the client is not allowed this grant type"}
	}
	is, err := g.exchange(ctx, c, f)
	if err != nil {
		return err
	}
	is.grantType = name
	resp, err := s.issue(ctx, c, is)
	if err != nil {
		return err
	}
	web.NoStore(w)
	web.WriteJSON(w, http.StatusOK, resp)
	return nil
}

// tokenOutcome is the outcome label of keyward_token_requests_total.
func tokenOutcome(err error) string {
	if err == nil {
		return "success"
	}
	var oe *web.Error
	if errors.As(err, &oe) {
		return oe.Code
	}
	return web.ErrServerError
}

// issue signs the access token and, when openid was granted to a user, the
// ID token, and logs the issuance.
func (s *Provider) issue(ctx context.Context, c storage.Client, is issuance) (tokenResponse, error) {
	now := s.now()
	ttl := int64(s.cfg.AccessTokenTTL / time.Second)
	iat := now.Unix()
	scope := strings.Join(is.scope, " ")
	at := AccessClaims{
		Issuer: s.cfg.Issuer, Subject: is.subject, Audience: is.audience, IssuedAt: iat, Expiry: iat + ttl,
		ID: randomID(16), ClientID: c.ID, Scope: scope, SessionID: is.familyID,
	}
	if is.userGrant {
		at.AuthTime = is.authTime.Unix()
	}
	access, err := s.sign(typAccessToken, at)
	if err != nil {
		return tokenResponse{}, err
	}
	resp := tokenResponse{AccessToken: access, TokenType: "Bearer", ExpiresIn: ttl, RefreshToken: is.refresh, Scope: scope}
	if is.userGrant && hasScope(is.scope, ScopeOpenID) {
		idt := idClaims{
			Issuer: s.cfg.Issuer, Subject: is.subject, Audience: c.ID, IssuedAt: iat, Expiry: iat + ttl,
			AuthTime: at.AuthTime, AccessTokenHash: atHash(access), SessionID: is.familyID,
			Nonce: is.nonce, AMR: is.amr,
		}
		if is.user != nil {
			idt.addUser(is.user, is.scope)
		}
		if resp.IDToken, err = s.sign(typIDToken, idt); err != nil {
			return tokenResponse{}, err
		}
	}
	if is.codeHash != nil {
		err := s.cfg.Store.RecordAuthCodeTokens(ctx, is.codeHash, is.familyID, at.ID, time.Unix(at.Expiry, 0), now)
		if errors.Is(err, storage.ErrCodeReplayed) {
			return tokenResponse{}, errBadCode()
		}
		if err != nil {
			return tokenResponse{}, err
		}
	}
	s.log.InfoContext(ctx, "token issued", "grant_type", is.grantType, "client_id", c.ID, "sub", is.subject,
		"jti", at.ID, "scope", scope, "aud", is.audience, "family_id", is.familyID, "refresh_token_issued", is.refresh != "")
	ev := audit.TokenIssued
	if is.grantType == manage.GrantRefreshToken {
		ev = audit.TokenRefreshed
	}
	// The log record above and this event's are written now; the row
	// follows without holding the answer back (RecordAsync).
	s.audit.RecordAsync(ctx, audit.Event{Type: ev, Reason: is.grantType, Actor: is.subject, Subject: at.ID, ClientID: c.ID})
	return resp, nil
}

// startFamily stores a new refresh family with its first token for a user
// grant, when the client is allowed refresh tokens, and returns the token.
// The family lives ttl at most, whatever its use (RT-07): the grant's
// lifetime, Config.PasswordRefreshTokenTTL for the password grant (TE-16).
// Its tokens expire sooner when idle (RefreshTokenIdleTTL), never later.
// The store refuses the family, with storage.ErrSignInStale, when the
// account's password changed, or it was disabled or deleted, since
// is.signIn was read (RT-08): the caller answers that as a failed login.
func (s *Provider) startFamily(ctx context.Context, c storage.Client, is *issuance, ttl time.Duration, grant string) error {
	if !c.GrantTypes.Has(manage.GrantRefreshToken) {
		return nil
	}
	now := s.now()
	f := storage.RefreshFamily{
		ID: storage.NewID(), ClientID: c.ID, UserID: is.subject, Scope: is.scope, Audience: is.audience,
		AuthTime: storage.At(is.authTime), CreatedAt: storage.At(now), ExpiresAt: storage.At(now.Add(ttl)),
		Grant: grant,
	}
	tok := newRefreshToken()
	first := storage.RefreshToken{
		Hash: RefreshHash(tok), Scope: is.scope, CreatedAt: f.CreatedAt,
		IdleExpiresAt: storage.RefreshIdleExpiry(now, s.cfg.RefreshTokenIdleTTL, f.ExpiresAt.Time),
	}
	if err := s.cfg.Store.CreateRefreshFamily(ctx, f, first, is.signIn); err != nil {
		return err
	}
	is.familyID, is.refresh = f.ID, tok
	return nil
}

// DefaultTokenCleanupInterval is how often RunTokenCleanup deletes.
const DefaultTokenCleanupInterval = 10 * time.Minute

// TokenCleanupMargin keeps a revoked family or jti a little past the last
// access token that could name it, for clock skew between replicas.
const TokenCleanupMargin = 5 * time.Minute

// CleanupTokens deletes refresh families past their absolute expiry or
// revoked, and revoked access-token ids, once no access token that names
// them can still be valid.
func (s *Provider) CleanupTokens(ctx context.Context) (int64, error) {
	return s.cfg.Store.DeleteExpiredTokens(ctx, s.now().Add(-s.cfg.AccessTokenTTL-TokenCleanupMargin))
}

// RunTokenCleanup calls CleanupTokens every interval (default
// DefaultTokenCleanupInterval) until ctx ends; cmd/keyward runs it beside
// the throttle and audit cleanups.
func (s *Provider) RunTokenCleanup(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultTokenCleanupInterval
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if n, err := s.CleanupTokens(ctx); err != nil && ctx.Err() == nil {
			s.log.ErrorContext(ctx, "delete expired tokens", "err", err)
		} else if n > 0 {
			s.log.DebugContext(ctx, "deleted expired tokens", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

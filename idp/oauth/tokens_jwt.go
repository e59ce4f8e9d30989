package oauth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/go-jose/go-jose/v4"
	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/verify"
)

// JWS types in the header of what Keyward signs.
const (
	typAccessToken = "at+jwt" // RFC 9068 §2.1
	typIDToken     = "JWT"
)

// AccessClaims is an RFC 9068 §2.2 access token.
type AccessClaims struct {
	Issuer    string `json:"iss"`
	Subject   string `json:"sub"`
	Audience  string `json:"aud"`
	Expiry    int64  `json:"exp"`
	IssuedAt  int64  `json:"iat"`
	ID        string `json:"jti"`
	ClientID  string `json:"client_id"`
	Scope     string `json:"scope,omitempty"`
	AuthTime  int64  `json:"auth_time,omitempty"` // user grants
	SessionID string `json:"sid,omitempty"`       // the refresh family
}

// idClaims is an OIDC Core §2 ID token.
type idClaims struct {
	Issuer            string   `json:"iss"`
	Subject           string   `json:"sub"`
	Audience          string   `json:"aud"`
	Expiry            int64    `json:"exp"`
	IssuedAt          int64    `json:"iat"`
	AuthTime          int64    `json:"auth_time"`
	AccessTokenHash   string   `json:"at_hash"`
	SessionID         string   `json:"sid,omitempty"`
	Nonce             string   `json:"nonce,omitempty"` // the authorization request's (OIDC Core §3.1.3.6)
	AMR               []string `json:"amr,omitempty"`   // how the user authenticated (RFC 8176)
	Name              string   `json:"name,omitempty"`
	PreferredUsername string   `json:"preferred_username,omitempty"`
	Email             string   `json:"email,omitempty"`
	EmailVerified     *bool    `json:"email_verified,omitempty"`
}

// userClaims adds the profile and email claims scope allows (OIDC Core
// §5.4). Keyward stores no display name, so name is the username.
func (c *idClaims) addUser(u *storage.User, scope []string) {
	if hasScope(scope, ScopeProfile) {
		c.Name, c.PreferredUsername = u.Username, u.Username
	}
	if hasScope(scope, ScopeEmail) && u.Email != "" {
		v := u.EmailVerified
		c.Email, c.EmailVerified = u.Email, &v
	}
}

// atHash is the at_hash of an RS256 ID token (OIDC Core §3.1.3.6): the
// base64url left half of SHA-256 of the access token.
func atHash(accessToken string) string {
	h := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(h[:16])
}

// sign marshals claims and signs them with the active key.
func (s *Provider) sign(typ string, claims any) (string, error) {
	b, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("marshal %s claims: %w", typ, err)
	}
	tok, err := s.cfg.Keys.Sign(typ, b)
	if err != nil {
		return "", fmt.Errorf("sign %s: %w", typ, err)
	}
	return tok, nil
}

// randomID returns n random bytes in base64url: jti values and refresh
// tokens (RFC 6749 §10.10).
func randomID(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// refreshTokenLen is the length of kwrt_ + base64url of 32 bytes.
var refreshTokenLen = len(manage.RefreshTokenPrefix) + base64.RawURLEncoding.EncodedLen(32)

// newRefreshToken returns a fresh refresh token: 256 random bits.
func newRefreshToken() string { return manage.RefreshTokenPrefix + randomID(32) }

// RefreshHash is the only form of a refresh token the database holds.
func RefreshHash(tok string) []byte {
	h := sha256.Sum256([]byte(tok))
	return h[:]
}

// successorLabel separates successor derivation from any other use of SHA-256.
const successorLabel = "keyward refresh successor"

// successorToken derives the refresh token that succeeds presented, given
// the random salt stored on presented's row. A retry within the reuse
// window derives the same successor again; the database, holding only
// hashes and the salt, cannot.
func successorToken(presented string, salt []byte) string {
	h := sha256.New()
	h.Write([]byte(successorLabel))
	h.Write([]byte(presented))
	h.Write(salt)
	return manage.RefreshTokenPrefix + base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// looksLikeRefreshToken is a cheap shape check before any database work.
func looksLikeRefreshToken(tok string) bool {
	if len(tok) != refreshTokenLen || !strings.HasPrefix(tok, manage.RefreshTokenPrefix) {
		return false
	}
	for _, c := range tok[len(manage.RefreshTokenPrefix):] {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// ErrInvalidToken means an access token is not (or no longer) good.
var ErrInvalidToken = errors.New("invalid access token")

// ValidateAccessToken checks an access token with the verify library, as a
// resource server would — RS256 only, typ at+jwt, a kid from our published
// key set, exact iss, exp, iat, sub, client_id, jti — accepting any audience
// (a token for resource server "api" is still good at /userinfo and
// introspection), and adds what only Keyward knows: a revoked jti or a
// revoked (or deleted) refresh family named by sid. It answers
// ErrInvalidToken or a storage error; /userinfo, introspection and
// revocation validate only here.
func (s *Provider) ValidateAccessToken(ctx context.Context, raw string) (AccessClaims, error) {
	v, err := s.accessVerifier(ctx)
	if err != nil {
		return AccessClaims{}, err
	}
	vc, err := v.Verify(ctx, raw)
	if err != nil {
		return AccessClaims{}, ErrInvalidToken
	}
	c, ok := fromVerified(vc)
	// The issuer has no clock skew with itself: no leeway on exp.
	if !ok || !s.now().Before(vc.Expiry) {
		return AccessClaims{}, ErrInvalidToken
	}
	revoked, err := s.cfg.Store.AccessTokenRevoked(ctx, c.ID)
	if err != nil {
		return AccessClaims{}, err
	}
	if revoked {
		return AccessClaims{}, ErrInvalidToken
	}
	if c.SessionID != "" {
		f, err := s.cfg.Store.RefreshFamily(ctx, c.SessionID)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			return AccessClaims{}, ErrInvalidToken
		case err != nil:
			return AccessClaims{}, err
		case !f.RevokedAt.IsZero():
			return AccessClaims{}, ErrInvalidToken
		}
	}
	return c, nil
}

// fromVerified converts verified claims to the shape Keyward issues: one
// audience string, sid a string when present. Anything else was not signed
// by this server as an access token, so ok is false.
func fromVerified(vc *verify.Claims) (c AccessClaims, ok bool) {
	if len(vc.Audience) != 1 {
		return c, false
	}
	c = AccessClaims{
		Issuer: vc.Issuer, Subject: vc.Subject, Audience: vc.Audience[0], Expiry: vc.Expiry.Unix(),
		IssuedAt: vc.IssuedAt.Unix(), ID: vc.ID, ClientID: vc.ClientID, Scope: strings.Join(vc.Scopes, " "),
	}
	if !vc.AuthTime.IsZero() {
		c.AuthTime = vc.AuthTime.Unix()
	}
	if sid, present := vc.Raw["sid"]; present {
		if c.SessionID, ok = sid.(string); !ok || c.SessionID == "" {
			return c, false
		}
	}
	return c, true
}

// publicKeySource is the optional KeySource method that hands out the
// published keys directly (keys.Manager has it).
type publicKeySource interface {
	PublicKeys() jose.JSONWebKeySet
}

// tokenState is the token code's part of Provider.
type tokenState struct {
	verifierOnce sync.Once
	verifier     *verify.Verifier
	verifierErr  error
	keysETag     atomic.Pointer[string] // the JWKS ETag the verifier's keys were read at
}

// accessVerifier returns the verifier of Keyward's own access tokens, built
// on first use over the published key set (the KeySource's keys, never
// HTTP). Whenever the KeySource's JWKS ETag differs from the one the
// verifier last loaded at — a rotation or revocation, here or by another
// replica — it reloads first, so a removed key stops validating at once and
// a new one is known before its first token. (A KeySource without an ETag
// is reloaded on every call.)
func (s *Provider) accessVerifier(ctx context.Context) (*verify.Verifier, error) {
	s.verifierOnce.Do(func() {
		// The verifier outlives this request, so it gets a context of its
		// own; it starts no goroutine, and publishedKeys does no I/O.
		s.verifier, s.verifierErr = verify.NewWithKeys(context.Background(), verify.Config{
			Issuer:      s.cfg.Issuer,
			AnyAudience: true, // Keyward's endpoints accept a token for any of its audiences
			Now:         s.now,
		}, verify.KeySourceFunc(s.publishedKeys))
		if s.verifierErr != nil {
			s.verifierErr = fmt.Errorf("build access token verifier: %w", s.verifierErr)
		}
	})
	if s.verifierErr != nil {
		return nil, s.verifierErr
	}
	if _, etag := s.cfg.Keys.JWKS(); etag == "" || s.keysETag.Load() == nil || *s.keysETag.Load() != etag {
		if err := s.verifier.Refresh(ctx); err != nil {
			return nil, err
		}
	}
	return s.verifier, nil
}

// publishedKeys is the verifier's KeySource: the keys the JWKS publishes,
// from PublicKeys when the KeySource has it, else parsed from its JWKS
// document, so access tokens are checked against exactly what resource
// servers see. It records the ETag it read them at.
func (s *Provider) publishedKeys(context.Context) (jose.JSONWebKeySet, error) {
	doc, etag := s.cfg.Keys.JWKS() // read first: a change after it only costs one more reload
	var set jose.JSONWebKeySet
	if pk, ok := s.cfg.Keys.(publicKeySource); ok {
		set = pk.PublicKeys()
	} else if err := json.Unmarshal(doc, &set); err != nil {
		return set, fmt.Errorf("parse jwks: %w", err)
	}
	s.keysETag.Store(&etag)
	return set, nil
}

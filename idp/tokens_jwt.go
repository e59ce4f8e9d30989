package idp

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/go-jose/go-jose/v4"
	"github.com/keyward/keyward/storage"
)

// JWS types in the header of what Keyward signs.
const (
	typAccessToken = "at+jwt" // RFC 9068 §2.1
	typIDToken     = "JWT"
)

// ClientSubjectPrefix starts the sub of a client_credentials token, so it
// can never equal a user's id (32 hex characters; RFC 9068 §5).
const ClientSubjectPrefix = "client:"

// maxAccessTokenBytes bounds what validateAccessToken parses.
const maxAccessTokenBytes = 8 << 10

// accessClaims is an RFC 9068 §2.2 access token.
type accessClaims struct {
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
	Issuer            string `json:"iss"`
	Subject           string `json:"sub"`
	Audience          string `json:"aud"`
	Expiry            int64  `json:"exp"`
	IssuedAt          int64  `json:"iat"`
	AuthTime          int64  `json:"auth_time"`
	AccessTokenHash   string `json:"at_hash"`
	SessionID         string `json:"sid,omitempty"`
	Name              string `json:"name,omitempty"`
	PreferredUsername string `json:"preferred_username,omitempty"`
	Email             string `json:"email,omitempty"`
	EmailVerified     *bool  `json:"email_verified,omitempty"`
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
func (s *Server) sign(typ string, claims any) (string, error) {
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
var refreshTokenLen = len(RefreshTokenPrefix) + base64.RawURLEncoding.EncodedLen(32)

// newRefreshToken returns a fresh refresh token: 256 random bits.
func newRefreshToken() string { return RefreshTokenPrefix + randomID(32) }

// refreshHash is the only form of a refresh token the database holds.
func refreshHash(tok string) []byte {
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
	return RefreshTokenPrefix + base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// looksLikeRefreshToken is a cheap shape check before any database work.
func looksLikeRefreshToken(tok string) bool {
	if len(tok) != refreshTokenLen || !strings.HasPrefix(tok, RefreshTokenPrefix) {
		return false
	}
	for _, c := range tok[len(RefreshTokenPrefix):] {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// errInvalidToken means an access token is not (or no longer) good.
var errInvalidToken = errors.New("invalid access token")

// validateAccessToken checks an access token the way a resource server
// would — RS256 only, typ at+jwt, a kid from our key set, exact iss, exp —
// and adds what only Keyward knows: a revoked jti or a revoked (or deleted)
// refresh family named by sid. It answers errInvalidToken or a storage
// error. It is the one place /userinfo and introspection validate, so it can
// be swapped for the verify library.
func (s *Server) validateAccessToken(ctx context.Context, raw string) (accessClaims, error) {
	if raw == "" || len(raw) > maxAccessTokenBytes || strings.Count(raw, ".") != 2 {
		return accessClaims{}, errInvalidToken
	}
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil || len(jws.Signatures) != 1 {
		return accessClaims{}, errInvalidToken
	}
	h := jws.Signatures[0].Header
	typ, _ := h.ExtraHeaders[jose.HeaderType].(string)
	if !strings.EqualFold(typ, typAccessToken) && !strings.EqualFold(typ, "application/"+typAccessToken) {
		return accessClaims{}, errInvalidToken
	}
	set := s.publicKeys()
	keys := set.Key(h.KeyID)
	if h.KeyID == "" || len(keys) != 1 || (keys[0].Algorithm != "" && keys[0].Algorithm != string(jose.RS256)) ||
		(keys[0].Use != "" && keys[0].Use != "sig") || !keys[0].IsPublic() {
		return accessClaims{}, errInvalidToken
	}
	payload, err := jws.Verify(keys[0].Key)
	if err != nil {
		return accessClaims{}, errInvalidToken
	}
	var c accessClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return accessClaims{}, errInvalidToken
	}
	now := s.now().Unix()
	if c.Issuer != s.cfg.Issuer || c.Subject == "" || c.ClientID == "" || c.ID == "" || c.Audience == "" ||
		c.Expiry <= now || c.IssuedAt > now+60 {
		return accessClaims{}, errInvalidToken
	}
	revoked, err := s.cfg.Store.AccessTokenRevoked(ctx, c.ID)
	if err != nil {
		return accessClaims{}, err
	}
	if revoked {
		return accessClaims{}, errInvalidToken
	}
	if c.SessionID != "" {
		f, err := s.cfg.Store.RefreshFamily(ctx, c.SessionID)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			return accessClaims{}, errInvalidToken
		case err != nil:
			return accessClaims{}, err
		case !f.RevokedAt.IsZero():
			return accessClaims{}, errInvalidToken
		}
	}
	return c, nil
}

// publicKeySource is the optional KeySource method that hands out the
// published keys directly (keys.Manager has it).
type publicKeySource interface {
	PublicKeys() jose.JSONWebKeySet
}

// tokenState is the token code's part of Server.
type tokenState struct {
	jwksCache atomic.Pointer[parsedJWKS]
}

// parsedJWKS caches the JWKS document parsed, by ETag.
type parsedJWKS struct {
	etag string
	set  *jose.JSONWebKeySet
}

// publicKeys returns the published key set: from PublicKeys when the
// KeySource has it, else parsed from its JWKS document (cached by ETag), so
// access tokens are checked against exactly what resource servers see.
func (s *Server) publicKeys() *jose.JSONWebKeySet {
	if pk, ok := s.cfg.Keys.(publicKeySource); ok {
		set := pk.PublicKeys()
		return &set
	}
	doc, etag := s.cfg.Keys.JWKS()
	if c := s.jwksCache.Load(); c != nil && c.etag == etag && etag != "" {
		return c.set
	}
	set := new(jose.JSONWebKeySet)
	if err := json.Unmarshal(doc, set); err != nil {
		return new(jose.JSONWebKeySet)
	}
	s.jwksCache.Store(&parsedJWKS{etag: etag, set: set})
	return set
}

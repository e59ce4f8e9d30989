package manage

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"

	"github.com/keyward/keyward/storage"
)

// Grant types Keyward implements (RFC 6749 §4.3, §4.4, §6).
const (
	GrantPassword          = "password"
	GrantRefreshToken      = "refresh_token"
	GrantClientCredentials = "client_credentials"
	GrantAuthorizationCode = "authorization_code" // RFC 6749 §4.1 with PKCE (RFC 7636)
)

// ScopeAdmin is the scope of the admin API: only a client registered for
// it gets it, by client_credentials alone (SECURITY-REQUIREMENTS decision 1).
const ScopeAdmin = "keyward:admin"

// ClientSubjectPrefix starts the sub of a client_credentials token, so it
// can never equal a user's id (32 hex characters; RFC 9068 §5).
const ClientSubjectPrefix = "client:"

// Grants lists the grant types a client may be registered for.
var Grants = []string{GrantAuthorizationCode, GrantPassword, GrantRefreshToken, GrantClientCredentials}

// Token prefixes let secret scanners recognise leaked credentials.
const (
	ClientSecretPrefix = "kwcs_"
	RefreshTokenPrefix = "kwrt_"
)

// ClientSpec is a client registration as an operator writes it.
type ClientSpec struct {
	ID         string
	Name       string
	Public     bool
	AuthMethod string // default client_secret_basic (none for public clients)
	Grants     []string
	Scopes     []string
	Audiences  []string
	// IntrospectAudiences makes the client a resource server for these
	// audiences: it may introspect their access tokens (RFC 7662 §2.1).
	IntrospectAudiences []string
	// RedirectURIs are the authorization endpoint's redirect URIs
	// (CheckRedirectURI); a client with the authorization_code grant needs one.
	RedirectURIs []string
	// PostLogoutRedirectURIs are RP-initiated logout's return addresses.
	PostLogoutRedirectURIs []string
	// FirstParty clients skip the consent page.
	FirstParty bool
}

// NewClient checks spec and returns the client record and, for a
// confidential client, its generated secret: shown once, stored only hashed.
func NewClient(spec ClientSpec) (storage.Client, string, error) {
	if err := CheckNewClientID(spec.ID); err != nil {
		return storage.Client{}, "", err
	}
	c := storage.Client{
		ID: spec.ID, Name: spec.Name, Public: spec.Public, AuthMethod: spec.AuthMethod,
		GrantTypes: dedupe(spec.Grants), Scopes: dedupe(spec.Scopes), Audiences: dedupe(spec.Audiences),
		IntrospectAudiences: dedupe(spec.IntrospectAudiences),
		RedirectURIs:        dedupe(spec.RedirectURIs), PostLogoutRedirectURIs: dedupe(spec.PostLogoutRedirectURIs),
		FirstParty: spec.FirstParty,
	}
	if err := CheckClient(&c); err != nil {
		return storage.Client{}, "", err
	}
	if c.Public {
		return c, "", nil
	}
	secret, hash := NewClientSecret()
	c.SecretHash = hash
	return c, secret, nil
}

// CheckClient validates a client record and fills in its default
// authentication method. It is used on creation and on every change.
func CheckClient(c *storage.Client) error {
	if len(c.Name) > 200 {
		return fmt.Errorf("client name is longer than 200 bytes")
	}
	if c.AuthMethod == "" {
		c.AuthMethod = storage.AuthSecretBasic
		if c.Public {
			c.AuthMethod = storage.AuthNone
		}
	}
	switch {
	case c.Public && c.AuthMethod != storage.AuthNone:
		return fmt.Errorf("a public client authenticates with method none, not %q", c.AuthMethod)
	case !c.Public && c.AuthMethod != storage.AuthSecretBasic && c.AuthMethod != storage.AuthSecretPost:
		return fmt.Errorf("auth method %q is not one of client_secret_basic, client_secret_post", c.AuthMethod)
	}
	for _, g := range c.GrantTypes {
		if !slices.Contains(Grants, g) {
			return fmt.Errorf("unknown grant %q: use one of %s", g, strings.Join(Grants, ", "))
		}
		if c.Public && (g == GrantPassword || g == GrantClientCredentials) {
			return fmt.Errorf("grant %q is for confidential clients only (RFC 6749 §4.4, RFC 9700 §2.4)", g)
		}
	}
	for _, s := range c.Scopes {
		if !ValidScopeToken(s) {
			return fmt.Errorf("scope %q is not a valid scope token (RFC 6749 §3.3)", s)
		}
	}
	for _, a := range c.Audiences {
		if !ValidScopeToken(a) {
			return fmt.Errorf("audience %q must be visible ASCII without spaces or quotes", a)
		}
	}
	for _, a := range c.IntrospectAudiences {
		if !ValidScopeToken(a) {
			return fmt.Errorf("introspect audience %q must be visible ASCII without spaces or quotes", a)
		}
		if c.Public {
			return fmt.Errorf("a public client cannot introspect: introspection is for confidential clients (RFC 7662 §2.1)")
		}
	}
	return checkRedirects(c)
}

// MaxClientIDLen is the longest client id Keyward registers or accepts.
const MaxClientIDLen = 128

// CheckNewClientID is the rule for a new client id, which `keyward clients
// create` and the admin API both meet through NewClient: 1 to
// MaxClientIDLen RFC 3986 unreserved characters (A-Z a-z 0-9 - . _ ~).
// Such an id reads the same form-encoded or not, so it authenticates with
// HTTP Basic from clients that skip RFC 6749 §2.3.1's encoding, as many do.
func CheckNewClientID(id string) error {
	if id == "" || len(id) > MaxClientIDLen {
		return fmt.Errorf("client id must be 1 to %d characters", MaxClientIDLen)
	}
	for _, r := range id {
		if !unreserved(r) {
			return fmt.Errorf("client id %q contains %q: use only letters, digits and - . _ ~, "+
				"so that every HTTP Basic client can send it unencoded", id, r)
		}
	}
	return nil
}

// CheckClientID reports whether id can name a stored client: 1 to
// MaxClientIDLen visible ASCII characters. It is looser than
// CheckNewClientID so that clients registered before that rule, whose ids
// need form-encoding in Basic (RFC 6749 §2.3.1), still authenticate.
func CheckClientID(id string) error {
	if id == "" || len(id) > MaxClientIDLen {
		return fmt.Errorf("client id must be 1 to %d characters", MaxClientIDLen)
	}
	for _, r := range id {
		if r < 0x21 || r > 0x7e {
			return fmt.Errorf("client id must be visible ASCII without spaces")
		}
	}
	return nil
}

// InvalidError is a client record that breaks a rule of CheckClient: the
// caller's mistake, worded for it, never the store's.
type InvalidError struct{ Err error }

func (e *InvalidError) Error() string { return e.Err.Error() }

func (e *InvalidError) Unwrap() error { return e.Err }

// unreserved reports whether r is an RFC 3986 §2.3 unreserved character.
func unreserved(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' ||
		r == '-' || r == '.' || r == '_' || r == '~'
}

// ValidScopeToken reports whether s is a scope-token of RFC 6749 §3.3:
// 1*( %x21 / %x23-5B / %x5D-7E ).
func ValidScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

func dedupe(xs []string) storage.List {
	var out storage.List
	for _, x := range xs {
		for _, f := range strings.Fields(x) {
			if !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	}
	return out
}

// NewClientSecret returns a fresh client secret (256 random bits with the
// kwcs_ prefix) and its SHA-256 hash, the only form that is stored.
func NewClientSecret() (secret string, hash []byte) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	secret = ClientSecretPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return secret, HashClientSecret(secret)
}

// HashClientSecret is the stored form of a client secret. A 256-bit random
// secret needs no slow hash (DESIGN "Tokens").
func HashClientSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// ClientSecretMatches compares a presented secret with the stored hash in
// constant time.
func ClientSecretMatches(c storage.Client, secret string) bool {
	if len(c.SecretHash) != sha256.Size {
		return false
	}
	return subtle.ConstantTimeCompare(HashClientSecret(secret), c.SecretHash) == 1
}

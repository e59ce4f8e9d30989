package verify

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Defaults and limits applied by New and NewWithKeys to a zero Config field.
const (
	DefaultLeeway          = 30 * time.Second
	MaxLeeway              = 60 * time.Second // RS-08: never more than a minute
	DefaultMinCacheAge     = time.Minute
	DefaultMaxCacheAge     = time.Hour
	DefaultRefetchCooldown = 30 * time.Second
	DefaultMaxTokenSize    = 8 << 10 // RS-13
	defaultCacheAge        = 5 * time.Minute
	defaultHTTPTimeout     = 10 * time.Second
)

// Config says whose tokens a Verifier accepts and how it caches the issuer's keys.
// Only Issuer and Audience are required.
type Config struct {
	// Issuer is compared byte for byte with the iss claim and with the issuer of the
	// discovered metadata (RFC 8414 §3.3), e.g. "https://id.example.com".
	Issuer string
	// Audience is this resource server's identifier; the aud claim must contain it.
	// It is required unless AnyAudience is set; an empty Audience never means "any".
	Audience string
	// AnyAudience turns the audience check off: aud must still be a non-empty string
	// or array of strings, but may name any resource, and Audience must be empty. It
	// exists for the issuer's own endpoints (userinfo, introspection), which accept a
	// token whatever resource it was issued for. A resource server must not set it:
	// it would accept tokens meant for every other API of the issuer (RFC 9068 §4).
	AnyAudience bool
	// JWKSURL is the issuer's jwks_uri. When empty, New discovers it from
	// Issuer+"/.well-known/openid-configuration", falling back to the RFC 8414
	// /.well-known/oauth-authorization-server document.
	JWKSURL string
	// Algorithms is the allowlist of JWS algorithms (RFC 7518 §3.1, RFC 8037 §3.1);
	// default DefaultAlgorithms (RS256, ES256, EdDSA). Supported: RS256, RS384, RS512,
	// PS256, PS384, PS512, ES256, ES384, ES512, EdDSA (Ed25519). Whatever the list, each
	// key of the JWKS is bound to one algorithm (its alg, else the one allowed algorithm
	// its kty and curve fit) and a token's alg must be its key's (RS-03).
	Algorithms []string
	// Leeway is the clock skew allowed on exp, nbf and iat; default 30s, at most 60s.
	Leeway time.Duration
	// MinCacheAge and MaxCacheAge clamp the JWKS lifetime the issuer announces with
	// Cache-Control: max-age. A key the issuer removed is dropped at the latest after
	// MaxCacheAge. Defaults 1 minute and 1 hour.
	MinCacheAge, MaxCacheAge time.Duration
	// RefetchCooldown is the least time between two JWKS fetches triggered by an
	// unknown kid or a failed refresh (RS-05); default 30s.
	RefetchCooldown time.Duration
	// HTTPClient fetches discovery and JWKS documents; default a client with a 10s
	// timeout. Redirects to another host are refused unless the client sets its own
	// CheckRedirect.
	HTTPClient *http.Client
	// Now returns the current time; default time.Now. Tests inject a clock here.
	Now func() time.Time
	// MaxTokenSize caps the token length in bytes before any parsing; default 8 KiB.
	MaxTokenSize int
	// Realm is the realm of WWW-Authenticate challenges; default Audience (Issuer
	// with AnyAudience).
	Realm string
	// OnError, when set, is called with each failed background or on-demand key
	// refresh. It must not block. The last error is also available from Err.
	OnError func(error)
}

// withDefaults returns cfg with zero fields set to their defaults, or an error naming the
// first field that is unusable.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Issuer == "" {
		return cfg, errors.New("verify config: issuer is required")
	}
	switch {
	case cfg.AnyAudience && cfg.Audience != "":
		return cfg, errors.New("verify config: audience must be empty when any audience is accepted")
	case !cfg.AnyAudience && cfg.Audience == "":
		return cfg, errors.New("verify config: audience is required")
	}
	if len(cfg.Algorithms) == 0 {
		cfg.Algorithms = DefaultAlgorithms
	}
	cfg.Algorithms = append([]string(nil), cfg.Algorithms...)
	for _, alg := range cfg.Algorithms {
		if _, ok := algorithms[alg]; !ok {
			return cfg, fmt.Errorf("verify config: algorithm %q is not supported", alg)
		}
	}
	switch {
	case cfg.Leeway == 0:
		cfg.Leeway = DefaultLeeway
	case cfg.Leeway < 0 || cfg.Leeway > MaxLeeway:
		return cfg, fmt.Errorf("verify config: leeway %s is outside 0..%s", cfg.Leeway, MaxLeeway)
	}
	if cfg.MinCacheAge <= 0 {
		cfg.MinCacheAge = DefaultMinCacheAge
	}
	if cfg.MaxCacheAge <= 0 {
		cfg.MaxCacheAge = DefaultMaxCacheAge
	}
	if cfg.MaxCacheAge < cfg.MinCacheAge {
		return cfg, fmt.Errorf("verify config: max cache age %s is below min cache age %s", cfg.MaxCacheAge, cfg.MinCacheAge)
	}
	if cfg.RefetchCooldown <= 0 {
		cfg.RefetchCooldown = DefaultRefetchCooldown
	}
	if cfg.MaxTokenSize <= 0 {
		cfg.MaxTokenSize = DefaultMaxTokenSize
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Realm == "" {
		cfg.Realm = cfg.Audience
		if cfg.AnyAudience {
			cfg.Realm = cfg.Issuer
		}
	}
	if strings.ContainsAny(cfg.Realm, "\"\\\r\n") {
		return cfg, errors.New("verify config: realm must not contain quotes, backslashes or line breaks")
	}
	if cfg.JWKSURL != "" {
		if _, err := url.Parse(cfg.JWKSURL); err != nil {
			return cfg, fmt.Errorf("verify config: jwks url: %w", err)
		}
	}
	cfg.HTTPClient = httpClient(cfg.HTTPClient)
	return cfg, nil
}

// httpClient returns a copy of c (or a default client) that refuses redirects to
// another host (KM-10), so the configured issuer stays the only source of keys.
func httpClient(c *http.Client) *http.Client {
	if c == nil {
		c = &http.Client{Timeout: defaultHTTPTimeout}
	}
	cp := *c
	if cp.CheckRedirect == nil {
		cp.CheckRedirect = func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("too many redirects")
			}
			if req.URL.Scheme != via[0].URL.Scheme || req.URL.Host != via[0].URL.Host {
				return fmt.Errorf("redirect to another origin %s refused", req.URL.Host)
			}
			return nil
		}
	}
	return &cp
}

// clampAge bounds the cache lifetime announced by the issuer.
func (cfg *Config) clampAge(age time.Duration) time.Duration {
	return min(max(age, cfg.MinCacheAge), cfg.MaxCacheAge)
}

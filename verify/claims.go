package verify

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Claims are the RFC 9068 §2.2 claims of a verified access token.
type Claims struct {
	Issuer    string
	Subject   string // the user's stable id, or the client for client credentials
	ClientID  string
	Scopes    []string // the space-separated scope claim, split (RFC 9068 §2.2.3)
	Audience  []string
	Expiry    time.Time
	IssuedAt  time.Time
	NotBefore time.Time // zero when the token has no nbf
	AuthTime  time.Time // zero when the token has no auth_time (client credentials)
	ID        string    // jti
	// Raw holds every payload member; numbers are json.Number.
	Raw map[string]any
}

// HasScope reports whether the token was granted scope s.
func (c *Claims) HasScope(s string) bool {
	return slices.Contains(c.Scopes, s)
}

// maxNumericDate is 9999-12-31T23:59:59Z; a later or negative date is not a plausible
// token time and is refused as malformed (AC-J13: exp=1e400, exp=-1).
const maxNumericDate = 253402300799

// checkClaims decodes the payload and applies RFC 9068 §4 in the fail-closed order: it
// runs only after the signature verified (RS-09). Required: iss (exact), aud (contains
// audience, or any well-formed aud with AnyAudience), exp, iat, sub, client_id and jti; nbf and auth_time are checked when present.
func checkClaims(payload []byte, cfg *Config, now time.Time) (*Claims, error) {
	m, err := decodeObject(payload)
	if err != nil {
		return nil, fmt.Errorf("verify token: %w: payload: %w", ErrMalformed, err)
	}
	c := &Claims{Raw: m}
	if iss, ok := m["iss"].(string); !ok || iss != cfg.Issuer {
		return nil, fmt.Errorf("verify token: %w", ErrIssuer)
	}
	c.Issuer = cfg.Issuer
	if c.Audience, err = audience(m["aud"]); err != nil {
		return nil, err
	}
	if !cfg.AnyAudience && !slices.Contains(c.Audience, cfg.Audience) {
		return nil, fmt.Errorf("verify token: %w", ErrAudience)
	}

	exp, err := numericDate(m, "exp", true)
	if err != nil {
		return nil, err
	}
	iat, err := numericDate(m, "iat", true)
	if err != nil {
		return nil, err
	}
	nbf, err := numericDate(m, "nbf", false)
	if err != nil {
		return nil, err
	}
	authTime, err := numericDate(m, "auth_time", false)
	if err != nil {
		return nil, err
	}
	leeway := cfg.Leeway.Seconds()
	t := float64(now.UnixNano()) / 1e9
	if exp+leeway <= t {
		return nil, fmt.Errorf("verify token: %w: exp %s", ErrExpired, unixTime(exp).Format(time.RFC3339))
	}
	if nbf-leeway > t {
		return nil, fmt.Errorf("verify token: %w: nbf %s", ErrNotYetValid, unixTime(nbf).Format(time.RFC3339))
	}
	if iat-leeway > t {
		return nil, fmt.Errorf("verify token: %w: iat %s", ErrNotYetValid, unixTime(iat).Format(time.RFC3339))
	}
	c.Expiry, c.IssuedAt = unixTime(exp), unixTime(iat)
	if _, ok := m["nbf"]; ok {
		c.NotBefore = unixTime(nbf)
	}
	if _, ok := m["auth_time"]; ok {
		c.AuthTime = unixTime(authTime)
	}

	for _, s := range []struct {
		name string
		dst  *string
	}{{"sub", &c.Subject}, {"client_id", &c.ClientID}, {"jti", &c.ID}} {
		v, ok := m[s.name].(string)
		if !ok || v == "" {
			return nil, fmt.Errorf("verify token: %w: %s missing or not a string", ErrMalformed, s.name)
		}
		*s.dst = v
	}
	if raw, ok := m["scope"]; ok {
		s, ok := raw.(string)
		if !ok {
			return nil, fmt.Errorf("verify token: %w: scope is not a string", ErrMalformed)
		}
		c.Scopes = strings.Fields(s)
	}
	return c, nil
}

// audience reads aud as a string or an array of strings (RFC 7519 §4.1.3); anything else,
// including "" and [], is an audience error (RS-07).
func audience(v any) ([]string, error) {
	switch a := v.(type) {
	case string:
		if a != "" {
			return []string{a}, nil
		}
	case []any:
		out := make([]string, 0, len(a))
		for _, e := range a {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("verify token: %w: aud holds a non-string", ErrAudience)
			}
			out = append(out, s)
		}
		if len(out) > 0 {
			return out, nil
		}
	}
	return nil, fmt.Errorf("verify token: %w: aud missing or malformed", ErrAudience)
}

// numericDate reads a NumericDate (RFC 7519 §2): a JSON number of seconds, fractions
// allowed. A string, an overflowing or negative number is malformed. An absent optional
// claim reads as 0.
func numericDate(m map[string]any, name string, required bool) (float64, error) {
	raw, ok := m[name]
	if !ok {
		if required {
			return 0, fmt.Errorf("verify token: %w: %s missing", ErrMalformed, name)
		}
		return 0, nil
	}
	n, ok := raw.(json.Number)
	if !ok {
		return 0, fmt.Errorf("verify token: %w: %s is not a number", ErrMalformed, name)
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > maxNumericDate {
		return 0, fmt.Errorf("verify token: %w: %s is out of range", ErrMalformed, name)
	}
	return f, nil
}

// unixTime converts seconds since the epoch to a time.Time.
func unixTime(f float64) time.Time {
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC()
}

package oauth

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/guard"
	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage"
)

// maxAuthorizationBytes bounds the Authorization header we decode.
const maxAuthorizationBytes = 4 << 10

// MaxClientIDBytes is the longest client id (manage.CheckClientID). A longer one,
// in the form or in Basic, is invalid_request before any lookup (IN-03).
const MaxClientIDBytes = 128

// errClientAuth is the one answer to every failed client authentication:
// unknown client, wrong secret, wrong method, disabled client (CA-03). It is
// 401 with WWW-Authenticate: Basic (web.WriteError adds both).
func errClientAuth() *web.Error {
	return &web.Error{Code: web.ErrInvalidClient, Description: "client authentication failed"}
}

// dummyClient makes an unknown client id cost one secret comparison too.
var dummyClient = storage.Client{SecretHash: manage.HashClientSecret("kwcs_dummy")}

// authenticateClient identifies the calling client by exactly one method
// (RFC 6749 §2.3, CA-05): client_secret_basic (any confidential client, RFC
// 6749 §2.3.1), client_secret_post (only a client registered for it,
// CA-04), or none with client_id alone (public clients only). A client id
// over MaxClientIDBytes is invalid_request before the throttle, any lookup
// or any secret comparison.
func (s *Provider) authenticateClient(ctx context.Context, r *http.Request, f form) (storage.Client, error) {
	auths := r.Header.Values("Authorization")
	formID, formSecret := f["client_id"], f["client_secret"]
	if len(formID) > MaxClientIDBytes {
		return storage.Client{}, web.BadRequest("client_id is too long")
	}
	var id, secret, method string
	switch {
	case len(auths) > 1:
		return storage.Client{}, web.BadRequest("send one Authorization header")
	case len(auths) == 1:
		var ok bool
		id, secret, ok = ParseBasic(auths[0])
		if !ok {
			return storage.Client{}, errClientAuth()
		}
		if len(id) > MaxClientIDBytes {
			return storage.Client{}, web.BadRequest("client_id is too long")
		}
		if formSecret != "" || (formID != "" && formID != id) {
			return storage.Client{}, web.BadRequest("use one client authentication method")
		}
		method = storage.AuthSecretBasic
	case formSecret != "":
		if formID == "" {
			return storage.Client{}, errClientAuth()
		}
		id, secret, method = formID, formSecret, storage.AuthSecretPost
	case formID != "":
		id, method = formID, storage.AuthNone
	default:
		return storage.Client{}, errClientAuth()
	}
	// Brute force on client secrets (RFC 6749 §2.3.1, CA-08): a (client, IP)
	// pair that failed too often is answered 429 before any check; from an
	// IP that failed too often, only failures are (decideClient).
	ip := web.ClientIP(ctx)
	dec, err := s.throttle.CheckClient(ctx, id, ip)
	if err != nil {
		return storage.Client{}, err
	}
	if dec.Verdict == guard.Throttle {
		s.throttle.Report(ctx, s.audit, dec, audit.Event{Type: audit.LoginThrottled, Reason: dec.Kind, ClientID: id, UserAgent: r.UserAgent()})
		return storage.Client{}, dec.Err()
	}
	var c storage.Client
	err = storage.ErrNotFound
	if manage.CheckClientID(id) == nil { // a malformed id names no client
		c, err = s.cfg.Store.Client(ctx, id)
	}
	if errors.Is(err, storage.ErrNotFound) {
		manage.ClientSecretMatches(dummyClient, secret)
		return storage.Client{}, s.clientAuthFailed(ctx, r, dec, id, method, "unknown_client", false)
	}
	if err != nil {
		return storage.Client{}, err
	}
	var ok bool
	switch method {
	case storage.AuthSecretBasic:
		ok = !c.Public && manage.ClientSecretMatches(c, secret)
	case storage.AuthSecretPost:
		ok = !c.Public && manage.ClientSecretMatches(c, secret)
		if ok && c.AuthMethod != storage.AuthSecretPost {
			// The right secret in the body of a client_secret_basic
			// client (requests-oauthlib's refresh recipe does this). No
			// guess: it is not counted, and the client is told what to do.
			// A wrong secret sent so is a failure like any other.
			return storage.Client{}, s.wrongAuthMethod(ctx, r, c)
		}
	case storage.AuthNone:
		ok = c.Public
	}
	switch {
	case !ok:
		return storage.Client{}, s.clientAuthFailed(ctx, r, dec, id, method, "bad_credentials", true)
	case c.Disabled:
		s.log.InfoContext(ctx, "client authentication failed", "client_id", c.ID, "method", method, "reason", "client_disabled")
		return storage.Client{}, errClientAuth()
	}
	return c, nil
}

// clientAuthFailed answers a failed client authentication. Normally it logs
// the failure, counts it for the throttle (a failure to count is logged) and
// answers invalid_client. When the IP is over its limit (dec is
// VerifyFirst) the failure is answered 429 instead, reported once per
// window (Throttler.Report), and counted only for an existing client, which
// then meets the 429 before any check from this IP (decideClient): a flood
// of unknown ids from a throttled IP writes nothing.
func (s *Provider) clientAuthFailed(ctx context.Context, r *http.Request, dec guard.Decision, id, method, reason string, exists bool) error {
	id = web.Truncate(id, MaxClientIDBytes)
	if dec.Verdict == guard.VerifyFirst {
		if exists {
			if err := s.throttle.ClientAuthFailed(ctx, id, web.ClientIP(ctx)); err != nil {
				s.log.ErrorContext(ctx, "client throttle: record failure", "err", err)
			}
		}
		s.metrics.Throttled(dec.Kind)
		s.throttle.Report(ctx, s.audit, dec, audit.Event{Type: audit.LoginThrottled, Reason: dec.Kind, ClientID: id, UserAgent: r.UserAgent()})
		return dec.Err()
	}
	s.log.InfoContext(ctx, "client authentication failed", "client_id", id, "method", method, "reason", reason)
	if err := s.throttle.ClientAuthFailed(ctx, id, web.ClientIP(ctx)); err != nil {
		s.log.ErrorContext(ctx, "client throttle: record failure", "err", err)
	}
	return errClientAuth()
}

// wrongAuthMethod answers a client that sent its right secret by a method
// it is not registered for: invalid_client, saying which method to use,
// recorded as login_failed with reason wrong_auth_method and not counted
// toward the throttle. Only a client holding its secret sees the hint, so
// it tells nobody else whether the id exists (CA-03).
func (s *Provider) wrongAuthMethod(ctx context.Context, r *http.Request, c storage.Client) error {
	s.audit.Record(ctx, audit.Event{Type: audit.LoginFailed, Reason: "wrong_auth_method", Actor: c.ID, ClientID: c.ID, UserAgent: r.UserAgent()})
	return &web.Error{Code: web.ErrInvalidClient, Description: "this client must authenticate with HTTP Basic (client_secret_basic)"}
}

// ParseBasic decodes HTTP Basic client credentials, which RFC 6749 §2.3.1
// form-urlencodes before base64 (CA-02): it un-escapes each part once.
func ParseBasic(h string) (id, secret string, ok bool) {
	scheme, val, found := strings.Cut(h, " ")
	if !found || !strings.EqualFold(scheme, "Basic") || len(h) > maxAuthorizationBytes {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(val))
	if err != nil {
		return "", "", false
	}
	rawID, rawSecret, found := strings.Cut(string(raw), ":")
	if !found {
		return "", "", false
	}
	if id, err = url.QueryUnescape(rawID); err != nil || id == "" {
		return "", "", false
	}
	if secret, err = url.QueryUnescape(rawSecret); err != nil {
		return "", "", false
	}
	return id, secret, true
}

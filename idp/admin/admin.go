package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gorilla/mux"
	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/keys"
	"github.com/keyward/keyward/storage"
)

// Store is the part of storage the admin API reads itself; every change
// goes through Config.Ops.
type Store interface {
	User(ctx context.Context, id string) (storage.User, error)
	Users(ctx context.Context, offset, limit int) ([]storage.User, error)
	RefreshFamilies(ctx context.Context, userID string) ([]storage.RefreshFamily, error)
	Client(ctx context.Context, id string) (storage.Client, error)
	Clients(ctx context.Context) ([]storage.Client, error)
	AuditEvents(ctx context.Context, f storage.AuditFilter) ([]storage.AuditEvent, error)
}

// Token is what the admin API reads of a validated access token.
type Token struct {
	Subject   string // sub
	Audience  string // aud: one audience
	ClientID  string // client_id
	SessionID string // sid: the refresh family of a user grant, "" for client_credentials
	Scope     string // space-separated scopes
}

// ErrInvalidToken is what a TokenValidator answers for an access token that
// is not (or no longer) good.
var ErrInvalidToken = errors.New("invalid access token")

// TokenValidator checks one of Keyward's access tokens: signature, issuer,
// expiry, and that neither it nor its session is revoked. It answers
// ErrInvalidToken for a bad token, another error when it could not tell.
type TokenValidator interface {
	ValidateAccessToken(ctx context.Context, raw string) (Token, error)
}

// TokenValidatorFunc adapts a function to TokenValidator.
type TokenValidatorFunc func(ctx context.Context, raw string) (Token, error)

// ValidateAccessToken calls f.
func (f TokenValidatorFunc) ValidateAccessToken(ctx context.Context, raw string) (Token, error) {
	return f(ctx, raw)
}

// KeyRotator is what the admin API needs of the signing keys to rotate and
// revoke them (*keys.Manager has it). Without one in Config the
// /admin/v1/keys routes answer 404.
type KeyRotator interface {
	Rotate(ctx context.Context, force bool) (keys.Rotation, error)
	Revoke(ctx context.Context, kid string) (keys.Revocation, error)
	Keys() []keys.KeyInfo
}

// Auditor is the part of the audit trail the admin API uses (*audit.Auditor
// has it).
type Auditor interface {
	Record(ctx context.Context, e audit.Event)
	Flush() // writes the queued rows, so a listing shows them
}

// Config is what the admin API is given by the server that mounts it.
type Config struct {
	Issuer string         // the server's issuer: the audience an admin token must have, and the base of Location
	Store  Store          // reads
	Ops    *manage.Ops    // the changes, shared with the CLI; it records their audit events
	Tokens TokenValidator // validates the bearer token of every request
	Keys   KeyRotator     // nil: the key routes answer 404
	Audit  Auditor        // records what Ops does not, and lists the trail
	Log    *slog.Logger   // refusals and server errors

	// Hashes checks the password hashes of an import (*password.Hasher); nil: the
	// import route answers 404.
	Hashes manage.HashChecker
	// Scheme names a hash's format for the import summary (password.Scheme); nil: "".
	Scheme func(encoded string) string
}

// API serves /admin/v1. Create it with New; Server.Routes binds each
// handler through Authorize.
type API struct {
	issuer string
	store  Store
	ops    *manage.Ops
	tokens TokenValidator
	keys   KeyRotator
	audit  Auditor
	log    *slog.Logger
	hashes manage.HashChecker
	scheme func(string) string
}

// New returns the admin API of cfg; every field but Keys is required.
func New(cfg Config) *API {
	a := &API{issuer: cfg.Issuer, store: cfg.Store, ops: cfg.Ops, tokens: cfg.Tokens, keys: cfg.Keys,
		audit: cfg.Audit, log: cfg.Log, hashes: cfg.Hashes, scheme: cfg.Scheme}
	if a.scheme == nil {
		a.scheme = func(string) string { return "" }
	}
	return a
}

// Handler is an admin route's handler; actor is the sub of the access
// token that authorized it (client:<id>), recorded in the audit trail as
// who acted (LG-03, AD-10).
type Handler func(w http.ResponseWriter, r *http.Request, actor string) error

// Authorize wraps an admin route: no-store on every answer, then
// authorization (AD-01), then h; h's error is written by web.WriteError.
func (a *API) Authorize(h Handler) http.Handler {
	return web.Handle(a.log, func(w http.ResponseWriter, r *http.Request) error {
		web.NoStore(w)
		actor, err := a.authorize(w, r)
		if err != nil {
			return err
		}
		return h(w, r, actor)
	})
}

// authorize checks the request's bearer token (RFC 6750 §2.1, header
// only) and returns its sub. The token must be one of Keyward's access
// tokens (Config.Tokens), for Keyward itself (aud = the issuer, so a
// token a resource server received cannot be replayed here: AD-04), issued
// by client_credentials to a client that still exists, is enabled and is
// still registered for keyward:admin (AD-11), and carry keyward:admin.
// No or a bad token is 401 invalid_token; a good token without the admin
// scope is 403 insufficient_scope (RFC 6750 §3.1). Each refusal is logged
// (LG-02).
func (a *API) authorize(w http.ResponseWriter, r *http.Request) (string, error) {
	ctx := r.Context()
	deny := func(reason, sub string, e *web.Error) (string, error) {
		a.log.WarnContext(ctx, "admin authorization failed", "reason", reason, "sub", sub,
			"method", r.Method, "path", r.URL.Path, "status", e.Status)
		return "", e
	}
	if r.URL.Query().Has("access_token") {
		return deny("token_in_query", "", web.BearerError(w, web.ErrInvalidRequest, "send the access token in the Authorization header", http.StatusBadRequest))
	}
	auths := r.Header.Values("Authorization")
	switch {
	case len(auths) == 0:
		return deny("no_token", "", web.BearerError(w, "", "an access token with scope keyward:admin is required", http.StatusUnauthorized))
	case len(auths) > 1:
		return deny("two_tokens", "", web.BearerError(w, web.ErrInvalidRequest, "send one Authorization header", http.StatusBadRequest))
	}
	scheme, tok, _ := strings.Cut(auths[0], " ")
	if !strings.EqualFold(scheme, "Bearer") || tok == "" || strings.ContainsAny(tok, " \t,") {
		return deny("malformed_token", "", web.BearerError(w, web.ErrInvalidToken, "the Authorization header must be Bearer and one token", http.StatusUnauthorized))
	}
	invalid := func(reason, sub string) (string, error) {
		return deny(reason, sub, web.BearerError(w, web.ErrInvalidToken, "the access token is invalid or expired", http.StatusUnauthorized))
	}
	c, err := a.tokens.ValidateAccessToken(ctx, tok)
	if errors.Is(err, ErrInvalidToken) {
		return invalid("invalid_token", "")
	}
	if err != nil {
		return "", err
	}
	if !slices.Contains(strings.Fields(c.Scope), manage.ScopeAdmin) || c.Subject != manage.ClientSubjectPrefix+c.ClientID || c.SessionID != "" {
		return deny("insufficient_scope", c.Subject, web.BearerError(w, web.ErrInsufficientScope, "the access token lacks the keyward:admin scope", http.StatusForbidden))
	}
	if c.Audience != a.issuer {
		return invalid("wrong_audience", c.Subject)
	}
	cl, err := a.store.Client(ctx, c.ClientID)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return invalid("client_deleted", c.Subject)
	case err != nil:
		return "", err
	case cl.Disabled || !cl.Scopes.Has(manage.ScopeAdmin) || !cl.GrantTypes.Has(manage.GrantClientCredentials):
		return invalid("client_not_admin", c.Subject)
	}
	return c.Subject, nil
}

// record writes the audit event of an admin action, with the actor.
func (a *API) record(r *http.Request, actor string, e audit.Event) {
	e.Actor = actor
	e.UserAgent = r.UserAgent()
	a.audit.Record(r.Context(), e)
}

// notFound is the one 404 of the admin API: the same for an id that never
// existed and one that was deleted (AC-A2).
func notFound(what string) *web.Error {
	return &web.Error{Code: "not_found", Description: "no such " + what, Status: http.StatusNotFound}
}

// pathID returns the route variable name, or a 404 when it cannot be an id
// of ours (too long, not UTF-8, control characters): it never reaches the
// database, and it answers exactly as an unknown id does.
func pathID(r *http.Request, name, what string) (string, error) {
	id := mux.Vars(r)[name]
	if id == "" || len(id) > 256 || !utf8.ValidString(id) || strings.IndexFunc(id, isControl) >= 0 {
		return "", notFound(what)
	}
	return id, nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }

// query returns the query parameters, refusing any not in allowed and
// any given twice.
func query(r *http.Request, allowed ...string) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, web.BadRequest("the query string is malformed")
	}
	for k, vs := range q {
		if !slices.Contains(allowed, k) {
			return nil, web.BadRequest(fmt.Sprintf("unknown query parameter; use %s", strings.Join(allowed, ", ")))
		}
		if len(vs) > 1 {
			return nil, web.BadRequest("a query parameter is repeated")
		}
	}
	return q, nil
}

// intParam reads a query integer in [lo, hi], def when absent.
func intParam(q url.Values, name string, def, lo, hi int) (int, error) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, web.BadRequest(fmt.Sprintf("%s must be an integer from %d to %d", name, lo, hi))
	}
	return n, nil
}

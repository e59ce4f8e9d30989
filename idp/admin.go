package idp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

// The admin API (/admin/v1/...) lets an operator's tool manage users,
// clients, sessions, signing keys and read the audit trail. Every route is
// bound in Server.Routes through s.admin, which authorizes the request
// before the handler runs (AD-01). docs/admin.md and docs/openapi-admin.yaml
// describe it for callers.

// AdminStore is the part of storage the admin API needs beyond TokenStore
// and audit.Store.
type AdminStore interface {
	Users(ctx context.Context, offset, limit int) ([]storage.User, error)
	DeleteUser(ctx context.Context, id string) error
	RefreshFamilies(ctx context.Context, userID string) ([]storage.RefreshFamily, error)
	manage.UserSessionStore   // idp/manage/ops.go
	manage.ClientSessionStore // idp/manage/ops.go
	Clients(ctx context.Context) ([]storage.Client, error)
	CreateClient(ctx context.Context, c *storage.Client) error
	UpdateClient(ctx context.Context, id string, update func(*storage.Client) error) (storage.Client, error)
}

// KeyRotator is what the admin API needs of the signing keys to rotate and
// revoke them (*keys.Manager has it). Without one in Config the
// /admin/v1/keys routes answer 404.
type KeyRotator interface {
	Rotate(ctx context.Context, force bool) (keys.Rotation, error)
	Revoke(ctx context.Context, kid string) (keys.Revocation, error)
	Keys() []keys.KeyInfo
}

// adminHandler is an admin route's handler; actor is the sub of the
// access token that authorized it (client:<id>), recorded in the audit
// trail as who acted (LG-03, AD-10).
type adminHandler func(w http.ResponseWriter, r *http.Request, actor string) error

// admin wraps an admin route: no-store on every answer, then authorization.
func (s *Server) admin(h adminHandler) http.Handler {
	return web.Handle(s.log, func(w http.ResponseWriter, r *http.Request) error {
		web.NoStore(w)
		actor, err := s.authorizeAdmin(w, r)
		if err != nil {
			return err
		}
		return h(w, r, actor)
	})
}

// authorizeAdmin checks the request's bearer token (RFC 6750 §2.1, header
// only) and returns its sub. The token must be one of Keyward's access
// tokens (validateAccessToken), for Keyward itself (aud = the issuer, so a
// token a resource server received cannot be replayed here: AD-04), issued
// by client_credentials to a client that still exists, is enabled and is
// still registered for keyward:admin (AD-11), and carry keyward:admin.
// No or a bad token is 401 invalid_token; a good token without the admin
// scope is 403 insufficient_scope (RFC 6750 §3.1). Each refusal is logged
// (LG-02).
func (s *Server) authorizeAdmin(w http.ResponseWriter, r *http.Request) (string, error) {
	ctx := r.Context()
	deny := func(reason, sub string, e *web.Error) (string, error) {
		s.log.WarnContext(ctx, "admin authorization failed", "reason", reason, "sub", sub,
			"method", r.Method, "path", r.URL.Path, "status", e.Status)
		return "", e
	}
	if r.URL.Query().Has("access_token") {
		return deny("token_in_query", "", bearerError(w, web.ErrInvalidRequest, "send the access token in the Authorization header", http.StatusBadRequest))
	}
	auths := r.Header.Values("Authorization")
	switch {
	case len(auths) == 0:
		return deny("no_token", "", bearerError(w, "", "an access token with scope keyward:admin is required", http.StatusUnauthorized))
	case len(auths) > 1:
		return deny("two_tokens", "", bearerError(w, web.ErrInvalidRequest, "send one Authorization header", http.StatusBadRequest))
	}
	scheme, tok, _ := strings.Cut(auths[0], " ")
	if !strings.EqualFold(scheme, "Bearer") || tok == "" || strings.ContainsAny(tok, " \t,") {
		return deny("malformed_token", "", bearerError(w, web.ErrInvalidToken, "the Authorization header must be Bearer and one token", http.StatusUnauthorized))
	}
	invalid := func(reason, sub string) (string, error) {
		return deny(reason, sub, bearerError(w, web.ErrInvalidToken, "the access token is invalid or expired", http.StatusUnauthorized))
	}
	c, err := s.validateAccessToken(ctx, tok)
	if errors.Is(err, errInvalidToken) {
		return invalid("invalid_token", "")
	}
	if err != nil {
		return "", err
	}
	if !hasScope(strings.Fields(c.Scope), ScopeAdmin) || c.Subject != ClientSubjectPrefix+c.ClientID || c.SessionID != "" {
		return deny("insufficient_scope", c.Subject, bearerError(w, errInsufficientScope, "the access token lacks the keyward:admin scope", http.StatusForbidden))
	}
	if c.Audience != s.cfg.Issuer {
		return invalid("wrong_audience", c.Subject)
	}
	cl, err := s.cfg.Store.Client(ctx, c.ClientID)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return invalid("client_deleted", c.Subject)
	case err != nil:
		return "", err
	case cl.Disabled || !cl.Scopes.Has(ScopeAdmin) || !cl.GrantTypes.Has(manage.GrantClientCredentials):
		return invalid("client_not_admin", c.Subject)
	}
	return c.Subject, nil
}

// record writes the audit event of an admin action, with the actor.
func (s *Server) record(r *http.Request, actor string, e audit.Event) {
	e.Actor = actor
	e.UserAgent = r.UserAgent()
	s.audit.Record(r.Context(), e)
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

// adminQuery returns the query parameters, refusing any not in allowed and
// any given twice.
func adminQuery(r *http.Request, allowed ...string) (url.Values, error) {
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

// maxJSONDepth bounds the nesting of an admin request body (IN-06).
const maxJSONDepth = 32

// decodeJSON reads the request's JSON body strictly into dst (IN-06,
// AC-A1): Content-Type application/json; valid UTF-8; one object whose
// keys are all in fields, spelt exactly so; no key twice, not even in
// another case; no null; no number beyond float64; no control character in
// any string; nothing nested deeper than maxJSONDepth; nothing after the
// object; and each value of the type dst's field has. Every breach is 400
// invalid_request, decided before dst is touched. An empty body is allowed
// only when optional (dst is left as it is).
func decodeJSON(r *http.Request, fields []string, dst any, optional bool) error {
	if optional && r.ContentLength == 0 && r.Header.Get("Content-Type") == "" {
		return nil
	}
	body, err := web.ReadJSONBody(r)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 && optional {
		return nil
	}
	if err := checkJSON(body, fields); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return web.BadRequest(fmt.Sprintf("%s has the wrong type", te.Field))
		}
		return web.BadRequest("the request body does not match the expected object")
	}
	return nil
}

// checkJSON walks body token by token (no recursion, so a deep nesting
// costs nothing) and enforces decodeJSON's rules that encoding/json does
// not: exact top-level keys, no duplicate or case-variant keys, no null,
// finite numbers, no control characters, a depth limit, no trailing data.
func checkJSON(body []byte, fields []string) error {
	if !utf8.Valid(body) {
		return web.BadRequest("the request body is not valid UTF-8")
	}
	type frame struct {
		object, wantKey bool
		keys            map[string]bool
	}
	var stack []frame
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	started := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return web.BadRequest("the request body is not valid JSON")
		}
		if len(stack) == 0 {
			if started {
				return web.BadRequest("the request body has data after the JSON object")
			}
			if d, ok := tok.(json.Delim); !ok || d != '{' {
				return web.BadRequest("the request body must be a JSON object")
			}
			started = true
		}
		if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].wantKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:n-1]
				if n > 1 && stack[n-2].object {
					stack[n-2].wantKey = true
				}
				continue
			}
			k, _ := tok.(string)
			if strings.IndexFunc(k, isControl) >= 0 {
				return web.BadRequest("a key contains a control character")
			}
			if n == 1 && !slices.Contains(fields, k) {
				if strings.Contains(strings.ToLower(k), "password") {
					return web.BadRequest("the admin API never sets a password; the user resets their own")
				}
				return web.BadRequest(fmt.Sprintf("unknown field; the fields are %s", strings.Join(fields, ", ")))
			}
			lk := strings.ToLower(k)
			if stack[n-1].keys[lk] {
				return web.BadRequest("a key appears more than once")
			}
			stack[n-1].keys[lk] = true
			stack[n-1].wantKey = false
			continue
		}
		switch v := tok.(type) {
		case json.Delim:
			if v == '{' || v == '[' {
				if len(stack) >= maxJSONDepth {
					return web.BadRequest("the request body is nested too deeply")
				}
				stack = append(stack, frame{object: v == '{', wantKey: v == '{', keys: map[string]bool{}})
				continue
			}
			stack = stack[:len(stack)-1]
		case nil:
			return web.BadRequest("null is not an accepted value")
		case string:
			if strings.IndexFunc(v, isControl) >= 0 {
				return web.BadRequest("a value contains a control character")
			}
		case json.Number:
			if _, err := strconv.ParseFloat(string(v), 64); err != nil {
				return web.BadRequest("a number is out of range")
			}
		}
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].wantKey = true
		}
	}
	if len(stack) != 0 || !started {
		return web.BadRequest("the request body is not valid JSON")
	}
	return nil
}

// noBody refuses a request body on a route that takes none.
func noBody(r *http.Request) error {
	b, err := io.ReadAll(r.Body)
	if err != nil || len(bytes.TrimSpace(b)) > 0 {
		return web.BadRequest("this request takes no body")
	}
	return nil
}

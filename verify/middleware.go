package verify

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
)

// ctxKey is the context key under which Middleware stores what it verified.
type ctxKey struct{}

// authInfo is what Middleware stores in the request context.
type authInfo struct {
	claims *Claims
	realm  string
}

// ClaimsFrom returns the claims Middleware stored in ctx.
func ClaimsFrom(ctx context.Context) (*Claims, bool) {
	a, ok := ctx.Value(ctxKey{}).(*authInfo)
	if !ok {
		return nil, false
	}
	return a.claims, true
}

// Middleware admits requests carrying a valid access token in the Authorization header
// (RFC 6750 §2.1) and stores its claims for ClaimsFrom. Otherwise it answers, per
// RFC 6750 §3:
//   - no bearer token: 401 with a bare Bearer realm challenge (a token only in the
//     query string counts as none, RS-16);
//   - an invalid token: 401 error="invalid_token";
//   - two Authorization headers, two credentials in one, an empty token, or a token also
//     in the query string or form body: 400 error="invalid_request" (AC-H1, AC-H2).
//
// The form body is examined only after the header token verified, so unauthenticated
// requests never make the middleware read a body.
func (v *Verifier) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, problem := bearerToken(r)
		switch {
		case problem != "":
			challenge(w, v.cfg.Realm, http.StatusBadRequest, "invalid_request", problem, "")
			return
		case token == "":
			challenge(w, v.cfg.Realm, http.StatusUnauthorized, "", "", "")
			return
		}
		claims, err := v.Verify(r.Context(), token)
		if err != nil {
			challenge(w, v.cfg.Realm, http.StatusUnauthorized, "invalid_token", description(err), "")
			return
		}
		if isForm(r) {
			if err := r.ParseForm(); err != nil {
				challenge(w, v.cfg.Realm, http.StatusBadRequest, "invalid_request", "the request body is malformed", "")
				return
			}
			if _, ok := r.PostForm["access_token"]; ok {
				challenge(w, v.cfg.Realm, http.StatusBadRequest, "invalid_request", "more than one access token in the request", "")
				return
			}
		}
		ctx := context.WithValue(r.Context(), ctxKey{}, &authInfo{claims: claims, realm: v.cfg.Realm})
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// bearerToken extracts the one bearer token of r. It returns a problem description when
// the request is malformed, and "" for both when there is no bearer token.
func bearerToken(r *http.Request) (token, problem string) {
	inQuery := r.URL.RawQuery != "" && strings.Contains(r.URL.RawQuery, "access_token") &&
		r.URL.Query().Has("access_token")
	values := r.Header.Values("Authorization")
	switch {
	case len(values) > 1:
		return "", "more than one Authorization header"
	case len(values) == 0:
		return "", "" // a query-string token alone is not accepted (RFC 9700 §4.3.2)
	}
	scheme, rest, _ := strings.Cut(values[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", "" // another scheme: no bearer token was offered
	}
	switch {
	case strings.Contains(rest, ","):
		return "", "more than one credential in the Authorization header"
	case rest == "":
		return "", "the bearer token is empty"
	case inQuery:
		return "", "more than one access token in the request"
	}
	return rest, ""
}

// isForm reports whether r carries a form-encoded body that could hold access_token
// (RFC 6750 §2.2).
func isForm(r *http.Request) bool {
	if r.Body == nil || r.Body == http.NoBody {
		return false
	}
	ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
	return strings.EqualFold(strings.TrimSpace(ct), "application/x-www-form-urlencoded")
}

// RequireScope returns middleware that admits a request only when the claims stored by
// Middleware grant every one of scopes, and otherwise answers 403 with
// error="insufficient_scope" and the scopes required (RFC 6750 §3.1). Without stored
// claims (Middleware did not run) it answers 401.
func RequireScope(scopes ...string) func(http.Handler) http.Handler {
	need := strings.Join(scopes, " ")
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			a, ok := r.Context().Value(ctxKey{}).(*authInfo)
			if !ok {
				challenge(w, "", http.StatusUnauthorized, "", "", "")
				return
			}
			for _, s := range scopes {
				if !a.claims.HasScope(s) {
					challenge(w, a.realm, http.StatusForbidden, "insufficient_scope",
						"the access token lacks a required scope", need)
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	}
}

// challenge writes an RFC 6750 §3 response: the WWW-Authenticate header and, when there
// is an error code, a small JSON body with the same code and description.
func challenge(w http.ResponseWriter, realm string, status int, code, desc, scope string) {
	var b strings.Builder
	b.WriteString("Bearer")
	sep := " "
	param := func(name, value string) {
		if value == "" {
			return
		}
		b.WriteString(sep)
		b.WriteString(name)
		b.WriteString(`="`)
		b.WriteString(quoteSafe(value))
		b.WriteString(`"`)
		sep = ", "
	}
	param("realm", realm)
	param("error", code)
	param("error_description", desc)
	param("scope", scope)
	h := w.Header()
	h.Set("WWW-Authenticate", b.String())
	h.Set("Cache-Control", "no-store")
	if code == "" {
		w.WriteHeader(status)
		return
	}
	h.Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Error       string `json:"error"`
		Description string `json:"error_description,omitempty"`
	}{code, desc})
}

// quoteSafe drops the characters RFC 6750 §3 does not allow inside a quoted
// auth-param value (%x20-21 / %x23-5B / %x5D-7E), so a value cannot break the header.
func quoteSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return -1
		}
		return r
	}, s)
}

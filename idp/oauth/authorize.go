package oauth

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage"
)

// Interaction is the browser side of the authorization endpoint (idp/login
// implements it).
type Interaction interface {
	// Session returns the valid login session of the browser that sent r (cookie), ok=false when
	// none: expired, revoked, or the user's password changed after it began, or the user is disabled.
	Session(r *http.Request) (s storage.LoginSession, ok bool, err error)
	// ConsentGiven reports whether userID has a remembered consent to every scope for clientID.
	ConsentGiven(ctx context.Context, userID, clientID string, scope []string) (bool, error)
	// ErrorPage renders the authorization error page (unknown client, bad redirect URI: never
	// redirected); description is generic and safe to show.
	ErrorPage(w http.ResponseWriter, r *http.Request, status int, description string)
	// EndSession ends the browser's login session (if any), clears its cookie, returns the user id.
	EndSession(w http.ResponseWriter, r *http.Request) (userID string, err error)
}

// Paths of the authorization flow (issue 15); the login pages are idp/login's.
const (
	AuthorizePath  = "/oauth2/authorize"
	ResumePath     = "/oauth2/authorize/resume"
	LogoutPath     = "/oauth2/logout"
	LoginPath      = "/login"
	ConsentPath    = "/consent"
	LogoutPagePath = "/logout"
	LogoutDonePath = "/logout/done"
)

// Lifetimes of the authorization flow.
const (
	AuthRequestTTL = 10 * time.Minute // a pending request while the user logs in
	AuthCodeTTL    = 60 * time.Second // an authorization code (RFC 6749 §4.1.2: short)
)

// Bounds on authorization request parameters (IN-03).
const (
	maxStateBytes     = 1024
	maxNonceBytes     = 512
	maxLoginHintChars = 256
	maxAuthParamBytes = 4096
)

// errorPageDescriptions are what the error page says: generic, safe to show.
const (
	descBadClient   = "The application that sent you here is not registered, or is disabled."
	descBadRedirect = "The application that sent you here gave a return address that is not registered for it."
	descBadRequest  = "The sign-in request is invalid or has expired. Go back to the application and try again."
	descServer      = "The server could not complete the sign-in. Try again later."
)

// authError is an error the authorization endpoint sends back to the
// client's redirect URI (RFC 6749 §4.1.2.1).
type authError struct{ code, description string }

func (e *authError) Error() string { return e.code }

func authErr(code, description string) *authError { return &authError{code, description} }

// authParams reads the authorization request's parameters: the query of a
// GET, the form body of a POST (OIDC Core §3.1.2.1). A repeated parameter
// is refused (RFC 6749 §3.1).
func authParams(r *http.Request) (map[string]string, error) {
	var vals url.Values
	var err error
	if r.Method == http.MethodPost {
		mt, _, perr := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if perr != nil || mt != "application/x-www-form-urlencoded" {
			return nil, errors.New("bad content type")
		}
		body, rerr := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if rerr != nil {
			return nil, rerr
		}
		vals, err = url.ParseQuery(string(body))
	} else {
		vals, err = url.ParseQuery(r.URL.RawQuery)
	}
	if err != nil {
		return nil, err
	}
	p := make(map[string]string, len(vals))
	for k, vs := range vals {
		if len(vs) > 1 {
			return nil, errors.New("repeated parameter " + k)
		}
		if !utf8.ValidString(vs[0]) || len(vs[0]) > maxAuthParamBytes {
			return nil, errors.New("bad parameter " + k)
		}
		if vs[0] != "" {
			p[k] = vs[0]
		}
	}
	return p, nil
}

// Authorize serves GET and POST /oauth2/authorize (RFC 6749 §4.1.1, OIDC
// Core §3.1.2). The client and redirect URI are checked first, and any
// error with them is shown on Interaction.ErrorPage, never redirected;
// every later error goes back to the client with state and iss.
func (s *Provider) Authorize(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	web.NoStore(w)
	p, perr := authParams(r)
	if perr != nil {
		s.errorPage(w, r, http.StatusBadRequest, descBadRequest)
		return
	}
	c, ok := s.authClient(w, r, p["client_id"])
	if !ok {
		return
	}
	redirect := p["redirect_uri"]
	if redirect == "" && len(c.RedirectURIs) == 1 && !hasScope(strings.Split(p["scope"], " "), ScopeOpenID) {
		redirect = c.RedirectURIs[0] // RFC 6749 §3.1.2.3; OIDC always requires it
	}
	if redirect == "" || !manage.MatchRedirectURI(c.RedirectURIs, redirect) {
		s.log.InfoContext(ctx, "authorize refused: redirect URI not registered", "client_id", c.ID)
		s.errorPage(w, r, http.StatusBadRequest, descBadRedirect)
		return
	}
	req := storage.AuthRequest{ClientID: c.ID, RedirectURI: redirect, State: p["state"], ResponseMode: "query", MaxAge: -1}
	if p["response_mode"] == "form_post" {
		req.ResponseMode = "form_post"
	}
	if err := s.checkAuthRequest(c, p, &req); err != nil {
		var ae *authError
		if errors.As(err, &ae) {
			s.authRedirect(w, r, req, url.Values{"error": {ae.code}, "error_description": {ae.description}})
			return
		}
		s.serverError(w, r, err)
		return
	}
	now := s.now()
	req.ID = randomID(16)
	req.CreatedAt, req.ExpiresAt = storage.At(now), storage.At(now.Add(AuthRequestTTL))
	if err := s.cfg.Store.CreateAuthRequest(ctx, &req); err != nil {
		s.serverError(w, r, err)
		return
	}
	s.proceed(w, r, req, c)
}

// authClient loads the client named by the request; an unknown or disabled
// one, or one without the authorization_code grant, is the error page.
func (s *Provider) authClient(w http.ResponseWriter, r *http.Request, id string) (storage.Client, bool) {
	if id == "" || len(id) > manage.MaxClientIDLen {
		s.errorPage(w, r, http.StatusBadRequest, descBadClient)
		return storage.Client{}, false
	}
	c, err := s.cfg.Store.Client(r.Context(), id)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		s.errorPage(w, r, http.StatusBadRequest, descBadClient)
		return storage.Client{}, false
	case err != nil:
		s.serverError(w, r, err)
		return storage.Client{}, false
	case c.Disabled || len(c.RedirectURIs) == 0:
		s.errorPage(w, r, http.StatusBadRequest, descBadClient)
		return storage.Client{}, false
	}
	return c, true
}

// checkAuthRequest checks everything but the client and redirect URI and
// fills req in; its *authError goes back to the client.
func (s *Provider) checkAuthRequest(c storage.Client, p map[string]string, req *storage.AuthRequest) error {
	switch {
	case len(p["state"]) > maxStateBytes:
		req.State = ""
		return authErr(web.ErrInvalidRequest, "state is too long")
	case p["response_mode"] != "" && p["response_mode"] != "query" && p["response_mode"] != "form_post":
		return authErr(web.ErrInvalidRequest, "response_mode must be query or form_post")
	case p["response_type"] == "":
		return authErr(web.ErrInvalidRequest, "response_type is required")
	case p["response_type"] != "code":
		return authErr("unsupported_response_type", "only response_type=code is supported")
	case !c.GrantTypes.Has(manage.GrantAuthorizationCode):
		return authErr(web.ErrUnauthorizedClient, "the client is not allowed the authorization_code grant")
	case p["request"] != "" || p["request_uri"] != "":
		return authErr("request_not_supported", "request objects are not supported")
	case p["code_challenge"] == "":
		return authErr(web.ErrInvalidRequest, "code_challenge is required (PKCE, RFC 7636)")
	case p["code_challenge_method"] != "S256":
		return authErr(web.ErrInvalidRequest, "code_challenge_method must be S256")
	case !validChallenge(p["code_challenge"]):
		return authErr(web.ErrInvalidRequest, "code_challenge must be 43 base64url characters (S256)")
	case len(p["nonce"]) > maxNonceBytes:
		return authErr(web.ErrInvalidRequest, "nonce is too long")
	case utf8.RuneCountInString(p["login_hint"]) > maxLoginHintChars:
		return authErr(web.ErrInvalidRequest, "login_hint is too long")
	}
	requested, err := parseScope(p["scope"])
	if err != nil {
		return authErr(web.ErrInvalidScope, "scope is malformed")
	}
	scope, err := grantScope(requested, c, manage.GrantAuthorizationCode, nil)
	if err != nil {
		return authErr(web.ErrInvalidScope, "the requested scope is not allowed for this client")
	}
	aud, err := resolveAudience(form{"audience": p["audience"], "resource": p["resource"]}, c, s.cfg.Issuer)
	if err != nil {
		return authErr(web.ErrInvalidTarget, "the requested audience is not registered for this client")
	}
	prompt, err := parsePrompt(p["prompt"])
	if err != nil {
		return err
	}
	maxAge := int64(-1)
	if v, ok := p["max_age"]; ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return authErr(web.ErrInvalidRequest, "max_age must be a non-negative integer")
		}
		maxAge = n
	}
	req.Scope, req.Audience, req.Nonce, req.CodeChallenge = scope, aud, p["nonce"], p["code_challenge"]
	req.Prompt, req.MaxAge, req.LoginHint = prompt, maxAge, p["login_hint"]
	return nil
}

// parsePrompt checks prompt (OIDC Core §3.1.2.1): none, login and consent
// are known (select_account is ignored); none stands alone.
func parsePrompt(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	var out []string
	for _, p := range strings.Split(v, " ") {
		switch p {
		case "none", "login", "consent":
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		case "select_account":
		default:
			return "", authErr(web.ErrInvalidRequest, "prompt must be none, login or consent")
		}
	}
	if slices.Contains(out, "none") && len(out) > 1 {
		return "", authErr(web.ErrInvalidRequest, "prompt=none cannot be combined with other values")
	}
	return strings.Join(out, " "), nil
}

func promptHas(prompt, v string) bool { return slices.Contains(strings.Split(prompt, " "), v) }

// validChallenge: an S256 challenge is the base64url SHA-256, 43 characters.
func validChallenge(ch string) bool {
	if len(ch) != 43 {
		return false
	}
	for _, c := range ch {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Resume serves GET /oauth2/authorize/resume?req=ID, where the login and
// consent pages send the browser back.
func (s *Provider) Resume(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	web.NoStore(w)
	id := r.URL.Query().Get("req")
	if id == "" || len(id) > 64 {
		s.errorPage(w, r, http.StatusBadRequest, descBadRequest)
		return
	}
	req, err := s.cfg.Store.AuthRequest(ctx, id)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		s.errorPage(w, r, http.StatusBadRequest, descBadRequest)
		return
	case err != nil:
		s.serverError(w, r, err)
		return
	case !s.now().Before(req.ExpiresAt.Time):
		s.errorPage(w, r, http.StatusBadRequest, descBadRequest)
		return
	}
	c, ok := s.authClient(w, r, req.ClientID)
	if !ok {
		return
	}
	s.proceed(w, r, req, c)
}

// proceed takes a stored request as far as it can go: to the login page,
// the consent page, an error at the client, or the code.
func (s *Provider) proceed(w http.ResponseWriter, r *http.Request, req storage.AuthRequest, c storage.Client) {
	ctx := r.Context()
	none := promptHas(req.Prompt, "none")
	sess, ok, err := s.cfg.Interaction.Session(r)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	loginNeeded := !ok
	if ok && !req.LoginAt.IsZero() && sess.ID != req.SessionID {
		loginNeeded = true // another login than the one this request saw
	}
	if ok && req.LoginAt.IsZero() {
		if promptHas(req.Prompt, "login") {
			loginNeeded = true
		}
		if req.MaxAge >= 0 && s.now().Sub(sess.AuthTime.Time) > time.Duration(req.MaxAge)*time.Second {
			loginNeeded = true
		}
	}
	if loginNeeded {
		if none {
			s.finishError(w, r, req, "login_required", "the user is not signed in")
			return
		}
		s.toPage(w, r, LoginPath, req.ID)
		return
	}
	if req.Denied {
		s.finishError(w, r, req, "access_denied", "the user refused the request")
		return
	}
	if !c.FirstParty && req.ConsentAt.IsZero() {
		need := promptHas(req.Prompt, "consent")
		if !need {
			given, err := s.cfg.Interaction.ConsentGiven(ctx, sess.UserID, c.ID, req.Scope)
			if err != nil {
				s.serverError(w, r, err)
				return
			}
			need = !given
		}
		if need {
			if none {
				s.finishError(w, r, req, "consent_required", "the user has not consented to this request")
				return
			}
			s.toPage(w, r, ConsentPath, req.ID)
			return
		}
	}
	code, err := s.issueCode(ctx, req, sess)
	if errors.Is(err, errUserInactive) {
		s.finishError(w, r, req, "login_required", "the user must sign in again")
		return
	}
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	if err := s.cfg.Store.DeleteAuthRequest(ctx, req.ID); err != nil {
		s.serverError(w, r, err)
		return
	}
	s.log.InfoContext(ctx, "authorization code issued", "client_id", c.ID, "sub", sess.UserID)
	s.authRedirect(w, r, req, url.Values{"code": {code}})
}

// finishError deletes the request and sends the error to the client.
func (s *Provider) finishError(w http.ResponseWriter, r *http.Request, req storage.AuthRequest, code, desc string) {
	if err := s.cfg.Store.DeleteAuthRequest(r.Context(), req.ID); err != nil {
		s.log.WarnContext(r.Context(), "delete auth request", "err", err)
	}
	s.authRedirect(w, r, req, url.Values{"error": {code}, "error_description": {desc}})
}

// toPage sends the browser to one of the login pages with the request id.
func (s *Provider) toPage(w http.ResponseWriter, r *http.Request, path, id string) {
	http.Redirect(w, r, path+"?req="+url.QueryEscape(id), http.StatusFound)
}

// authRedirect answers the client at its validated redirect URI with
// params plus state and iss (RFC 9207), by query or form_post.
func (s *Provider) authRedirect(w http.ResponseWriter, r *http.Request, req storage.AuthRequest, params url.Values) {
	if req.State != "" {
		params.Set("state", req.State)
	}
	params.Set("iss", s.cfg.Issuer)
	if req.ResponseMode == "form_post" {
		writeFormPost(w, req.RedirectURI, params)
		return
	}
	u, err := url.Parse(req.RedirectURI)
	if err != nil { // registered URIs parse; be safe anyway
		s.errorPage(w, r, http.StatusBadRequest, descBadRedirect)
		return
	}
	q := u.Query()
	for k, vs := range params {
		q[k] = vs
	}
	u.RawQuery = q.Encode()
	w.Header().Set("Location", u.String())
	w.WriteHeader(http.StatusFound)
}

// errorPage shows the authorization error page.
func (s *Provider) errorPage(w http.ResponseWriter, r *http.Request, status int, desc string) {
	s.cfg.Interaction.ErrorPage(w, r, status, desc)
}

// serverError logs err and shows the generic error page; a database outage
// is 503.
func (s *Provider) serverError(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusInternalServerError
	if storage.Unavailable(err) || errors.Is(err, context.DeadlineExceeded) {
		status = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "5")
	}
	s.log.ErrorContext(r.Context(), "authorization failed", "path", r.URL.Path, "err", err)
	s.errorPage(w, r, status, descServer)
}

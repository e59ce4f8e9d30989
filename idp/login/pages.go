package login

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/ui"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage"
)

// Paths of the pages; the assembly binds them (docs/login.md).
const (
	LoginPath      = "/login"
	TOTPPath       = "/login/totp"
	ConsentPath    = "/consent"
	LogoutPath     = "/logout"
	LogoutDonePath = "/logout/done"
	TOTPEnrolPath  = "/account/totp"
	TOTPQRPath     = "/account/totp/qr.png"
	ResumePath     = "/oauth2/authorize/resume" // PROTOCOL's
)

// Form fields.
const (
	fieldReq      = "req"
	fieldUsername = "username"
	fieldPassword = "password"
	fieldCode     = "code"
	fieldAction   = "action"
)

// maxField bounds a text field the pages pass on.
const maxField = 320

// loginForm is the data of the login_form page.
type loginForm struct {
	Req, Username, Forgot string
}

// codeForm is the data of the totp_form page.
type codeForm struct{ Req string }

// reqOf returns the one "req" query parameter of r, "" for none.
func reqOf(r *http.Request) string {
	vs := r.URL.Query()[fieldReq]
	if len(vs) != 1 || len(vs[0]) > maxField {
		return ""
	}
	return vs[0]
}

// authRequest loads req ("" is a direct login, no request). A request that
// is gone or expired gets the expired page, and ok=false.
func (h *Handler) authRequest(w http.ResponseWriter, r *http.Request, req string) (storage.AuthRequest, bool) {
	if req == "" {
		return storage.AuthRequest{}, true
	}
	ar, err := h.cfg.AuthRequests.AuthRequest(r.Context(), req)
	if errors.Is(err, storage.ErrNotFound) {
		h.pages.Message(w, r, http.StatusBadRequest, "login.expired.title", "login.expired.body")
		return ar, false
	}
	if err != nil {
		h.pages.Fail(w, r, err)
		return ar, false
	}
	return ar, true
}

// formTarget is the CSP form-action source of the request's redirect URI
// (ui.View.FormTarget): the form's answer redirects through the
// authorization endpoint to it. "" without a request.
func (h *Handler) formTarget(r *http.Request, req string) string {
	if req == "" {
		return ""
	}
	ar, err := h.cfg.AuthRequests.AuthRequest(r.Context(), req)
	if err != nil {
		return ""
	}
	return ui.FormTargetOf(ar.RedirectURI)
}

// redirect answers 302 to the site path p with query req (if any). The
// Location is relative to the page (as ui's links are), so the pages keep
// working when a proxy serves Keyward under a path prefix.
func redirect(w http.ResponseWriter, r *http.Request, p, req string) {
	if req != "" {
		p += "?" + url.Values{fieldReq: {req}}.Encode()
	}
	loc := rootOf(r.URL.Path) + strings.TrimPrefix(p, "/")
	if strings.HasPrefix(loc, "?") || loc == "" {
		loc = "./" + loc
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Location", loc)
	w.WriteHeader(http.StatusFound)
}

func (h *Handler) loginView(w http.ResponseWriter, r *http.Request, ar storage.AuthRequest, req, username string) *ui.View {
	v := h.pages.NewView(w, r, "login.title")
	v.FormTarget = ui.FormTargetOf(ar.RedirectURI)
	forgot := ""
	if h.pages.ServesForgotPassword() {
		forgot = ui.ForgotPasswordPath
	}
	v.Data = loginForm{Req: req, Username: username, Forgot: forgot}
	return v
}

// ShowLogin is GET /login[?req=ID]: the username and password form,
// the username prefilled with the request's login_hint.
func (h *Handler) ShowLogin() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := reqOf(r)
		ar, ok := h.authRequest(w, r, req)
		if !ok {
			return
		}
		h.pages.Render(w, r, http.StatusOK, "login_form", h.loginView(w, r, ar, req, ar.LoginHint))
	})
}

// SubmitLogin is the form POST of /login: the password is checked by
// Passwords (throttle, audit); a wrong one, an unknown or a disabled user
// get the one generic message. A user with TOTP goes on to /login/totp;
// anyone else is signed in.
func (h *Handler) SubmitLogin() http.Handler {
	return h.pages.Protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := ui.FormValue(r, fieldReq)
		ar, ok := h.authRequest(w, r, req)
		if !ok {
			return
		}
		username, _ := ui.FormValue(r, fieldUsername)
		password, _ := ui.FormValue(r, fieldPassword)
		username = strings.TrimSpace(username)
		if len(username) > maxField {
			username = ""
		}
		v := h.loginView(w, r, ar, req, username)
		if username == "" || password == "" {
			v.Error, v.ErrorFor = v.T("login.error.empty"), fieldUsername
			if username != "" {
				v.ErrorFor = fieldPassword
			}
			h.pages.Render(w, r, http.StatusBadRequest, "login_form", v)
			return
		}
		u, err := h.cfg.Passwords.AuthenticatePassword(r.Context(), ar.ClientID, username, password)
		if err != nil {
			var we *web.Error
			if errors.As(err, &we) && we.Code == web.ErrInvalidGrant {
				v.Error = v.T("login.error.failed")
				h.pages.Render(w, r, http.StatusBadRequest, "login_form", v)
				return
			}
			h.pages.Fail(w, r, err)
			return
		}
		enrolled, err := h.totpEnrolled(r, u.ID)
		if err != nil {
			h.pages.Fail(w, r, err)
			return
		}
		if enrolled {
			h.setPending(w, r, pending{UserID: u.ID, Req: req, Expires: h.now().Add(pendingTTL).UnixMilli()})
			redirect(w, r, TOTPPath, req)
			return
		}
		h.finish(w, r, u, []string{"pwd"}, req)
	}))
}

// finish starts the session after a complete login and sends the browser
// on: back to the authorization endpoint for a request, else to the
// "signed in" page.
func (h *Handler) finish(w http.ResponseWriter, r *http.Request, u storage.User, amr []string, req string) {
	s, err := h.startSession(w, r, u, amr)
	if err != nil {
		h.pages.Fail(w, r, err)
		return
	}
	if req == "" {
		h.pages.Message(w, r, http.StatusOK, "login.done.title", "login.done.body")
		return
	}
	if err := h.cfg.AuthRequests.MarkAuthRequestLogin(r.Context(), req, s.ID, h.now()); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			h.pages.Message(w, r, http.StatusBadRequest, "login.expired.title", "login.expired.body")
			return
		}
		h.pages.Fail(w, r, err)
		return
	}
	redirect(w, r, ResumePath, req)
}

// ShowTOTP is GET /login/totp[?req=ID]: the code form, for a browser that
// gave a correct password in the last minutes; anyone else goes to /login.
func (h *Handler) ShowTOTP() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := reqOf(r)
		if _, ok := h.pendingOf(r, req); !ok {
			redirect(w, r, LoginPath, req)
			return
		}
		v := h.pages.NewView(w, r, "totp.title")
		v.Data = codeForm{Req: req}
		v.FormTarget = h.formTarget(r, req)
		h.pages.Render(w, r, http.StatusOK, "totp_form", v)
	})
}

// SubmitTOTP is the form POST of /login/totp: a current TOTP code (never
// one already used) or an unused recovery code completes the login.
// Guesses are throttled like passwords, under "totp:" and the user id.
func (h *Handler) SubmitTOTP() http.Handler {
	return h.pages.Protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := ui.FormValue(r, fieldReq)
		p, ok := h.pendingOf(r, req)
		if !ok {
			redirect(w, r, LoginPath, req)
			return
		}
		code, _ := ui.FormValue(r, fieldCode)
		v := h.pages.NewView(w, r, "totp.title")
		v.Data = codeForm{Req: req}
		v.FormTarget = h.formTarget(r, req)
		ok, amr, err := h.checkSecondFactor(r, p.UserID, code)
		if err != nil {
			h.pages.Fail(w, r, err)
			return
		}
		if !ok {
			v.Error, v.ErrorFor = v.T("totp.error.failed"), fieldCode
			h.pages.Render(w, r, http.StatusBadRequest, "totp_form", v)
			return
		}
		u, err := h.cfg.Store.User(r.Context(), p.UserID)
		if err != nil || u.Disabled {
			// Gone or disabled since the password step: as a failed login.
			redirect(w, r, LoginPath, req)
			return
		}
		h.finish(w, r, u, amr, req)
	}))
}

// consentForm is the data of the consent_form page.
type consentForm struct {
	Req, Client string
	Scopes      []string // translated descriptions
}

// consentRequest loads the request of a consent page and the browser's
// session; without a session it sends the browser to /login.
func (h *Handler) consentRequest(w http.ResponseWriter, r *http.Request, req string) (storage.AuthRequest, storage.LoginSession, bool) {
	if req == "" {
		h.pages.Message(w, r, http.StatusBadRequest, "login.expired.title", "login.expired.body")
		return storage.AuthRequest{}, storage.LoginSession{}, false
	}
	ar, ok := h.authRequest(w, r, req)
	if !ok {
		return ar, storage.LoginSession{}, false
	}
	s, ok, err := h.Session(r)
	if err != nil {
		h.pages.Fail(w, r, err)
		return ar, s, false
	}
	if !ok || (ar.SessionID != "" && ar.SessionID != s.ID) {
		redirect(w, r, LoginPath, req)
		return ar, s, false
	}
	return ar, s, true
}

// ShowConsent is GET /consent?req=ID: the client's name and what it asks
// for, with approve and deny buttons.
func (h *Handler) ShowConsent() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := reqOf(r)
		ar, _, ok := h.consentRequest(w, r, req)
		if !ok {
			return
		}
		c, err := h.cfg.Store.Client(r.Context(), ar.ClientID)
		if err != nil {
			h.pages.Fail(w, r, err)
			return
		}
		v := h.pages.NewView(w, r, "consent.title")
		name := c.Name
		if name == "" {
			name = c.ID
		}
		scopes := make([]string, 0, len(ar.Scope))
		for _, s := range ar.Scope {
			scopes = append(scopes, scopeText(v, s))
		}
		v.Data = consentForm{Req: req, Client: name, Scopes: scopes}
		v.FormTarget = ui.FormTargetOf(ar.RedirectURI)
		h.pages.Render(w, r, http.StatusOK, "consent_form", v)
	})
}

// scopeText is the description of scope s in the view's language; a
// scope the catalog does not know is shown by its name.
func scopeText(v *ui.View, s string) string {
	if t := v.T("scope." + s); t != "scope."+s {
		return t
	}
	return v.T("scope.other", s)
}

// SubmitConsent is the form POST of /consent: action=approve remembers
// the consent (scopes joined to what the user granted the client before);
// action=deny records the refusal; both go back to the authorization
// endpoint, which answers the client.
func (h *Handler) SubmitConsent() http.Handler {
	return h.pages.Protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := ui.FormValue(r, fieldReq)
		ar, s, ok := h.consentRequest(w, r, req)
		if !ok {
			return
		}
		action, _ := ui.FormValue(r, fieldAction)
		ctx := r.Context()
		now := h.now()
		switch action {
		case "approve":
			if _, err := h.cfg.Store.GrantConsent(ctx, s.UserID, ar.ClientID, ar.Scope, now); err != nil {
				h.pages.Fail(w, r, err)
				return
			}
		case "deny":
		default:
			h.pages.Message(w, r, http.StatusBadRequest, "error.bad_request.title", "error.bad_request.body")
			return
		}
		denied := action == "deny"
		if err := h.cfg.AuthRequests.MarkAuthRequestConsent(ctx, req, now, denied); err != nil {
			h.pages.Fail(w, r, err)
			return
		}
		h.cfg.Audit.Record(ctx, audit.Event{Type: audit.ConsentGranted, Actor: s.UserID, Subject: s.UserID,
			ClientID: ar.ClientID, Reason: map[bool]string{false: "approved", true: "denied"}[denied],
			Outcome:   map[bool]string{false: audit.OutcomeSuccess, true: audit.OutcomeFailure}[denied],
			UserAgent: r.UserAgent()})
		redirect(w, r, ResumePath, req)
	}))
}

// ShowLogout is GET /logout: a confirm form (a GET never ends a session,
// so no other site can sign the user out with a link or an image).
func (h *Handler) ShowLogout() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := h.pages.NewView(w, r, "logout.title")
		h.pages.Render(w, r, http.StatusOK, "logout_form", v)
	})
}

// SubmitLogout is the form POST of /logout: it ends the session and goes
// to /logout/done.
func (h *Handler) SubmitLogout() http.Handler {
	return h.pages.Protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := h.EndSession(w, r); err != nil {
			h.pages.Fail(w, r, err)
			return
		}
		redirect(w, r, LogoutDonePath, "")
	}))
}

// LogoutDone is GET /logout/done: "you are signed out".
func (h *Handler) LogoutDone() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.pages.Message(w, r, http.StatusOK, "logout.done.title", "logout.done.body")
	})
}

package ui

import (
	"crypto/rand"
	"errors"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/keyward/keyward/idp/web"
)

// DefaultMinPasswordLength is the minimum password length the pages state
// when Config.MinPasswordLength is 0: password.DefaultMinLength.
const DefaultMinPasswordLength = 15

// maxFormBody caps a page's form body: a few short fields.
const maxFormBody = 16 << 10

// Config configures Pages.
type Config struct {
	// Flows runs the account steps the pages trigger (required).
	Flows AccountFlows
	// Requests serves the forgot-password page; nil: no such page, and
	// the "expired link" page links nowhere.
	Requests ResetRequester
	Log      *slog.Logger // nil: discard
	// MinPasswordLength is the policy's minimum, for the hint under the
	// new-password field and the too_short message; 0: DefaultMinPasswordLength.
	MinPasswordLength int
	// SecureCookies says the site is served over https even when a request
	// reaches Keyward as plain http through a TLS-terminating proxy: the
	// CSRF cookie is then __Host- and Secure. A request over TLS gets
	// them anyway.
	SecureCookies bool
	// CSRFKey signs the CSRF tokens; nil: 32 random bytes per process. The
	// replicas behind one load balancer must share one key (32 bytes or more).
	CSRFKey []byte
}

// Pages renders Keyward's HTML pages and handles their forms. Create it
// with New; idp.Server.Routes binds its handlers.
type Pages struct {
	flows    AccountFlows
	requests ResetRequester // nil: no forgot-password page
	log      *slog.Logger
	minLen   int
	csrf     *csrf
	rd       *renderer
	cop      *http.CrossOriginProtection
}

// New parses the embedded templates and returns the Pages.
func New(cfg Config) (*Pages, error) {
	if cfg.Flows == nil {
		return nil, errors.New("ui: Config.Flows is required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.MinPasswordLength <= 0 {
		cfg.MinPasswordLength = DefaultMinPasswordLength
	}
	key := cfg.CSRFKey
	switch {
	case key == nil:
		key = make([]byte, 32)
		rand.Read(key)
	case len(key) < 32:
		return nil, errors.New("ui: Config.CSRFKey must be at least 32 bytes")
	}
	rd, err := newRenderer()
	if err != nil {
		return nil, err
	}
	p := &Pages{flows: cfg.Flows, requests: cfg.Requests, log: cfg.Log, minLen: cfg.MinPasswordLength, rd: rd,
		csrf: &csrf{key: key, secure: cfg.SecureCookies}, cop: http.NewCrossOriginProtection()}
	p.cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.log.WarnContext(r.Context(), "page form refused: cross-origin request", "path", r.URL.Path)
		p.Message(w, r, http.StatusForbidden, "error.csrf.title", "error.csrf.body")
	}))
	return p, nil
}

// NewView starts the view of a page titled by the catalog key title: the
// language from Accept-Language, and the CSRF token (setting the cookie on
// w when the browser has none yet).
func (p *Pages) NewView(w http.ResponseWriter, r *http.Request, title string) *View {
	return &View{Lang: Lang(r), Root: rootOf(r.URL.Path), Title: title, CSRF: p.csrf.token(w, r)}
}

// Render writes page name (templates/<name>.html) with v and status. A
// template error is logged and answered 500 with the generic page.
func (p *Pages) Render(w http.ResponseWriter, r *http.Request, status int, name string, v *View) {
	if err := p.rd.render(w, status, name, v); err != nil {
		p.log.ErrorContext(r.Context(), "page failed", "path", r.URL.Path, "err", err)
		if name != "message" {
			p.Message(w, r, http.StatusInternalServerError, "error.generic.title", "error.generic.body")
		}
	}
}

// Message writes the message page: a title and paragraphs, catalog keys.
func (p *Pages) Message(w http.ResponseWriter, r *http.Request, status int, title string, paragraphs ...string) {
	p.MessageLink(w, r, status, Link{}, title, paragraphs...)
}

// Link is a link a message page ends with: a path of this site (written
// relative to the page, View.URL) and the catalog key of its text. The
// zero Link is none.
type Link struct{ Href, Text string }

// MessageLink writes the message page ending with link.
func (p *Pages) MessageLink(w http.ResponseWriter, r *http.Request, status int, link Link, title string, paragraphs ...string) {
	v := &View{Lang: Lang(r), Root: rootOf(r.URL.Path), Title: title, Data: message{Paragraphs: paragraphs, Link: link}}
	p.Render(w, r, status, "message", v)
}

// message is the data of the message page.
type message struct {
	Paragraphs []string // catalog keys
	Link       Link
}

// Protect wraps the handler of a form POST: it refuses a cross-origin
// request (http.CrossOriginProtection: Sec-Fetch-Site, else Origin against
// Host) and a request without the form's CSRF token, both with the 403
// page, and a body that is not a small urlencoded form with 400. h runs
// only for a request that passed, with r.PostForm parsed; it must read
// its fields from r.PostForm (FormValue), never from the URL.
func (p *Pages) Protect(h http.Handler) http.Handler {
	return p.cop.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mt != "application/x-www-form-urlencoded" {
			p.Message(w, r, http.StatusBadRequest, "error.bad_request.title", "error.bad_request.body")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
		if err := r.ParseForm(); err != nil {
			status := http.StatusBadRequest
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				status = http.StatusRequestEntityTooLarge
			}
			p.Message(w, r, status, "error.bad_request.title", "error.bad_request.body")
			return
		}
		if !p.csrf.valid(r) {
			p.log.WarnContext(r.Context(), "page form refused: missing or wrong csrf token", "path", r.URL.Path)
			p.Message(w, r, http.StatusForbidden, "error.csrf.title", "error.csrf.body")
			return
		}
		h.ServeHTTP(w, r)
	}))
}

// FormValue returns the one value of field name of r's parsed body; ok is
// false when the field is absent or given more than once.
func FormValue(r *http.Request, name string) (v string, ok bool) {
	vs := r.PostForm[name]
	if len(vs) != 1 {
		return "", false
	}
	return vs[0], true
}

// Fail answers an error of a flow no page handles itself: 429 (throttled)
// and 503 (overloaded, the request ran out of time, or the database is
// unreachable: web.Busy) with their pages and Retry-After, another 4xx *web.Error with the "form could not be
// read" page, anything else with the generic 500 page, logged. The page
// never shows the error's text.
func (p *Pages) Fail(w http.ResponseWriter, r *http.Request, err error) {
	var we *web.Error
	status := http.StatusInternalServerError
	var retry time.Duration
	switch {
	case errors.As(err, &we):
		status, retry = we.Status, we.RetryAfter
		if status == 0 {
			status = http.StatusBadRequest
		}
	default:
		if d, busy := web.Busy(err); busy {
			status, retry = http.StatusServiceUnavailable, d
		}
	}
	if retry > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((retry+time.Second-1)/time.Second)))
	}
	switch {
	case status == http.StatusTooManyRequests:
		p.Message(w, r, status, "error.too_many.title", "error.too_many.body")
	case status == http.StatusServiceUnavailable:
		p.log.WarnContext(r.Context(), "page refused: overloaded", "path", r.URL.Path, "err", err)
		p.Message(w, r, status, "error.unavailable.title", "error.unavailable.body")
	case status >= 400 && status < 500:
		p.Message(w, r, status, "error.bad_request.title", "error.bad_request.body")
	default:
		p.log.ErrorContext(r.Context(), "page failed", "path", r.URL.Path, "err", err)
		p.Message(w, r, http.StatusInternalServerError, "error.generic.title", "error.generic.body")
	}
}

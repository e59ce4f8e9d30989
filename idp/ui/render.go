package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
)

// PageCSP is the Content-Security-Policy of every page: nothing loads but
// the page's own stylesheet (and images, for issue 15's QR code); forms
// post only to this origin; no site may frame a page (clickjacking) and no
// <base> may redirect relative links. No script runs, inline or not.
const PageCSP = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// PageCSPWithFormTarget is PageCSP whose form-action also allows the CSP
// source src (see View.FormTarget).
func PageCSPWithFormTarget(src string) string {
	return strings.Replace(PageCSP, "form-action 'self'", "form-action 'self' "+src, 1)
}

// formSourceRE is what FormTarget may be: an origin (scheme://host[:port])
// or, for a private-use scheme, the scheme alone. Nothing else reaches the
// header, so no value can add a directive.
var formSourceRE = regexp.MustCompile(`^[a-z][a-z0-9+.-]*:(//[A-Za-z0-9.\-]+(:[0-9]{1,5})?|//\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?)?$`)

// FormTargetOf is the CSP source of a redirect URI for View.FormTarget:
// its origin, or its scheme for a private-use scheme (com.example.app:/cb);
// "" when it is neither.
func FormTargetOf(redirectURI string) string {
	u, err := url.Parse(redirectURI)
	if err != nil || u.Scheme == "" {
		return ""
	}
	src := strings.ToLower(u.Scheme) + ":"
	if u.Host != "" {
		src += "//" + u.Host
	}
	return formSource(src)
}

func formSource(src string) string {
	if !formSourceRE.MatchString(src) {
		return ""
	}
	return src
}

// AssetPrefix is the path under which the pages' static files are served
// (Pages.Asset); the stylesheet's name carries its content hash, so it can
// be cached for a year.
const AssetPrefix = "/ui/"

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static/keyward.css
var styleCSS []byte

// cssName is the stylesheet's file name under AssetPrefix: keyward-<hash>.css.
var cssName = func() string {
	sum := sha256.Sum256(styleCSS)
	return "keyward-" + hex.EncodeToString(sum[:6]) + ".css"
}()

// SetPageHeaders sets the headers every page answer carries, replacing
// the API's defaults the server's middleware set (its CSP forbids the
// stylesheet): no caching anywhere (the page may hold a token), no
// Referer to other sites (the URL holds the token, RR-05), the page CSP,
// no framing, no sniffing, HTML in UTF-8.
func SetPageHeaders(h http.Header) {
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", PageCSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
}

// View is what a page template sees as dot. Templates call {{.T "key"}}
// for text in the page's language; the layout and the partials in
// templates/_*.html read the other fields.
type View struct {
	Lang     string // "en" or "zh-CN": <html lang>, and the catalog used by T
	Root     string // the relative way from the page to the site root, "../" for /account/x (see URL)
	Title    string // catalog key of the page's title and <h1>
	CSRF     string // the form token; {{template "csrf" .}} writes the hidden field
	Error    string // a message for the form, already translated; "" for none
	ErrorFor string // the id of the input Error is about; "" when it is about the whole form
	Data     any    // the page's own values
	// FormTarget is a CSP source (FormTargetOf) the page's forms may end at
	// besides this origin: on the login, TOTP and consent pages of an
	// authorization request, the origin of the client's redirect URI.
	// Browsers check form-action against every redirect that follows a
	// submission (CSP3; Chromium enforces it), and these forms are answered
	// with redirects that end at the client. "" for none.
	FormTarget string
}

// T returns the catalog text key in the view's language (see T).
func (v *View) T(key string, args ...any) string { return T(v.Lang, key, args...) }

// URL returns the site path p (such as "/account/reset-password")
// relative to the page, so that links, form actions and the stylesheet
// still work when a proxy serves Keyward under a path prefix.
func (v *View) URL(p string) string {
	if u := v.Root + strings.TrimPrefix(p, "/"); u != "" {
		return u
	}
	return "./"
}

// rootOf is View.Root of the page at path.
func rootOf(path string) string {
	return strings.Repeat("../", max(strings.Count(path, "/")-1, 0))
}

// CSS is the stylesheet's URL, relative to the page.
func (v *View) CSS() string { return v.URL(AssetPrefix + cssName) }

// CSRFField is the name of the hidden CSRF field.
func (v *View) CSRFField() string { return CSRFField }

// Invalid reports whether the input id is the one Error is about, for
// aria-invalid and aria-describedby.
func (v *View) Invalid(id string) bool { return v.Error != "" && v.ErrorFor == id }

// renderer holds the parsed pages: each templates/<name>.html not starting
// with "_" is a page, parsed together with every templates/_*.html (the
// layout and the partials) and executed as "layout".
type renderer struct {
	pages map[string]*template.Template
}

func newRenderer() (*renderer, error) {
	base, err := template.New("").ParseFS(templateFS, "templates/_*.html")
	if err != nil {
		return nil, fmt.Errorf("parse page layout: %w", err)
	}
	files, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	rd := &renderer{pages: map[string]*template.Template{}}
	for _, f := range files {
		name := strings.TrimSuffix(path.Base(f), ".html")
		if strings.HasPrefix(name, "_") {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(templateFS, f)
		if err != nil {
			return nil, fmt.Errorf("parse page %s: %w", name, err)
		}
		rd.pages[name] = t
	}
	return rd, nil
}

// render executes page name with v and writes it with status and the page
// headers. The page is built in memory first, so a template error becomes
// a 500 rather than half a page.
func (rd *renderer) render(w http.ResponseWriter, status int, name string, v *View) error {
	t, ok := rd.pages[name]
	if !ok {
		return fmt.Errorf("render page %q: no such page", name)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		return fmt.Errorf("render page %q: %w", name, err)
	}
	SetPageHeaders(w.Header())
	if src := formSource(v.FormTarget); src != "" {
		w.Header().Set("Content-Security-Policy", PageCSPWithFormTarget(src))
	}
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	w.Write(buf.Bytes())
	return nil
}

// Asset serves the embedded stylesheet under AssetPrefix (GET and HEAD);
// any other name is 404. Its name changes with its content, so it is
// cached for a year.
func (p *Pages) Asset() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		if strings.TrimPrefix(r.URL.Path, AssetPrefix) != cssName {
			h.Set("Content-Type", "text/plain; charset=utf-8")
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		h.Set("Content-Type", "text/css; charset=utf-8")
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
		h.Set("Content-Length", strconv.Itoa(len(styleCSS)))
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			w.Write(styleCSS)
		}
	})
}

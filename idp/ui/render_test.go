package ui

import (
	"crypto/tls"
	"io/fs"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/browsertest"
)

// TestLang: Accept-Language picks English or Simplified Chinese; anything
// else, and no header, is English.
func TestLang(t *testing.T) {
	tests := []struct{ header, want string }{
		{"", "en"},
		{"en-US,en;q=0.9", "en"},
		{"zh-CN,zh;q=0.9,en;q=0.8", "zh-CN"},
		{"zh", "zh-CN"},
		{"zh-Hans", "zh-CN"},
		{"zh-TW", "zh-CN"}, // no Traditional Chinese yet: Simplified reads better than English
		{"ja", "en"},
		{"fr-FR,zh-CN;q=0.5", "zh-CN"},
		{"en;q=0.5,zh-CN;q=0.9", "zh-CN"},
		{"fr-FR", "en"},
		{"de", "en"},
		{";;;garbage===", "en"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Accept-Language", tt.header)
		if got := Lang(r); got != tt.want {
			t.Errorf("Accept-Language %q: %q, want %q", tt.header, got, tt.want)
		}
	}
}

// TestLanguages: each page in each language has its <html lang> and its
// own text, and no English left in the Chinese page's headings.
func TestLanguages(t *testing.T) {
	e := newEnv(t)
	tok := e.flows.issue("alice", ResetTokenPrefix)
	vtok := e.flows.issue("alice", VerifyTokenPrefix)
	tests := []struct {
		lang, accept          string
		reset, verify, broken string
	}{
		{"en", "en-GB", "Choose a new password", "Confirm my address", "This link has expired or was already used"},
		{"zh-CN", "zh-CN,zh;q=0.9", "设置新密码", "确认我的地址", "此链接已过期或已被使用"},
	}
	for _, tt := range tests {
		t.Run(tt.lang, func(t *testing.T) {
			for _, c := range []struct{ path, want string }{
				{ResetPasswordPath + "?token=" + tok, tt.reset},
				{VerifyEmailPath + "?token=" + vtok, tt.verify},
				{ResetPasswordPath + "?token=kwpr_nope", tt.broken},
			} {
				p := e.get(c.path, "Accept-Language", tt.accept)
				if !strings.Contains(p.body, `<html lang="`+tt.lang+`">`) || !strings.Contains(p.body, c.want) {
					t.Errorf("GET %s: want lang %s and %q:\n%s", c.path, tt.lang, c.want, p.body)
				}
			}
			form := e.resetForm(tok, "tiny-pw-7", "tiny-pw-7")
			p := e.post(ResetPasswordPath, form, "Accept-Language", tt.accept)
			want := T(tt.lang, "password.rule.too_short", 15)
			if p.status != http.StatusBadRequest || !strings.Contains(p.body, want) {
				t.Errorf("policy refusal: %d, want the message %q:\n%s", p.status, want, p.body)
			}
		})
	}
	if got := T("zh-CN", "password.rule.too_short", 15); got != "密码太短：请至少使用 15 个字符。" {
		t.Errorf("zh-CN too_short: %q", got)
	}
}

// templateKeys lists the catalog keys the templates name literally.
func templateKeys(t *testing.T) []string {
	t.Helper()
	re := regexp.MustCompile(`\.T "([a-z_.]+)"`)
	var keys []string
	err := fs.WalkDir(templateFS, "templates", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(templateFS, path)
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			keys = append(keys, m[1])
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestCatalogComplete: both languages hold the same keys, none empty, and
// every key a template or a handler names is in the catalog.
func TestCatalogComplete(t *testing.T) {
	en := slices.Sorted(maps.Keys(catalog["en"]))
	for _, l := range languages {
		m, ok := catalog[l.code]
		if !ok {
			t.Fatalf("no catalog for %s", l.code)
		}
		if got := slices.Sorted(maps.Keys(m)); !slices.Equal(got, en) {
			t.Errorf("%s keys differ from en:\n%v\n%v", l.code, got, en)
		}
		for k, v := range m {
			if strings.TrimSpace(v) == "" {
				t.Errorf("%s %s is empty", l.code, k)
			}
			if strings.Count(v, "%") != strings.Count(catalog["en"][k], "%") {
				t.Errorf("%s %s has other format verbs than en", l.code, k)
			}
		}
	}
	used := templateKeys(t)
	used = append(used, "reset.title", "reset.error.empty", "reset.error.mismatch", "reset.done.title", "reset.done.body",
		"verify.title", "verify.done.title", "verify.done.body", "link.invalid.title", "link.invalid.reset",
		"link.invalid.verify", "link.request_new", "error.csrf.title", "error.csrf.body", "error.bad_request.title",
		"error.bad_request.body", "error.too_many.title", "error.too_many.body", "error.unavailable.title",
		"error.unavailable.body", "error.generic.title", "error.generic.body", "password.rule.other",
		"forgot.title", "forgot.error.login", "forgot.sent.title", "forgot.sent.body", "link.request_new_link")
	for _, r := range []string{"too_short", "too_long", "control_character", "invalid_utf8", "contains_username",
		"contains_email", "blocklisted", "same_as_current"} {
		used = append(used, "password.rule."+r)
	}
	for _, k := range used {
		if _, ok := catalog["en"][k]; !ok {
			t.Errorf("key %q is used but not in the catalog", k)
		}
	}
	if len(templateKeys(t)) < 8 {
		t.Fatal("found too few keys in the templates: the pattern is broken")
	}
}

// TestAccessibility: on the form pages every visible input has a <label
// for> naming it, new passwords say autocomplete="new-password", there is
// one <h1> and no heading skips a level, and the stylesheet has a visible
// focus style.
func TestAccessibility(t *testing.T) {
	e := newEnv(t)
	tok := e.flows.issue("alice", ResetTokenPrefix)
	vtok := e.flows.issue("alice", VerifyTokenPrefix)
	for _, path := range []string{ResetPasswordPath + "?token=" + tok, VerifyEmailPath + "?token=" + vtok, ResetPasswordPath, ForgotPasswordPath} {
		p := e.get(path)
		for _, in := range browsertest.LabelledInputs(t, path, p.body) {
			if strings.Contains(in, `type="password"`) && !strings.Contains(in, `autocomplete="new-password"`) {
				t.Errorf("%s: new password without autocomplete=new-password: %s", path, in)
			}
		}
		levels := regexp.MustCompile(`<h([1-6])`).FindAllStringSubmatch(p.body, -1)
		if len(levels) == 0 || levels[0][1] != "1" || strings.Count(p.body, "<h1") != 1 {
			t.Errorf("%s: want exactly one h1, first: %v", path, levels)
		}
		for i := 1; i < len(levels); i++ {
			if levels[i][1][0] > levels[i-1][1][0]+1 {
				t.Errorf("%s: heading level skips: %v", path, levels)
			}
		}
	}
	if !strings.Contains(string(styleCSS), ":focus-visible") {
		t.Error("the stylesheet has no focus style")
	}
}

// TestAsset: the stylesheet is served under its hashed name, cached for a
// year; the page links it; any other name is 404.
func TestAsset(t *testing.T) {
	e := newEnv(t)
	p := e.get(ResetPasswordPath)
	href := regexp.MustCompile(`<link rel="stylesheet" href="([^"]+)">`).FindStringSubmatch(p.body)
	if href == nil || !regexp.MustCompile(`^\.\./ui/keyward-[0-9a-f]{12}\.css$`).MatchString(href[1]) {
		t.Fatalf("stylesheet link %v", href)
	}
	css := e.get("/" + strings.TrimPrefix(href[1], "../"))
	if css.status != http.StatusOK || css.header.Get("Content-Type") != "text/css; charset=utf-8" ||
		css.header.Get("Cache-Control") != "public, max-age=31536000, immutable" || css.body != string(styleCSS) {
		t.Fatalf("stylesheet: %d %v", css.status, css.header)
	}
	if p := e.get(AssetPrefix + "keyward.css"); p.status != http.StatusNotFound {
		t.Fatalf("unknown asset: %d", p.status)
	}
}

// TestCSRFCookie: over https (TLS, or Config.SecureCookies behind a
// proxy) the cookie is __Host- with Secure; over plain http it has no
// prefix and no Secure. Both are HttpOnly, SameSite=Strict, Path=/, and a
// browser's existing cookie is kept.
func TestCSRFCookie(t *testing.T) {
	tests := []struct {
		name           string
		secureCookies  bool
		tls            bool
		wantName       string
		wantSecureFlag bool
	}{
		{"plain http", false, false, "keyward-csrf", false},
		{"tls", false, true, "__Host-keyward-csrf", true},
		{"https behind a proxy", true, false, "__Host-keyward-csrf", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			flows := newTestFlows()
			p, err := New(Config{Flows: flows, SecureCookies: tt.secureCookies})
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest(http.MethodGet, ResetPasswordPath+"?token="+flows.issue("alice", ResetTokenPrefix), nil)
			if tt.tls {
				r.TLS = &tls.ConnectionState{}
			}
			w := httptest.NewRecorder()
			p.ShowResetPassword().ServeHTTP(w, r)
			cs := w.Result().Cookies()
			if len(cs) != 1 {
				t.Fatalf("cookies %v", cs)
			}
			c := cs[0]
			if c.Name != tt.wantName || c.Secure != tt.wantSecureFlag || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode ||
				c.Path != "/" || c.Domain != "" || len(c.Value) != 43 {
				t.Fatalf("cookie %+v", c)
			}
			r.AddCookie(c)
			w = httptest.NewRecorder()
			p.ShowResetPassword().ServeHTTP(w, r)
			if len(w.Result().Cookies()) != 0 {
				t.Fatal("a browser with a cookie got a new one")
			}
		})
	}
	if _, err := New(Config{Flows: newTestFlows(), CSRFKey: []byte("short")}); err == nil {
		t.Fatal("a short CSRFKey was accepted")
	}
	if _, err := New(Config{}); err == nil {
		t.Fatal("New without Flows succeeded")
	}
}

// TestRelativeURLs: links, actions and the stylesheet are written relative
// to the page, so a proxy may serve Keyward under a path prefix.
func TestRelativeURLs(t *testing.T) {
	tests := []struct{ page, target, want string }{
		{"/account/reset-password", "/ui/k.css", "../ui/k.css"},
		{"/account/reset-password", "/account/forgot-password", "../account/forgot-password"},
		{"/login", "/ui/k.css", "ui/k.css"},
		{"/oauth2/consent/x", "/ui/k.css", "../../ui/k.css"},
		{"/", "/", "./"},
	}
	for _, tt := range tests {
		v := &View{Root: rootOf(tt.page)}
		if got := v.URL(tt.target); got != tt.want {
			t.Errorf("on %s, URL(%s) = %q, want %q", tt.page, tt.target, got, tt.want)
		}
	}
}

// TestFormTargetOf: a redirect URI's origin (or private-use scheme) is
// what a page's form-action may add; anything that is not a plain origin
// never reaches the header, so no value can add a directive.
func TestFormTargetOf(t *testing.T) {
	for in, want := range map[string]string{
		"https://app.example/cb?x=1":         "https://app.example",
		"http://127.0.0.1:53127/callback":    "http://127.0.0.1:53127",
		"http://[::1]:8080/cb":               "http://[::1]:8080",
		"com.example.app:/oauth":             "com.example.app:",
		"HTTPS://App.Example/cb":             "https://App.Example",
		"":                                   "",
		"/relative":                          "",
		"https://a.example;script-src *":     "",
		"https://a.example/ 'unsafe-inline'": "https://a.example",
	} {
		if got := FormTargetOf(in); got != want {
			t.Errorf("FormTargetOf(%q) = %q, want %q", in, got, want)
		}
	}
	if got := PageCSPWithFormTarget("https://app.example"); !strings.Contains(got, "form-action 'self' https://app.example; frame-ancestors 'none'") {
		t.Fatalf("CSP %q", got)
	}
}

// Package ui renders Keyward's HTML pages and handles their forms: today
// the pages behind the account mails (account.go: choose a new password
// at /account/reset-password, confirm an address at /account/verify-email;
// forgot.go: ask for a reset link at /account/forgot-password), and the
// infrastructure issue 15's login, TOTP, consent, error and logout pages
// reuse (docs/account.md, "Pages"). Those pages' templates
// (login_form, totp_form, totp_enrol, totp_codes, consent_form,
// logout_form, authorize_error) and catalog keys live here; their
// handlers and every decision are idp/login's (docs/login.md).
//
// It owns:
//   - rendering (render.go): html/template pages embedded from templates/,
//     each executed inside one layout, and one small embedded stylesheet
//     served under AssetPrefix with its hash in its name; no external
//     fetch, no JavaScript. A new page is a templates/<name>.html that
//     defines "content", rendered with Pages.NewView and Pages.Render;
//   - the headers of every page (SetPageHeaders): Cache-Control: no-store,
//     Referrer-Policy: no-referrer, PageCSP, X-Frame-Options: DENY,
//     text/html in UTF-8; they replace the API defaults the server's
//     middleware set;
//   - languages (i18n.go, catalog.go): English and Simplified Chinese,
//     chosen from Accept-Language with golang.org/x/text/language;
//   - CSRF protection (csrf.go, Pages.Protect);
//   - the mapping of the flows' *web.Error codes to pages (Pages.Fail and
//     the pages' own cases), which never show an error's text.
//
// CSRF: a signed double-submit token plus net/http's
// CrossOriginProtection, rather than github.com/gorilla/csrf. Both layers
// are small and standard-library only. CrossOriginProtection (Go 1.25)
// refuses a cross-origin form POST from any current browser by
// Sec-Fetch-Site or Origin. The token (a random cookie value, and its
// HMAC-SHA256 in a hidden field) refuses the rest, including a request
// with no token at all, which the done-when asks to see refused.
// gorilla/csrf would add two dependencies (it and gorilla/securecookie),
// its own cookie and failure handler, and a history: its Origin/Referer
// check never ran before v1.7.3 (CVE-2025-24358), and a later advisory
// concerns its TrustedOrigins. The double-submit needs no server state, so
// any replica sharing Config.CSRFKey accepts a form another replica
// served. The cookie is __Host-keyward-csrf (Secure, Path=/, HttpOnly,
// SameSite=Strict) over https, and keyward-csrf on plain http, where
// browsers refuse __Host-.
//
// Handlers take what they need of the rest of the server as small
// interfaces declared here (AccountFlows, ResetRequester); the assembly
// (package idp) binds them in Server.Routes, so this package registers no
// route. It imports nothing of Keyward but idp/web, must not log a token,
// a link's query or a password (only r.URL.Path), and must not consume a
// token on a GET.
package ui

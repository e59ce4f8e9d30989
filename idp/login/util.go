package login

import (
	"net/http"
	"net/url"

	"github.com/keyward/keyward/idp/ui"
	"github.com/keyward/keyward/idp/web"
)

type viewT = ui.View

func formValue(r *http.Request, name string) (string, bool) { return ui.FormValue(r, name) }

func webClientIP(r *http.Request) string { return web.ClientIP(r.Context()) }

func pathEscape(s string) string { return url.PathEscape(s) }

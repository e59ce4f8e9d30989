package admin

import (
	"errors"
	"fmt"
	"mime"
	"net/http"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage"
)

// MaxImportLines is the most users one POST /admin/v1/users/import takes; larger
// imports use `keyward users import`.
const MaxImportLines = 1000

// ImportUsers serves POST /admin/v1/users/import[?skip_existing=true]: a JSON Lines body
// (Content-Type application/x-ndjson or application/jsonl) of at most MaxImportLines
// users, as `keyward users import` reads them, imported in one transaction. Bad lines
// are 400 invalid_request with bad_lines (line and reason, never a hash), an existing
// user 409, success 200 with the summary.
func (a *API) ImportUsers(w http.ResponseWriter, r *http.Request, actor string) error {
	if a.hashes == nil {
		return &web.Error{Code: web.ErrInvalidRequest, Description: "this server has no password hasher", Status: http.StatusNotFound}
	}
	q, err := query(r, "skip_existing")
	if err != nil {
		return err
	}
	skip := false
	switch q.Get("skip_existing") {
	case "", "false":
	case "true":
		skip = true
	default:
		return web.BadRequest("skip_existing must be true or false")
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/x-ndjson" && mt != "application/jsonl" {
		return &web.Error{Code: web.ErrInvalidRequest, Status: http.StatusUnsupportedMediaType,
			Description: "the body must be JSON Lines (Content-Type application/x-ndjson or application/jsonl)"}
	}
	users, lines, err := manage.ParseImport(r.Body, a.hashes, MaxImportLines)
	var ie *manage.ImportError
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &ie):
		web.WriteJSON(w, http.StatusBadRequest, map[string]any{"error": web.ErrInvalidRequest,
			"error_description": ie.Error(), "bad_lines": ie.Lines, "more_bad_lines": ie.More})
		return nil
	case errors.As(err, &tooBig):
		return web.TooLarge()
	case err != nil:
		return web.BadRequest(err.Error())
	case len(users) == 0:
		return web.BadRequest("the body has no users")
	}
	sum, err := a.ops.ImportUsers(r.Context(), audit.Event{Actor: actor, UserAgent: r.UserAgent()}, users, lines,
		a.scheme, manage.ImportOptions{SkipExisting: skip})
	var be *manage.BatchError
	if errors.As(err, &be) && errors.Is(err, storage.ErrConflict) {
		what := "the id or username exists"
		if errors.Is(err, storage.ErrLookalike) {
			what = "the username looks like an existing one"
		}
		return &web.Error{Code: web.ErrInvalidRequest, Status: http.StatusConflict,
			Description: fmt.Sprintf("line %d: %s; nothing imported (skip_existing=true skips existing users)", be.Line, what)}
	}
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, sum)
	return nil
}

package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/keyward/keyward/idp/web"
)

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

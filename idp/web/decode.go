package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"
)

// maxJSONString caps one string member of an account body, in bytes.
// Passwords are capped lower by the policy and the hasher (password.MaxBytes).
const maxJSONString = 4096

// DecodeStrict reads r's body as one JSON object whose members are all
// strings, each named exactly (case-sensitively) as one of fields and
// present at most once, with nothing after the object (IN-06, AC-A1). It
// rejects what encoding/json would let through: unknown, duplicate and
// case-variant members, null and non-string values, nested values (without
// descending into them), invalid UTF-8, unpaired surrogate escapes and
// trailing data. Members absent from the body are absent from the map.
// The error is a 400 invalid_request (415 for another media type, 413 for
// an oversize body) whose description never repeats a value.
func DecodeStrict(r *http.Request, fields ...string) (map[string]string, error) {
	if r.URL.RawQuery != "" || r.URL.ForceQuery {
		return nil, BadRequest("parameters belong in the request body, not the URL")
	}
	body, err := ReadJSONBody(r)
	if err != nil {
		return nil, err
	}
	if !utf8.Valid(body) {
		return nil, BadRequest("the request body is not valid UTF-8")
	}
	notObject := BadRequest("the request body must be one JSON object of strings")
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, notObject
	}
	out := make(map[string]string, len(fields))
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, notObject
		}
		name, _ := tok.(string)
		known := false
		for _, f := range fields {
			known = known || f == name
		}
		if !known {
			return nil, BadRequest(fmt.Sprintf("unknown member %q; the members are %s", Truncate(name, 64), strings.Join(fields, ", ")))
		}
		if _, dup := out[name]; dup {
			return nil, BadRequest(fmt.Sprintf("member %q appears more than once", name))
		}
		tok, err = dec.Token()
		if err != nil {
			return nil, notObject
		}
		v, ok := tok.(string)
		if !ok {
			// A number, true, false, null, or the start of an object or
			// array, which is refused without reading it.
			return nil, BadRequest(fmt.Sprintf("member %q must be a string", name))
		}
		if len(v) > maxJSONString {
			return nil, BadRequest(fmt.Sprintf("member %q is too long", name))
		}
		if strings.ContainsRune(v, utf8.RuneError) {
			return nil, BadRequest(fmt.Sprintf("member %q is not valid Unicode", name))
		}
		out[name] = v
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, notObject
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, BadRequest("the request body must hold one JSON object and nothing after it")
	}
	return out, nil
}

// ReadJSONBody checks that r carries one application/json body (UTF-8, no
// other media-type parameter) and reads it: 415 for another media type,
// 413 past the middleware's body cap. The strict decoders of the account
// and admin APIs both start here.
func ReadJSONBody(r *http.Request) ([]byte, error) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" || len(r.Header.Values("Content-Type")) > 1 {
		return nil, &Error{Code: ErrInvalidRequest, Description: "the request body must be application/json",
			Status: http.StatusUnsupportedMediaType}
	}
	for k, v := range params {
		if k != "charset" || !strings.EqualFold(v, "utf-8") {
			return nil, &Error{Code: ErrInvalidRequest, Description: "the request body must be UTF-8 application/json",
				Status: http.StatusUnsupportedMediaType}
		}
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, &Error{Code: ErrInvalidRequest, Description: "the request body is too large",
				Status: http.StatusRequestEntityTooLarge}
		}
		return nil, BadRequest("the request body is unreadable")
	}
	return body, nil
}

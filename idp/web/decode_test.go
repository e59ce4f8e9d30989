package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
)

// FuzzDecodeStrict: whatever DecodeStrict accepts, encoding/json reads the
// same way, as an object of exactly those string members; it never panics.
func FuzzDecodeStrict(f *testing.F) {
	for _, s := range []string{
		`{"username":"a","password":"b","email":"c"}`, `{"username":"a","username":"b"}`, `{"Username":"a"}`,
		`{"email":null}`, `{"password":["a"]}`, `{"username":1e400}`, `{}{}`, `{"username":"\ud800"}`,
		`{"username":"a\u0000"}`, "{\"username\":\"\xff\"}", `[[[[`, ` {"email" : "x" } `, `{"a":{"b":"c"}}`,
	} {
		f.Add([]byte(s))
	}
	fields := []string{"username", "password", "email"}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/account/register", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		got, err := DecodeStrict(r, fields...)
		if err != nil {
			var oe *Error
			if !errors.As(err, &oe) || oe.Code != ErrInvalidRequest || oe.Status != http.StatusBadRequest {
				t.Fatalf("error %v is not a 400 invalid_request", err)
			}
			return
		}
		var want map[string]any
		if err := json.Unmarshal(body, &want); err != nil {
			t.Fatalf("accepted %q, which encoding/json refuses: %v", body, err)
		}
		if len(want) != len(got) {
			t.Fatalf("accepted %q as %v; encoding/json reads %v", body, got, want)
		}
		for k, v := range want {
			if s, ok := v.(string); !ok || got[k] != s || !slices.Contains(fields, k) {
				t.Fatalf("accepted %q as %v; encoding/json reads %v", body, got, want)
			}
		}
	})
}

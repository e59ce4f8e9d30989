package idptest

import (
	"encoding/json"
	"strings"
	"testing"
)

// NewAlicePassword passes the default policy and is not alice's current one.
const NewAlicePassword = "a fresh and rather long passphrase 42"

// JSONObject marshals kv pairs as one JSON object, in order.
func JSONObject(kv ...string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(kv[i])
		v, _ := json.Marshal(kv[i+1])
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.String()
}

// Account posts a JSON body to an account endpoint.
func (e *Env) Account(path, auth, body string) Response {
	e.T.Helper()
	return e.Do(Request{Path: path, Body: body, ContentType: "application/json", Auth: auth})
}

// ChangePassword posts to /account/password with a Bearer token.
func (e *Env) ChangePassword(at, current, next string) Response {
	e.T.Helper()
	return e.Account("/account/password", "Bearer "+at, JSONObject("current_password", current, "new_password", next))
}

// CheckAccountError is CheckE1 for the account endpoints, whose codes also
// include invalid_password and not_found: status, JSON, no-store, the code,
// and nothing internal in the body.
func CheckAccountError(t testing.TB, r Response, wantStatus int, wantCode string) {
	t.Helper()
	if code := checkErrorAnswer(t, r, wantStatus); code != wantCode {
		t.Errorf("error %q, want %q (body %s)", code, wantCode, r.Body)
	}
}

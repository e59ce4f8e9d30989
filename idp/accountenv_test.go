package idp

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/keyward/keyward/idp/web"
)

// newAlicePassword passes the default policy and is not alice's current one.
const newAlicePassword = "a fresh and rather long passphrase 42"

// jsonObject marshals kv pairs as one JSON object, in order.
func jsonObject(kv ...string) string {
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

// account posts a JSON body to an account endpoint.
func (e *env) account(path, auth, body string) response {
	e.t.Helper()
	return e.do(request{path: path, body: body, contentType: "application/json", auth: auth})
}

// checkAccountError is checkE1 for the account endpoints, whose codes also
// include invalid_password and not_found: status, JSON, no-store, the code,
// and nothing internal in the body.
func checkAccountError(t testing.TB, r response, wantStatus int, wantCode string) {
	t.Helper()
	if r.status != wantStatus {
		t.Errorf("status %d, want %d (body %s)", r.status, wantStatus, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != web.ContentTypeJSON {
		t.Errorf("Content-Type %q", ct)
	}
	if r.header.Get("Cache-Control") != "no-store" || r.header.Get("Pragma") != "no-cache" {
		t.Errorf("cache headers %q %q", r.header.Get("Cache-Control"), r.header.Get("Pragma"))
	}
	if code := r.str("error"); code != wantCode {
		t.Errorf("error %q, want %q (body %s)", code, wantCode, r.body)
	}
	if leaks.Match(r.body) {
		t.Errorf("body leaks internals: %s", r.body)
	}
}

package idp_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/keyward/keyward/internal/idptest"
	"github.com/keyward/keyward/internal/testsupport"
	"github.com/keyward/keyward/storage/storagetest"
)

// TestDrain: after Drain, /readyz answers 503 with the check "shutdown":
// "draining" (so a load balancer stops sending requests), while /healthz
// and the token endpoint keep answering 200 (the requests still on their
// way are served).
func TestDrain(t *testing.T) {
	e := idptest.New(t, storagetest.Backends[0])
	readyz := func() (int, map[string]any) {
		t.Helper()
		code, b, _ := testsupport.Get(t, e.URL+"/readyz")
		var body map[string]any
		if err := json.Unmarshal(b, &body); err != nil {
			t.Fatalf("/readyz: %s", b)
		}
		return code, body
	}
	if code, body := readyz(); code != http.StatusOK || body["status"] != "ready" {
		t.Fatalf("/readyz before Drain: %d %v", code, body)
	}
	e.Srv.Drain()
	code, body := readyz()
	checks, _ := body["checks"].(map[string]any)
	if code != http.StatusServiceUnavailable || body["status"] != "unavailable" ||
		checks["shutdown"] != "draining" || checks["database"] != "ok" || checks["keys"] != "ok" {
		t.Fatalf("/readyz after Drain: %d %v", code, body)
	}
	if code, _, _ := testsupport.Get(t, e.URL+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz after Drain: %d", code)
	}
	req := testsupport.FormRequest(t, http.MethodPost, e.URL+"/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}})
	req.SetBasicAuth("CC", e.Secrets["CC"])
	if code, b, _ := testsupport.Do(t, nil, req); code != http.StatusOK {
		t.Fatalf("token endpoint after Drain: %d %s", code, b)
	}
}

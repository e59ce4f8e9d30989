package metrics

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestMetricsNilIsNoop(t *testing.T) {
	var m *Metrics
	m.TokenRequest("password", "success")
	m.LoginFailure("x")
	m.Throttled("ip")
	m.RefreshReuse("family_revoked")
	m.HashQueued(1)
	m.HashWaited(time.Second)
	h := m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	if w.Code != http.StatusTeapot {
		t.Fatalf("nil middleware changed the response: %d", w.Code)
	}
}

// TestMetricsLabelsBounded: a grant type New was not told of counts as
// "other", and the throttle kinds it was told of exist at zero.
func TestMetricsLabelsBounded(t *testing.T) {
	m := New(Options{Grants: []string{"password"}, ThrottleKinds: []string{"ip", "client"}})
	m.TokenRequest("password", "success")
	m.TokenRequest("urn:made-up:grant", "unsupported_grant_type")
	w := httptest.NewRecorder()
	m.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, want := range []string{
		`keyward_token_requests_total{grant_type="password",outcome="success"} 1`,
		`keyward_token_requests_total{grant_type="other",outcome="unsupported_grant_type"} 1`,
		`keyward_throttled_total{kind="ip"} 0`,
		`keyward_throttled_total{kind="client"} 0`,
	} {
		if !strings.Contains(w.Body.String(), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(w.Body.String(), "made-up") {
		t.Error("a client-chosen grant type became a label")
	}
}

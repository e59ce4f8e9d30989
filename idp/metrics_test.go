package idp_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/idp"

	"github.com/keyward/keyward/idp/guard"
	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/idp/metrics"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// protectTestKeys is a KeySource with nothing to sign: these tests never
// issue a token, and package keys is built elsewhere.
type protectTestKeys struct{}

func (protectTestKeys) Sign(string, []byte) (string, error) {
	return "", errors.New("no signing key in this test")
}
func (protectTestKeys) JWKS() ([]byte, string) { return []byte(`{"keys":[]}`), `"empty"` }
func (protectTestKeys) Ready() error           { return nil }

// newProtectServer builds an idp.Server on db; mod may adjust its idp.Config.
func newProtectServer(t *testing.T, db *storage.DB, mod func(*idp.Config)) *idp.Server {
	t.Helper()
	cfg := idp.Config{Issuer: "https://id.example.test", Store: db, Keys: protectTestKeys{}}
	if mod != nil {
		mod(&cfg)
	}
	s, err := idp.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func get(t *testing.T, h http.Handler, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, path, nil))
	return w
}

func TestMetricsExposition(t *testing.T) {
	s := newProtectServer(t, storagetest.OpenSQLite(t), func(c *idp.Config) {
		c.KeyAges = func() []metrics.KeyAge {
			return []metrics.KeyAge{{KID: "k-active", State: "active", Age: time.Hour}, {KID: "k-next", State: "next", Age: time.Minute}}
		}
	})
	h := s.Handler()
	get(t, h, http.MethodGet, "/healthz")
	get(t, h, http.MethodGet, "/healthz")
	get(t, h, http.MethodGet, "/no/such/path/a1b2c3")
	get(t, h, http.MethodDelete, "/healthz")
	m := s.Metrics()
	m.TokenRequest(manage.GrantPassword, "success")
	m.TokenRequest("urn:made-up:grant", web.ErrUnsupportedGrantType)
	m.LoginFailure("bad_password")
	m.Throttled(guard.KindClient)
	m.RefreshReuse(metrics.ReuseFamilyRevoked)
	m.HashQueued(+2)
	m.HashQueued(-1)
	m.HashWaited(30 * time.Millisecond)

	w := get(t, h, http.MethodGet, "/metrics")
	if w.Code != http.StatusOK {
		t.Fatalf("/metrics: %d", w.Code)
	}
	body := w.Body.String()
	for _, want := range []string{
		`keyward_http_requests_total{code="200",endpoint="/healthz",method="GET"} 2`,
		`keyward_http_requests_total{code="404",endpoint="unmatched",method="GET"} 1`,
		`keyward_http_requests_total{code="405",endpoint="unmatched",method="DELETE"} 1`,
		`keyward_http_request_duration_seconds_count{endpoint="/healthz"} 2`,
		`keyward_http_request_duration_seconds_bucket{endpoint="/healthz",le="0.001"}`,
		`keyward_token_requests_total{grant_type="password",outcome="success"} 1`,
		`keyward_token_requests_total{grant_type="other",outcome="unsupported_grant_type"} 1`,
		`keyward_login_failures_total{reason="invalid_credentials"} 1`, // the public view (PublicHandler)
		`keyward_login_failures_total{reason="throttled"} 0`,
		`keyward_throttled_total{kind="client"} 1`,
		`keyward_throttled_total{kind="ip"} 0`,
		`keyward_throttled_total{kind="caller"} 0`,
		`keyward_refresh_reuse_total{result="family_revoked"} 1`,
		`keyward_refresh_reuse_total{result="replayed_in_window"} 0`,
		`keyward_signing_key_age_seconds{kid="k-active",state="active"} 3600`,
		`keyward_signing_key_age_seconds{kid="k-next",state="next"} 60`,
		`keyward_password_hash_queue_depth 1`,
		`keyward_password_hash_wait_seconds_count 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(body, "a1b2c3") || strings.Contains(body, "made-up") {
		t.Error("a raw path or client-chosen value became a label")
	}
}

func TestMetricsSeparateRegistries(t *testing.T) {
	db := storagetest.OpenSQLite(t)
	a, b := newProtectServer(t, db, nil), newProtectServer(t, db, nil) // would panic on a shared registry
	a.Metrics().LoginFailure("bad_password")
	w := httptest.NewRecorder()
	b.Metrics().Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if strings.Contains(w.Body.String(), `keyward_login_failures_total{reason="bad_password"}`) {
		t.Fatal("one server's observation showed on another's /metrics")
	}
}

func TestMetricsHiddenRoute(t *testing.T) {
	s := newProtectServer(t, storagetest.OpenSQLite(t), func(c *idp.Config) { c.HideMetrics = true })
	if w := get(t, s.Handler(), http.MethodGet, "/metrics"); w.Code != http.StatusNotFound {
		t.Fatalf("/metrics with HideMetrics: %d", w.Code)
	}
	srv := httptest.NewServer(s.Metrics().Handler()) // what a --metrics-addr listener serves
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(b), "keyward_http_requests_total") {
		t.Fatal("the metrics handler serves no keyward series")
	}
}

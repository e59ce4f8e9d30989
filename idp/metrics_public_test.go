package idp_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/idptest"

	"github.com/keyward/keyward/storage/storagetest"
)

// TestPublicMetricsHideLoginFailureReasons: the /metrics the router serves
// (PublicHandler, what serve --public-metrics puts on the public listener)
// counts an unknown user, a wrong password and a disabled account as one
// reason, so a scrape cannot tell which usernames exist (issue 12 finding
// 3, TE-11); Handler, for the operator's --metrics-addr, keeps them apart.
func TestPublicMetricsHideLoginFailureReasons(t *testing.T) {
	e := idptest.New(t, storagetest.Backends[0])
	e.Token("C1", idptest.PasswordForm("ghost", idptest.AlicePassword))
	e.Token("C1", idptest.PasswordForm("alice", "wrong "+idptest.AlicePassword))
	e.Token("C1", idptest.PasswordForm("dave-disabled", idptest.AlicePassword))

	public := string(e.Do(idptest.Request{Method: http.MethodGet, Path: "/metrics", ContentType: "-"}).Body)
	if want := `keyward_login_failures_total{reason="invalid_credentials"} 3`; !strings.Contains(public, want) {
		t.Errorf("public /metrics lacks %s", want)
	}
	for _, reason := range []string{"unknown_user", "bad_password", "disabled"} {
		if strings.Contains(public, reason) {
			t.Errorf("public /metrics names %s", reason)
		}
	}

	w := httptest.NewRecorder()
	e.Srv.Metrics().Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, reason := range []string{"unknown_user", "bad_password", "disabled"} {
		if want := `keyward_login_failures_total{reason="` + reason + `"} 1`; !strings.Contains(w.Body.String(), want) {
			t.Errorf("the operator's /metrics lacks %s", want)
		}
	}
}

package load_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/bench/load"
	"github.com/keyward/keyward/internal/idptest"
	"github.com/keyward/keyward/storage/storagetest"
)

// sqlite is the backend of these tests: the scenarios' requests are what is
// tested here, and bench/run drives both backends.
var sqlite = storagetest.Backends[0]

// ccToken is an access token of client CC for https://rs1.test, the
// audience resource server RS may introspect.
func ccToken(t *testing.T, e *idptest.Env) string {
	t.Helper()
	r := e.Token("CC", idptest.CCForm("scope", "read"))
	if r.Status != http.StatusOK {
		t.Fatalf("client_credentials: %d %s", r.Status, r.Body)
	}
	return r.Str("access_token")
}

func TestIntrospectScenario(t *testing.T) {
	e := idptest.New(t, sqlite)
	tok := ccToken(t, e)
	tests := []struct {
		name         string
		token        string
		wantGood     int
		wantInactive int
	}{
		{"active token", tok, 40, 0},
		{"token of no one: 200 but inactive", strings.Repeat("x", 40), 0, 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := load.Run(t.Context(), load.Config{URL: e.URL, Scenario: load.Introspect, ClientID: "RS",
				ClientSecret: e.Secrets["RS"], Token: tt.token, Concurrency: 4, Requests: 40})
			if err != nil {
				t.Fatal(err)
			}
			if res.Status[http.StatusOK] != 40 || res.Good() != tt.wantGood || res.Inactive != tt.wantInactive ||
				res.Failures() != 40-tt.wantGood {
				t.Fatalf("status %s, good %d, inactive %d, failures %d", res.Histogram(), res.Good(), res.Inactive, res.Failures())
			}
		})
	}
}

func TestIntrospectScenarioNeedsToken(t *testing.T) {
	_, err := load.Run(t.Context(), load.Config{URL: "http://127.0.0.1:1", Scenario: load.Introspect, ClientID: "RS",
		ClientSecret: "s", Concurrency: 1, Requests: 1})
	if err == nil || !strings.Contains(err.Error(), "token") {
		t.Fatalf("err = %v", err)
	}
}

func TestJWKSScenarios(t *testing.T) {
	e := idptest.New(t, sqlite)
	tests := []struct {
		scenario   string
		wantStatus int
	}{
		{load.JWKS, http.StatusOK},
		{load.JWKS304, http.StatusNotModified},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			res, err := load.Run(t.Context(), load.Config{URL: e.URL, Scenario: tt.scenario, Concurrency: 3, Requests: 30})
			if err != nil {
				t.Fatal(err)
			}
			if res.Status[tt.wantStatus] != 30 || res.Good() != 30 || res.Failures() != 0 {
				t.Fatalf("status %s, good %d", res.Histogram(), res.Good())
			}
		})
	}
}

// A 200 where a 304 was asked for is a failure of the jwks304 scenario.
func TestJWKS304CountsOtherStatusAsFailure(t *testing.T) {
	e := idptest.New(t, sqlite)
	res, err := load.Run(t.Context(), load.Config{URL: e.URL, Scenario: load.JWKS, Concurrency: 1, Requests: 5})
	if err != nil {
		t.Fatal(err)
	}
	res.Config.Scenario = load.JWKS304 // the same answers, judged as jwks304
	if res.Good() != 0 || res.Failures() != 5 {
		t.Fatalf("good %d, failures %d", res.Good(), res.Failures())
	}
}

func TestMeasureVerify(t *testing.T) {
	e := idptest.New(t, sqlite)
	tok := ccToken(t, e)
	res, err := load.MeasureVerify(t.Context(), e.URL, "https://rs1.test", tok, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if res.Good() == 0 || res.Failures() != 0 || res.P50 <= 0 || res.Max < res.P99 || res.GoodPerSecond() <= 0 {
		t.Fatalf("good %d, failures %d, p50 %v, p99 %v, max %v", res.Good(), res.Failures(), res.P50, res.P99, res.Max)
	}
	// A token for another audience fails before the clock starts.
	if _, err := load.MeasureVerify(t.Context(), e.URL, "https://rs2.test", tok, 100*time.Millisecond); err == nil {
		t.Fatal("a token for another audience measured")
	}
	if _, err := load.MeasureVerify(t.Context(), "http://192.0.2.1", "https://rs1.test", tok, 100*time.Millisecond); err == nil {
		t.Fatal("a non-loopback issuer accepted")
	}
}

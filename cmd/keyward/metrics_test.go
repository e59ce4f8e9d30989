package main

import (
	"bufio"
	"maps"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/testsupport"
)

// scrape GETs url and returns the status and the body.
func scrape(t *testing.T, url string) (int, string) {
	t.Helper()
	code, b, _ := testsupport.Get(t, url)
	return code, string(b)
}

// counters are the keyward_ counters of an exposition (series ending in
// _total or _count, by series name with labels), the values a request
// moves whatever its timing.
func counters(t *testing.T, exposition string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(exposition))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "keyward_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		series := line[:i]
		name, _, _ := strings.Cut(series, "{")
		if !strings.HasSuffix(name, "_total") && !strings.HasSuffix(name, "_count") {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[series] = v
	}
	return out
}

// delta is what moved between two counters snapshots.
func delta(before, after map[string]float64) map[string]float64 {
	d := map[string]float64{}
	for k, v := range after {
		if v != before[k] {
			d[k] = v - before[k]
		}
	}
	return d
}

// TestServeMetricsOffThePublicListener is issue 12's finding 3 (AD-09,
// TE-11) on real keyward serve processes: by default the public listener
// has no /metrics at all, only --metrics-addr serves it (with the login
// failure reasons, for the operator); with --public-metrics the public
// /metrics has no series that tells an unknown user from a wrong password
// or a disabled account: each of the three moves exactly the same counters
// by the same amounts.
func TestServeMetricsOffThePublicListener(t *testing.T) {
	dir := t.TempDir()
	dsn := "sqlite:" + filepath.Join(dir, "keyward.db")
	mustRun(t, dsn, "", "migrate")
	secret := createLoginClient(t, dsn)
	createLoginUser(t, dsn, "alice", alicePassword)
	createLoginUser(t, dsn, "mallory", alicePassword)
	mustRun(t, dsn, "", "users", "disable", "mallory")
	kek := writeKEK(t, dir)
	c := &http.Client{}

	t.Run("default", func(t *testing.T) {
		p := startProcess(t, nil, "--database", dsn, "--key-encryption-key-file", kek)
		if code, body := scrape(t, p.URL+"/metrics"); code != http.StatusNotFound {
			t.Fatalf("/metrics on the public listener by default: %d\n%.300s", code, body)
		}
		if code, _ := scrape(t, p.URL+"/healthz"); code != http.StatusOK {
			t.Fatalf("/healthz: %d", code)
		}
	})

	t.Run("metrics-addr", func(t *testing.T) {
		p := startProcess(t, nil, "--database", dsn, "--key-encryption-key-file", kek, "--metrics-addr", "127.0.0.1:0")
		if code, _ := scrape(t, p.URL+"/metrics"); code != http.StatusNotFound {
			t.Fatalf("/metrics on the public listener with --metrics-addr: %d", code)
		}
		m := metricsAddr.FindStringSubmatch(p.Log.String())
		if m == nil {
			t.Fatalf("no metrics listener in the log:\n%s", p.Log.String())
		}
		postPasswordGrant(t, c, p, secret, "ghost", alicePassword, "")
		code, body := scrape(t, "http://"+m[1]+"/metrics")
		if code != http.StatusOK || !strings.Contains(body, `keyward_login_failures_total{reason="unknown_user"} 1`) {
			t.Fatalf("/metrics on --metrics-addr: %d, no unknown_user count\n%s", code, body)
		}
	})

	t.Run("public-metrics", func(t *testing.T) {
		p := startProcess(t, nil, "--database", dsn, "--key-encryption-key-file", kek,
			"--metrics-addr", "127.0.0.1:0", "--public-metrics")
		if !strings.Contains(p.Log.String(), "--public-metrics") {
			t.Errorf("no warning about --public-metrics in the log:\n%s", p.Log.String())
		}
		public := p.URL + "/metrics"
		attempts := []struct{ name, user, password string }{
			{"unknown user", "ghost", alicePassword},
			{"wrong password", "alice", "wrong " + alicePassword},
			{"disabled account", "mallory", alicePassword},
		}
		_, body := scrape(t, public)
		last := counters(t, body)
		moved := make([]map[string]float64, len(attempts))
		for i, a := range attempts {
			if r := postPasswordGrant(t, c, p, secret, a.user, a.password, ""); r.status != http.StatusBadRequest || !strings.Contains(r.body, `"invalid_grant"`) {
				t.Fatalf("%s: %v", a.name, r)
			}
			code, body := scrape(t, public)
			if code != http.StatusOK {
				t.Fatalf("/metrics with --public-metrics: %d", code)
			}
			for _, reason := range []string{"unknown_user", "bad_password", "disabled"} {
				if strings.Contains(body, reason) {
					t.Errorf("the public /metrics names %s:\n%s", reason, grepLines(body, reason))
				}
			}
			now := counters(t, body)
			moved[i], last = delta(last, now), now
		}
		for i := range attempts[1:] {
			if !maps.Equal(moved[0], moved[i+1]) {
				t.Errorf("an unknown user moved %v, %s moved %v", moved[0], attempts[i+1].name, moved[i+1])
			}
		}
		if moved[0][`keyward_login_failures_total{reason="invalid_credentials"}`] != 1 {
			t.Errorf("an unknown user moved %v; want one invalid_credentials failure", moved[0])
		}

		// The operator's listener keeps the reasons.
		m := metricsAddr.FindStringSubmatch(p.Log.String())
		if m == nil {
			t.Fatalf("no metrics listener in the log:\n%s", p.Log.String())
		}
		_, private := scrape(t, "http://"+m[1]+"/metrics")
		for _, reason := range []string{"unknown_user", "bad_password", "disabled"} {
			if !strings.Contains(private, `keyward_login_failures_total{reason="`+reason+`"} 1`) {
				t.Errorf("--metrics-addr lacks the %s count:\n%s", reason, grepLines(private, "keyward_login_failures_total"))
			}
		}
	})
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for line := range strings.SplitSeq(s, "\n") {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

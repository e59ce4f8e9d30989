package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/bench/load"
)

func TestServeFlags(t *testing.T) {
	tests := []struct {
		name               string
		help               string
		wantSigner, wantKA bool
	}{
		{"neither", "      --key-size int   RSA signing key size\n      --addr string", false, false},
		{"signer", "      --signer string   auto, go or openssl (default \"auto\")\n", true, false},
		{"both", "      --key-algorithm string   RS256, ES256 or EdDSA\n      --signer string   x\n", true, true},
		{"a longer flag is not the flag", "      --signer-cache int\n      --key-algorithms-extra x\n", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, k := serveFlags(tt.help)
			if s != tt.wantSigner || k != tt.wantKA {
				t.Fatalf("serveFlags = %v, %v; want %v, %v", s, k, tt.wantSigner, tt.wantKA)
			}
		})
	}
}

func TestPlanRows(t *testing.T) {
	find := func(rows []load.Row, scenario, backend string, conns int) load.Row {
		t.Helper()
		for _, r := range rows {
			if r.Scenario == scenario && r.Backend == backend && r.Conns == conns {
				return r
			}
		}
		t.Fatalf("no row %s %s %d", scenario, backend, conns)
		return load.Row{}
	}
	backends, conns := []string{"sqlite", "postgres"}, []int{8, 32}

	missing := planRows(variants(false, false), backends, conns)
	if len(missing) != 9*2*2 {
		t.Fatalf("%d rows, want 9 scenarios × 2 backends × 2 concurrencies", len(missing))
	}
	for _, tt := range []struct {
		scenario, backend string
		conns             int
		wantNA            string
	}{
		{"client_credentials (OpenSSL signer)", "sqlite", 8, "--signer flag missing"},
		{"client_credentials (ES256)", "postgres", 32, "--key-algorithm flag missing"},
		{"client_credentials (EdDSA)", "sqlite", 32, "--key-algorithm flag missing"},
		{"client_credentials (Go signer)", "postgres", 8, ""}, // without --signer, Go is what signs
		{"refresh", "sqlite", 8, ""},
	} {
		if r := find(missing, tt.scenario, tt.backend, tt.conns); r.NA != tt.wantNA {
			t.Errorf("%s %s %d: NA %q, want %q", tt.scenario, tt.backend, tt.conns, r.NA, tt.wantNA)
		}
	}
	for _, r := range planRows(variants(true, true), backends, conns) {
		if r.NA != "" {
			t.Errorf("%s %s %d: n/a with both flags present", r.Scenario, r.Backend, r.Conns)
		}
	}

	// The targets.
	ms := time.Millisecond
	for _, tt := range []struct {
		scenario, backend string
		conns             int
		want              load.Target
		wantLimit         string
	}{
		{"client_credentials (OpenSSL signer)", "sqlite", 8, load.Target{MinRatio: 0.60, MaxP99: 25 * ms, MaxLatency: time.Second}, limitOpenSSL},
		{"client_credentials (OpenSSL signer)", "postgres", 32, load.Target{MinRatio: 0.60, MaxLatency: time.Second}, limitOpenSSL},
		{"client_credentials (Go signer)", "postgres", 8, load.Target{MinRatio: 0.80, MaxP99: 25 * ms, MaxLatency: time.Second}, limitGoRSA},
		{"client_credentials (ES256)", "sqlite", 8, load.Target{MinRPS: 8000, MaxP99: 25 * ms, MaxLatency: time.Second}, limitES256},
		{"refresh", "sqlite", 8, load.Target{MinRatio: 0.50, MaxP99: 25 * ms, MaxLatency: time.Second}, limitOpenSSL},
		{"refresh", "postgres", 32, load.Target{MinRatio: 0.35, MaxLatency: time.Second}, limitOpenSSL},
		{"password", "sqlite", 32, load.Target{MinRatio: 0.85}, limitArgon2},
		{"introspection", "postgres", 8, load.Target{MinRPS: 6000, MaxLatency: time.Second}, ""},
		{"introspection", "sqlite", 8, load.Target{MaxLatency: time.Second}, ""},
		{"jwks 200", "sqlite", 32, load.Target{MinRPS: 30000, MaxLatency: time.Second}, ""},
		{"jwks 304", "postgres", 8, load.Target{MinRPS: 30000, MaxLatency: time.Second}, ""},
	} {
		r := find(missing, tt.scenario, tt.backend, tt.conns)
		if r.Target != tt.want || r.Limit != tt.wantLimit {
			t.Errorf("%s %s %d: target %v against %q, want %v against %q", tt.scenario, tt.backend, tt.conns, r.Target, r.Limit, tt.want, tt.wantLimit)
		}
	}
}

func TestPostgresPinned(t *testing.T) {
	got := strings.Join(pgStartArgs(0, "/usr/lib/postgresql/15/bin", "/tmp/x/data", "/tmp/x", 5999), " ")
	want := "taskset -c 0 runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D /tmp/x/data -l /tmp/x/postgres.log -w -t 60 -o -p 5999 -k /tmp/x -c listen_addresses=127.0.0.1 start"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// -render prints a -json report as the run that wrote it would have.
func TestReadReportRoundTrip(t *testing.T) {
	rows := planRows(variants(false, true), []string{"sqlite"}, []int{8})
	rows[0].RPS, rows[0].P50, rows[0].P99, rows[0].Max, rows[0].LimitRate = 21.5, 300*time.Millisecond, time.Second, 2*time.Second, 25
	rows[1].Errors, rows[1].ErrorDetail = 2, "200: 10, 503: 2 (2 with Retry-After)"
	rep := &load.Report{Date: time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC), Machine: "m", Duration: 10 * time.Second,
		Limits: []load.LimitFigure{{Name: limitArgon2, Rate: 25, Before: 25, After: 20}}, Rows: rows,
		Memory: []load.MemoryFigure{{Backend: "sqlite", Server: "go server", Idle: 1 << 20, Peak: 2 << 20}}, IdleRSSTarget: 30 << 20,
		Notes: []string{"n"}}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "run.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := readReport(path)
	if err != nil {
		t.Fatal(err)
	}
	var want, have bytes.Buffer
	rep.WriteMarkdown(&want)
	got.WriteMarkdown(&have)
	if have.String() != want.String() {
		t.Fatalf("rendered from JSON:\n%s\nwant:\n%s", have.String(), want.String())
	}
}

func TestMarkUnmeasured(t *testing.T) {
	vs := variants(true, false)
	rows := planRows(vs, []string{"sqlite", "postgres"}, []int{8})
	var openssl variant
	for _, v := range vs {
		if v.name == "openssl" {
			openssl = v
		}
	}
	for i := range rows { // the postgres openssl row was measured
		if rows[i].Backend == "postgres" && rows[i].Scenario == "client_credentials (OpenSSL signer)" {
			rows[i].P50 = time.Millisecond
		}
	}
	markUnmeasured(rows, "sqlite", openssl, errors.New("keyward exited at start: exit status 1\nmore"))
	for _, r := range rows {
		want := ""
		switch {
		case r.Scenario == "client_credentials (OpenSSL signer)" && r.Backend == "sqlite":
			want = "failed: keyward exited at start: exit status 1"
		case strings.HasPrefix(r.Scenario, "client_credentials (E"):
			want = "--key-algorithm flag missing"
		}
		if r.NA != want {
			t.Errorf("%s %s: NA %q, want %q", r.Scenario, r.Backend, r.NA, want)
		}
	}
}

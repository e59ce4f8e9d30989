package load

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestRowVerdict(t *testing.T) {
	ms := time.Millisecond
	base := Row{Scenario: "client_credentials", Backend: "sqlite", Conns: 8, RPS: 1800, P50: 4 * ms, P99: 20 * ms, Max: 300 * ms,
		Limit: "OpenSSL RSA-2048 sign", LimitRate: 3000}
	tests := []struct {
		name   string
		change func(*Row)
		want   string
	}{
		{"no target", func(r *Row) {}, "—"},
		{"ratio met exactly", func(r *Row) { r.Target = Target{MinRatio: 0.60} }, "pass"},
		{"ratio missed", func(r *Row) { r.Target = Target{MinRatio: 0.61} }, "miss (ratio)"},
		{"req/s met", func(r *Row) { r.Target = Target{MinRPS: 1800} }, "pass"},
		{"req/s missed", func(r *Row) { r.Target = Target{MinRPS: 8000} }, "miss (req/s)"},
		{"p99 at the bound", func(r *Row) { r.Target = Target{MaxP99: 20 * ms} }, "pass"},
		{"p99 over", func(r *Row) { r.Target = Target{MaxP99: 19 * ms} }, "miss (p99)"},
		{"max over 1 s", func(r *Row) { r.Max = 1001 * ms; r.Target = Target{MaxLatency: time.Second} }, "miss (max)"},
		{"every miss, in order", func(r *Row) {
			r.Max, r.Errors = 2*time.Second, 1
			r.Target = Target{MinRatio: 0.9, MinRPS: 9000, MaxP99: ms, MaxLatency: time.Second}
		}, "miss (ratio, req/s, p99, max, errors)"},
		{"errors fail a target", func(r *Row) { r.Errors = 3; r.Target = Target{MinRatio: 0.5} }, "miss (errors)"},
		{"errors without a target", func(r *Row) { r.Errors = 3 }, "—"},
		{"not measured", func(r *Row) { r.NA = "--signer flag missing"; r.Target = Target{MinRatio: 0.6} }, "n/a (--signer flag missing)"},
		{"no limit: ratio target misses", func(r *Row) { r.LimitRate = 0; r.Target = Target{MinRatio: 0.1} }, "miss (ratio)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := base
			tt.change(&r)
			if got := r.Verdict(); got != tt.want {
				t.Fatalf("Verdict() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTargetString(t *testing.T) {
	tests := []struct {
		t    Target
		want string
	}{
		{Target{}, "—"},
		{Target{MinRatio: 0.6, MaxP99: 25 * time.Millisecond, MaxLatency: time.Second}, "≥0.60 · p99≤25ms · max≤1s"},
		{Target{MinRPS: 30000}, "≥30,000/s"},
	}
	for _, tt := range tests {
		if got := tt.t.String(); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.t, got, tt.want)
		}
	}
}

func TestFormatting(t *testing.T) {
	lat := []struct {
		d    time.Duration
		want string
	}{
		{0, "0"}, {840 * time.Microsecond, "840µs"}, {1234 * time.Microsecond, "1.23ms"},
		{12345 * time.Microsecond, "12.3ms"}, {123456 * time.Microsecond, "123ms"}, {4400 * time.Millisecond, "4.40s"},
	}
	for _, tt := range lat {
		if got := Latency(tt.d); got != tt.want {
			t.Errorf("Latency(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
	num := []struct {
		v    float64
		want string
	}{{37.44, "37.4"}, {100, "100"}, {2412.4, "2,412"}, {1234567, "1,234,567"}, {999.6, "1,000"}}
	for _, tt := range num {
		if got := thousands(tt.v); got != tt.want {
			t.Errorf("thousands(%v) = %q, want %q", tt.v, got, tt.want)
		}
	}
}

func testReport() *Report {
	ms := time.Millisecond
	return &Report{
		Date: time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC), Machine: "2 × test CPU", Duration: 10 * time.Second,
		Limits: []LimitFigure{
			{Name: "OpenSSL RSA-2048 sign", Rate: 4000, Before: 3900, After: 4100},
			{Name: "Go ES256 sign", Err: "exit status 1"},
		},
		Rows: []Row{
			{Scenario: "client_credentials (OpenSSL signer)", Backend: "sqlite", Conns: 8, RPS: 2500, P50: 3 * ms, P99: 12 * ms, Max: 40 * ms,
				Limit: "OpenSSL RSA-2048 sign", LimitRate: 4000, Target: Target{MinRatio: 0.6, MaxP99: 25 * ms}},
			{Scenario: "jwks 304", Backend: "postgres", Conns: 32, RPS: 25000, P50: ms, P99: 5 * ms, Max: 9 * ms, Errors: 2,
				ErrorDetail: `200: 1, 304: 249998, error "a|b": 1`, Target: Target{MinRPS: 30000}},
			{Scenario: "client_credentials (ES256)", Backend: "sqlite", Conns: 8, NA: "--key-algorithm flag missing",
				Limit: "Go ES256 sign", Target: Target{MinRPS: 8000}},
		},
		Memory:        []MemoryFigure{{Backend: "sqlite", Server: "default server", Idle: 20 << 20, Peak: 90 << 20}},
		IdleRSSTarget: 30 << 20,
		Notes:         []string{"a | note"},
	}
}

func TestWriteMarkdown(t *testing.T) {
	var b bytes.Buffer
	testReport().WriteMarkdown(&b)
	got := b.String()
	for _, want := range []string{
		"`bench/run` of 2026-12-06 08:00 UTC (2 × test CPU, 10s per scenario).",
		"- OpenSSL RSA-2048 sign: 4,000/s (3,900 / 4,100)",
		"- Go ES256 sign: not measured (exit status 1)",
		"| scenario | backend | conns | req/s | p50 | p99 | max | errors | limit | ratio | target | result |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n",
		"| client_credentials (OpenSSL signer) | sqlite | 8 | 2,500 | 3.00ms | 12.0ms | 40.0ms | 0 | OpenSSL RSA-2048 sign 4,000/s | 0.62 | ≥0.60 · p99≤25ms | pass |\n",
		"| jwks 304 | postgres | 32 | 25,000 | 1.00ms | 5.00ms | 9.00ms | 2 (200: 1, 304: 249998, error \"a\\|b\": 1) | — | — | ≥30,000/s | miss (req/s, errors) |\n",
		"| client_credentials (ES256) | sqlite | 8 | — | — | — | — | — | Go ES256 sign | — | ≥8,000/s | n/a (--key-algorithm flag missing) |\n",
		"- sqlite, default server: idle 20.0 MiB (pass), peak 90.0 MiB",
		"Note: a | note",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("markdown lacks %q\n%s", want, got)
		}
	}
	// Every table line has the header's number of cells: a | inside a cell
	// is escaped.
	for _, l := range strings.Split(got, "\n") {
		if strings.HasPrefix(l, "| ") {
			if n := strings.Count(strings.ReplaceAll(l, `\|`, ""), "|"); n != len(header)+1 {
				t.Errorf("%d separators in %q", n, l)
			}
		}
	}
}

func TestWriteText(t *testing.T) {
	rep := testReport()
	rep.Rows[0].Scenario = "a|b" // not escaped in text
	var b bytes.Buffer
	rep.WriteText(&b)
	lines := strings.Split(b.String(), "\n")
	var table []string
	for _, l := range lines {
		if strings.HasPrefix(l, "scenario ") || strings.HasPrefix(l, "a|b ") || strings.HasPrefix(l, "jwks 304 ") || strings.HasPrefix(l, "client_credentials (ES256) ") {
			table = append(table, l)
		}
	}
	if len(table) != 4 {
		t.Fatalf("table lines %q in\n%s", table, b.String())
	}
	// Columns line up: "backend" starts where each row's backend does.
	col := strings.Index(table[0], "backend")
	for _, l := range table[1:] {
		if rest := l[col:]; !strings.HasPrefix(rest, "sqlite") && !strings.HasPrefix(rest, "postgres") {
			t.Errorf("backend not at column %d in %q", col, l)
		}
	}
	for _, want := range []string{"n/a (--key-algorithm flag missing)", "miss (req/s, errors)", "idle 20.0 MiB (pass)", "note: a | note"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text lacks %q", want)
		}
	}
}

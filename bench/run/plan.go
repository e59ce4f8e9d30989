package main

import (
	"strings"
	"time"

	"github.com/keyward/keyward/bench/load"
)

// The limits measured on the server's core, by the names rows cite.
const (
	limitGoRSA     = "Go RSA-2048 sign"
	limitOpenSSL   = "OpenSSL RSA-2048 sign"
	limitES256     = "Go ES256 sign"
	limitEdDSA     = "Go EdDSA sign"
	limitArgon2    = "argon2id verify"
	limitGoVerify  = "Go RSA-2048 verify"
	verifyMinRatio = 1 / 1.3 // verify costs at most 1.3× the bare RSA check (docs/performance.md)
)

// limitMeasures maps each Go limit to its loadgen -measure name; OpenSSL's
// comes from openssl speed.
var limitMeasures = []struct{ name, measure string }{
	{limitGoRSA, "rsa-sign"},
	{limitES256, "es256-sign"},
	{limitEdDSA, "eddsa-sign"},
	{limitArgon2, "argon2id"},
	{limitGoVerify, "rsa-verify"},
}

// A variant is one way of starting the server: each gets a fresh database,
// so a key algorithm is in use from the first token.
type variant struct {
	name  string
	flags []string // added to keyward serve
	needs string   // the serve flag it needs ("" none); missing: its rows are n/a
	scens []scenario
}

// A scenario is one line of the table, run at each concurrency.
type scenario struct {
	label string // as the table shows it
	load  string // the load.Scenario
	limit string // "" for none
	// target gives the target on a backend at a concurrency.
	target func(backend string, conns int) load.Target
}

// tail is the latency part of every target: p99 ≤ 25 ms at 8 connections
// for the token grants that ask it, and no request over 1 s.
func tail(p99 bool, conns int) load.Target {
	t := load.Target{MaxLatency: time.Second}
	if p99 && conns == 8 {
		t.MaxP99 = 25 * time.Millisecond
	}
	return t
}

func ccScenario(label, limit string, ratio, rps float64) scenario {
	return scenario{label: label, load: load.ClientCredentials, limit: limit, target: func(_ string, conns int) load.Target {
		t := tail(true, conns)
		t.MinRatio, t.MinRPS = ratio, rps
		return t
	}}
}

// variants is every server setup and what runs on it. signer and keyAlg
// are the serve flags of issue 18's signer and key-algorithm parts.
func variants(hasSigner, hasKeyAlg bool) []variant {
	var goFlags []string
	if hasSigner {
		goFlags = []string{"--signer", "go"}
	}
	return []variant{
		{name: "default", scens: []scenario{
			{label: "password", load: load.Password, limit: limitArgon2, target: func(_ string, _ int) load.Target {
				// No latency bound: at 1 core a login waits its turn behind
				// conns-1 argon2id verifications (about conns × 50 ms).
				return load.Target{MinRatio: 0.85}
			}},
			{label: "refresh", load: load.Refresh, limit: limitOpenSSL, target: func(backend string, conns int) load.Target {
				t := tail(true, conns)
				t.MinRatio = 0.50
				if backend == "postgres" {
					t.MinRatio = 0.35
				}
				return t
			}},
			{label: "jwks 200", load: load.JWKS, target: func(_ string, conns int) load.Target {
				t := tail(false, conns)
				t.MinRPS = 30000
				return t
			}},
			{label: "jwks 304", load: load.JWKS304, target: func(_ string, conns int) load.Target {
				t := tail(false, conns)
				t.MinRPS = 30000
				return t
			}},
			{label: "introspection", load: load.Introspect, target: func(backend string, conns int) load.Target {
				t := tail(false, conns)
				if backend == "postgres" {
					t.MinRPS = 6000
				}
				return t
			}},
		}},
		{name: "go", flags: goFlags, scens: []scenario{ccScenario("client_credentials (Go signer)", limitGoRSA, 0.80, 0)}},
		{name: "openssl", flags: []string{"--signer", "openssl"}, needs: signerFlag(hasSigner),
			scens: []scenario{ccScenario("client_credentials (OpenSSL signer)", limitOpenSSL, 0.60, 0)}},
		{name: "es256", flags: []string{"--key-algorithm", "ES256"}, needs: keyAlgFlag(hasKeyAlg),
			scens: []scenario{ccScenario("client_credentials (ES256)", limitES256, 0, 8000)}},
		{name: "eddsa", flags: []string{"--key-algorithm", "EdDSA"}, needs: keyAlgFlag(hasKeyAlg),
			scens: []scenario{ccScenario("client_credentials (EdDSA)", limitEdDSA, 0, 0)}},
	}
}

// variantNames lists the variants' names, for -variants.
func variantNames() []string {
	var names []string
	for _, v := range variants(true, true) {
		names = append(names, v.name)
	}
	return names
}

// signerFlag and keyAlgFlag return the flag a variant misses, or "".
func signerFlag(has bool) string {
	if has {
		return ""
	}
	return "--signer"
}

func keyAlgFlag(has bool) string {
	if has {
		return ""
	}
	return "--key-algorithm"
}

// serveFlags reports which of issue 18's serve flags `keyward serve --help`
// lists.
func serveFlags(help string) (signer, keyAlg bool) {
	return strings.Contains(help, "--signer "), strings.Contains(help, "--key-algorithm ")
}

// verifyRow is the verify package's row: in process, no backend.
func verifyRow() load.Row {
	return load.Row{Scenario: "verify (in process)", Backend: "—", Conns: 1, Limit: limitGoVerify,
		Target: load.Target{MinRatio: verifyMinRatio}}
}

// planRows lays out the table before anything runs: one row per variant
// scenario, backend and concurrency, with n/a where a flag is missing.
func planRows(vs []variant, backends []string, conns []int) []load.Row {
	var rows []load.Row
	for _, b := range backends {
		for _, v := range vs {
			for _, s := range v.scens {
				for _, c := range conns {
					r := load.Row{Scenario: s.label, Backend: b, Conns: c, Limit: s.limit, Target: s.target(b, c)}
					if v.needs != "" {
						r.NA = v.needs + " flag missing"
					}
					rows = append(rows, r)
				}
			}
		}
	}
	return rows
}

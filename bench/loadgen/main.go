// Command loadgen is a bounded load generator for a Keyward server on this
// machine: it refuses targets that are not loopback, caps its duration and
// request count, and stops by itself.
//
//	go run ./bench/loadgen -url http://127.0.0.1:8080 -scenario client_credentials \
//	    -client-id demo-app -client-secret kwcs_... -concurrency 8 -duration 10s
//
// Scenarios: client_credentials, refresh, password (need -username and
// -password), jwks, jwks304 (If-None-Match: the JWKS's ETag), introspect (the
// client is a resource server introspecting -token), and verify (the verify
// package validating -token in this process, for -audience). It reports requests/s, latency percentiles, status
// counts (and how many 429/503 carried Retry-After) and, for the token
// scenarios, the machine's RSA-2048 signing rate (and argon2id rate for
// password) measured before the run, with the ratio achieved/limit. -pid
// samples the server's VmRSS/VmHWM during the run.
//
// -measure NAME runs no load: it measures one limit of this machine for
// -duration (rsa-sign, rsa-verify, es256-sign, eddsa-sign, argon2id) and
// prints {"name": ..., "rate": ...}; bench/run runs it pinned to the
// server's core.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/keyward/keyward/bench/load"
)

func main() {
	var c load.Config
	var asJSON bool
	var measure, audience string
	flag.StringVar(&c.URL, "url", "http://127.0.0.1:8080", "server base URL (loopback only)")
	flag.StringVar(&c.Scenario, "scenario", load.ClientCredentials, "client_credentials, refresh, password, jwks, jwks304, introspect or verify")
	flag.StringVar(&c.Token, "token", "", "access token for introspect and verify (or $KEYWARD_TOKEN)")
	flag.StringVar(&audience, "audience", "api", "verify: the resource server's audience")
	flag.StringVar(&measure, "measure", "", "measure one machine limit for -duration instead of loading a server: rsa-sign, rsa-verify, es256-sign, eddsa-sign or argon2id")
	flag.StringVar(&c.ClientID, "client-id", "demo-app", "client id")
	flag.StringVar(&c.ClientSecret, "client-secret", "", "client secret (or $KEYWARD_CLIENT_SECRET)")
	flag.StringVar(&c.Username, "username", "demo", "user for password and refresh")
	flag.StringVar(&c.Password, "password", "", "password for password and refresh (or $KEYWARD_PASSWORD)")
	flag.StringVar(&c.Scope, "scope", "", "scope to ask for (default: api:read for client_credentials, \"openid api:read\" for user grants)")
	flag.IntVar(&c.Concurrency, "concurrency", 8, fmt.Sprintf("requests in flight (at most %d)", load.MaxConcurrency))
	flag.DurationVar(&c.Duration, "duration", 0, fmt.Sprintf("how long to run (at most %v)", load.MaxDuration))
	flag.IntVar(&c.Requests, "requests", 0, fmt.Sprintf("how many requests to send (at most %d); with -duration, whichever comes first", load.MaxRequests))
	flag.IntVar(&c.WrongPasswordEvery, "wrong-password-every", 0, "password: every n-th request uses a wrong password")
	flag.IntVar(&c.Sources, "sources", 0, fmt.Sprintf("spread workers over this many source addresses 127.0.0.1..127.0.0.N (at most %d)", load.MaxSources))
	flag.IntVar(&c.PID, "pid", 0, "sample this server process's VmRSS/VmHWM during the run")
	flag.DurationVar(&c.Calibrate, "calibrate", 2*time.Second, "how long to measure each machine limit before the run (0: skip)")
	flag.DurationVar(&c.Timeout, "timeout", 30*time.Second, "timeout of one request")
	flag.BoolVar(&asJSON, "json", false, "print the result as JSON")
	flag.Parse()
	if c.ClientSecret == "" {
		c.ClientSecret = os.Getenv("KEYWARD_CLIENT_SECRET")
	}
	if c.Password == "" {
		c.Password = os.Getenv("KEYWARD_PASSWORD")
	}
	if c.Token == "" {
		c.Token = os.Getenv("KEYWARD_TOKEN")
	}
	if c.Duration == 0 && c.Requests == 0 {
		c.Duration = 10 * time.Second
	}
	if measure != "" {
		rate, err := load.MeasureNamed(measure, min(c.Duration, load.MaxDuration))
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(2)
		}
		json.NewEncoder(os.Stdout).Encode(struct {
			Name string  `json:"name"`
			Rate float64 `json:"rate"`
		}{measure, rate})
		return
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var res *load.Result
	var err error
	if c.Scenario == load.Verify {
		res, err = load.MeasureVerify(ctx, c.URL, audience, c.Token, c.Duration)
	} else {
		res, err = load.Run(ctx, c)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
	if asJSON {
		e := json.NewEncoder(os.Stdout)
		e.SetIndent("", "  ")
		e.Encode(struct {
			Scenario    string  `json:"scenario"`
			Concurrency int     `json:"concurrency"`
			RPS         float64 `json:"rps"`
			GoodRPS     float64 `json:"good_rps"`
			Failures    int     `json:"failures"`
			SignRatio   float64 `json:"sign_ratio,omitempty"`
			Argon2Ratio float64 `json:"argon2_ratio,omitempty"`
			*load.Result
		}{res.Config.Scenario, res.Config.Concurrency, res.RPS(), res.GoodPerSecond(), res.Failures(), res.SignRatio(), res.Argon2Ratio(), res})
		return
	}
	load.WriteReport(os.Stdout, res)
}

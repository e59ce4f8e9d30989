package load

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/keyward/keyward/verify"
)

// Verify is the scenario of MeasureVerify: the verify package validating
// access tokens in process, as a resource server does, no HTTP per token.
const Verify = "verify"

// MeasureVerify validates token with a verify.Verifier for issuer and
// audience (keys discovered and fetched once, from loopback only) on
// GOMAXPROCS goroutines for about d, and returns validations per second as
// a Result: each success is recorded as a 200, each failure as an error.
func MeasureVerify(ctx context.Context, issuer, audience, token string, d time.Duration) (*Result, error) {
	if err := CheckLoopback(issuer); err != nil {
		return nil, err
	}
	if d <= 0 || d > MaxDuration {
		return nil, fmt.Errorf("duration %v not in (0, %v]", d, MaxDuration)
	}
	v, err := verify.New(ctx, verify.Config{Issuer: issuer, Audience: audience, HTTPClient: newClient(nil, 1, 10*time.Second)})
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	defer v.Close()
	if _, err := v.Verify(ctx, token); err != nil { // warm up; a bad token fails here
		return nil, fmt.Errorf("verify the token: %w", err)
	}
	procs := runtime.GOMAXPROCS(0)
	res := &Result{Config: Config{URL: issuer, Scenario: Verify, Concurrency: procs, Duration: d}}
	rec := NewRecorder()
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t0 := time.Now(); t0.Before(deadline) && ctx.Err() == nil; t0 = time.Now() {
				_, err := v.Verify(ctx, token)
				lat := time.Since(t0)
				if err != nil {
					rec.Error(err)
					continue
				}
				rec.Record(200, lat, false)
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.Summary = rec.Summary()
	res.TokensPerOK = 1
	return res, nil
}

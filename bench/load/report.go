package load

import (
	"fmt"
	"io"
	"time"
)

// WriteReport prints r for a person.
func WriteReport(w io.Writer, r *Result) {
	c := r.Config
	bound := fmt.Sprintf("%v", c.Duration)
	if c.Requests > 0 {
		bound = fmt.Sprintf("%d requests", c.Requests)
		if c.Duration > 0 {
			bound += fmt.Sprintf(" or %v", c.Duration)
		}
	}
	fmt.Fprintf(w, "scenario %s, concurrency %d, %s, target %s\n", c.Scenario, c.Concurrency, bound, c.URL)
	if r.SetupLogins > 0 {
		fmt.Fprintf(w, "setup: %d password logins (one refresh chain per worker), not counted\n", r.SetupLogins)
	}
	fmt.Fprintf(w, "elapsed %v, %d responses, %d without a response\n", r.Elapsed.Round(time.Millisecond), r.Completed(), r.ErrorCount())
	fmt.Fprintf(w, "throughput %.1f req/s (%.1f 200/s)\n", r.RPS(), r.OKPerSecond())
	fmt.Fprintf(w, "latency p50 %v  p95 %v  p99 %v  max %v\n", rnd(r.P50), rnd(r.P95), rnd(r.P99), rnd(r.Max))
	fmt.Fprintf(w, "status %s\n", r.Histogram())
	if l := r.Limits; l.RSASignsPerSec > 0 {
		fmt.Fprintf(w, "machine limit (GOMAXPROCS %d, mean of before/after the run): RSA-2048 sign %.0f/s (%.0f / %.0f)",
			l.GOMAXPROCS, l.RSASignsPerSec, l.RSABefore, l.RSAAfter)
		if l.Argon2PerSec > 0 {
			fmt.Fprintf(w, ", argon2id verify %.1f/s (%.1f / %.1f)", l.Argon2PerSec, l.Argon2Before, l.Argon2After)
		}
		fmt.Fprintln(w)
		if r.TokensPerOK > 0 {
			fmt.Fprintf(w, "ratio to RSA limit: %.1f 200/s × %.2f signatures = %.0f signs/s = %.0f %%\n",
				r.OKPerSecond(), r.TokensPerOK, r.OKPerSecond()*r.TokensPerOK, 100*r.SignRatio())
		}
		if l.Argon2PerSec > 0 {
			fmt.Fprintf(w, "ratio to argon2id limit: %.1f password checks/s (200 + 400) = %.0f %%\n",
				float64(r.Status[200]+r.Status[400])/r.Elapsed.Seconds(), 100*r.Argon2Ratio())
		}
	}
	if m := r.Memory; m != nil {
		fmt.Fprintf(w, "server pid %d: VmRSS before %s, peak sampled %s, VmHWM %s (%d samples)\n",
			c.PID, MiB(m.RSSBefore), MiB(m.RSSPeak), MiB(m.HWM), m.Samples)
	}
}

func rnd(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

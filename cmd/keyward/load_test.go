package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/bench/load"
	"github.com/keyward/keyward/idp/password"
	"github.com/keyward/keyward/internal/testsupport"
)

// burstRSSCeiling is the most resident memory the server may reach while
// answering the 1,000-login burst (AV-01: no OOM, RSS under the limit).
//
// The password limiter runs at most max(1, min(GOMAXPROCS, 256 MiB /
// 19 MiB)) argon2id hashes at once (password.DefaultMemoryBudget): 2 on this
// 2-core host (38 MiB of matrices), 13 (247 MiB) from 13 cores up; every
// other request waits in the bounded queue or is refused with 503. On top
// come the idle server (about 40 MiB: runtime, SQLite, keys), the 1,000
// requests themselves (connections, goroutines, buffers) and the garbage of
// finished hashes: each leaves its 19 MiB matrix behind until the collector
// runs, and with GOGC=100 the heap may grow to twice the live heap first.
// Measured on this host with 4 slots (two per core, the earlier default):
// VmHWM 240-257 MiB from a 39-42 MiB start.
//
// The ceiling is 512 MiB (the 256 MiB argon2 budget + 256 MiB for the
// baseline, the request load and GC slack), or, where more hash slots run,
// 256 MiB + twice the hashes' memory (live and uncollected): 750 MiB at
// 13 slots. Both are far from what an unbounded burst needs (1,000 hashes at
// once: 19 GiB).
const burstRSSCeiling = 512 << 20

// burstCeiling applies burstRSSCeiling to this host's hash slot count.
func burstCeiling() int64 {
	p := password.DefaultParams()
	perHash := int64(p.Memory) << 10
	slots := max(1, min(int64(runtime.GOMAXPROCS(0)), password.DefaultMemoryBudget/perHash))
	return max(burstRSSCeiling, 256<<20+2*slots*perHash)
}

// startBuiltProcess is startProcess for a -race test run: it builds the
// keyward binary without -race and runs that. The race-instrumented test
// binary is 5-10x larger and slower (race detector documentation; here its
// burst took 16-20 s, past the server's 15 s WriteTimeout, and peaked at
// 1.1 GiB), so its memory and timing would say nothing about the product,
// which is what this test measures. The in-process tests cover races.
func startBuiltProcess(t *testing.T, args ...string) *process {
	t.Helper()
	bin := testsupport.BuildKeyward(t)
	return testsupport.StartProcess(t, exec.Command(bin, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...))
}

// raceEnabled reports whether this binary was built with -race.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" && s.Value == "true" {
			return true
		}
	}
	return false
}

// TestPasswordLoginBurst fires 1,000 password-grant requests at once at a
// real keyward serve process (AV-01, DESIGN "Accounts and protection"):
// right and wrong passwords for the demo user and unknown users, from ten
// loopback addresses. The server must stay up, answer every request with
// 200, 400 invalid_grant, or 429/503 with Retry-After (never another 5xx,
// never a dropped connection), and keep its peak RSS under burstRSSCeiling.
func TestPasswordLoginBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 concurrent logins against a server process")
	}
	const (
		requests = 1000
		sources  = 10
	)
	ceiling := burstCeiling()
	dir := t.TempDir()
	args := []string{"--demo", "--database", "sqlite:" + dir + "/keyward.db", "--key-encryption-key-file", writeKEK(t, dir)}
	var p *process
	if raceEnabled() {
		p = startBuiltProcess(t, args...)
	} else {
		p = startProcess(t, nil, args...)
	}
	secret, pw := demoCredentials(t, p)

	clients := make([]*http.Client, sources)
	for i := range clients {
		clients[i] = clientFrom(fmt.Sprintf("127.0.0.%d", i+1))
		defer clients[i].CloseIdleConnections()
	}
	mem, err := load.StartSampler(p.Pid(), 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}

	// /healthz is polled during the burst from an address of its own: the
	// server must keep answering it (AV-01 asks for p99 under 200 ms; the
	// figure is logged, as this shared 2-core host cannot promise it).
	ctx, cancel := context.WithTimeout(t.Context(), 45*time.Second)
	defer cancel()
	health := load.NewRecorder()
	healthDone := make(chan struct{})
	burstDone := make(chan struct{})
	go func() {
		defer close(healthDone)
		hc := clientFrom("127.0.0.200")
		defer hc.CloseIdleConnections()
		for {
			select {
			case <-burstDone:
				return
			case <-time.After(20 * time.Millisecond):
			}
			t0 := time.Now()
			res, err := hc.Get(p.URL + "/healthz")
			if err != nil {
				health.Error(err)
				continue
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			health.Record(res.StatusCode, time.Since(t0), false)
		}
	}()

	rec := load.NewRecorder()
	var (
		mu  sync.Mutex
		bad []string // responses outside the allowed set
	)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range requests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user, pass := "demo", pw
			switch i % 10 {
			case 4, 5, 6, 7:
				pass = pw + "-wrong"
			case 8, 9:
				user, pass = fmt.Sprintf("nobody-%d", i), "some password of no one"
			}
			form := url.Values{"grant_type": {"password"}, "username": {user}, "password": {pass}, "scope": {"openid api:read"}}
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.URL+"/oauth2/token", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(demoClientID, secret)
			<-start
			t0 := time.Now()
			res, err := clients[i%sources].Do(req)
			if err != nil {
				rec.Error(err)
				return
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			retry := load.HasRetryAfter(res.Header)
			rec.Record(res.StatusCode, time.Since(t0), retry)
			if why := burstAnswerProblem(res.StatusCode, body, retry); why != "" {
				mu.Lock()
				bad = append(bad, fmt.Sprintf("%s (user %s): %d %s", why, user, res.StatusCode, body))
				mu.Unlock()
			}
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(t0)
	close(burstDone)
	<-healthDone
	peak := mem.Stop()
	sum, hs := rec.Summary(), health.Summary()

	t.Logf("burst of %d in %v: %s", requests, elapsed.Round(time.Millisecond), sum.Histogram())
	t.Logf("latency p50 %v p95 %v p99 %v max %v", sum.P50, sum.P95, sum.P99, sum.Max)
	t.Logf("server RSS before %s, peak sampled %s, VmHWM %s (ceiling %s)",
		load.MiB(peak.RSSBefore), load.MiB(peak.RSSPeak), load.MiB(peak.HWM), load.MiB(ceiling))
	t.Logf("/healthz during the burst: %s; p50 %v p99 %v max %v", hs.Histogram(), hs.P50, hs.P99, hs.Max)

	// The process is still there and serving.
	res, err := clientFrom("127.0.0.201").Get(p.URL + "/healthz")
	if err != nil {
		t.Fatalf("/healthz after the burst: %v\n%s", err, burstLogTail(p.Log.String(), 4000))
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("/healthz after the burst: %d", res.StatusCode)
	}
	if strings.Contains(p.Log.String(), "panic") {
		t.Fatalf("the server panicked:\n%s", burstLogTail(p.Log.String(), 4000))
	}

	if n := sum.ErrorCount(); n > 0 {
		t.Errorf("%d requests got no response: %v", n, sum.Errors)
	}
	if len(bad) > 0 {
		t.Errorf("%d answers outside 200 / 400 invalid_grant / 429+Retry-After / 503+Retry-After, e.g.:\n%s",
			len(bad), strings.Join(bad[:min(len(bad), 5)], "\n"))
	}
	if sum.Completed() != requests {
		t.Errorf("%d of %d requests answered", sum.Completed(), requests)
	}
	// The burst must reach the hashing limiter, not only the throttle.
	if sum.Status[http.StatusOK] == 0 || sum.Status[http.StatusServiceUnavailable] == 0 {
		t.Errorf("expected some logins and some 503s from the hashing limiter: %s", sum.Histogram())
	}
	if hs.ErrorCount() > 0 || hs.Completed() != hs.Status[http.StatusOK] {
		t.Errorf("/healthz failed during the burst: %s", hs.Histogram())
	}
	if peak.HWM > ceiling {
		t.Errorf("peak RSS (VmHWM) %s over the ceiling %s", load.MiB(peak.HWM), load.MiB(ceiling))
	}
}

// burstAnswerProblem says what is wrong with one burst answer, or "".
func burstAnswerProblem(status int, body []byte, hasRetryAfter bool) string {
	var e struct {
		Error string `json:"error"`
	}
	json.Unmarshal(body, &e)
	switch status {
	case http.StatusOK:
		return ""
	case http.StatusBadRequest:
		if e.Error != "invalid_grant" {
			return "400 other than invalid_grant"
		}
		return ""
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		if !hasRetryAfter {
			return "no Retry-After"
		}
		return ""
	}
	return "unexpected status"
}

// burstLogTail is the end of a long log, for failure messages.
func burstLogTail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

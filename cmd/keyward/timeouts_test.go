package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// trickle writes data to c one byte every interval, starting at once, and
// watches for the server to cut the connection: to answer, or to hang up.
// It returns how long after start that happened, how many bytes it had
// sent, and what the server wrote, if anything. An answer must be followed
// by the server closing the connection. A connection still open at limit is
// an error.
func trickle(c net.Conn, start time.Time, data []byte, interval, limit time.Duration) (cut time.Duration, sent int, answer string, err error) {
	buf := make([]byte, 512)
	for {
		if sent < len(data) {
			if _, err := c.Write(data[sent : sent+1]); err != nil {
				return time.Since(start), sent, "", nil // hung up since the last read
			}
			sent++
		}
		next := time.Now().Add(interval)
		if end := start.Add(limit); next.After(end) {
			next = end
		}
		c.SetReadDeadline(next)
		n, err := c.Read(buf)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			if time.Since(start) >= limit {
				return 0, sent, "", fmt.Errorf("still open after %v, %d bytes sent", limit, sent)
			}
			continue
		}
		cut = time.Since(start)
		if n == 0 {
			return cut, sent, "", nil // EOF or reset: hung up
		}
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		if _, err := io.Copy(io.Discard, c); errors.As(err, &ne) && ne.Timeout() {
			return cut, sent, string(buf[:n]), fmt.Errorf("answered %q after %v but kept the connection open", buf[:n], cut)
		}
		return cut, sent, string(buf[:n]), nil
	}
}

// Bounds of the timeouts keyward serve sets (AV-03). A cut is expected
// between the timeout, less a little for when the server starts its clock,
// and the timeout plus a margin for a loaded test host; the margins stay
// below the next timeout that would cut the same connection (ReadTimeout
// for headers, the 60 s IdleTimeout or nothing for bodies).
const (
	headerTimeout = 5 * time.Second  // ReadHeaderTimeout
	readTimeout   = 10 * time.Second // ReadTimeout: headers and body
	cutEarly      = 500 * time.Millisecond
	cutMargin     = 3 * time.Second
)

// slowloris opens n connections to addr that send a request's header one
// byte every 10 s, the attack of AV-03, and one that sends a byte every
// second, and checks that the server cuts every one of them about
// headerTimeout after it connected: trickling does not extend the timeout.
func slowloris(t *testing.T, addr string, n int) {
	t.Helper()
	head := []byte("GET /healthz HTTP/1.1\r\nHost: " + addr + "\r\nX-Slow: " + strings.Repeat("s", 64))
	type result struct {
		interval, cut time.Duration
		sent          int
		answer        string
		err           error
	}
	results := make(chan result, n+1)
	var wg sync.WaitGroup
	slow := func(interval time.Duration) {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		start := time.Now()
		wg.Go(func() {
			defer c.Close()
			r := result{interval: interval}
			r.cut, r.sent, r.answer, r.err = trickle(c, start, head, interval, readTimeout+cutMargin)
			results <- r
		})
	}
	slow(time.Second)
	for range n {
		slow(10 * time.Second)
	}
	wg.Wait()
	close(results)

	// One line per kind of connection, not a thousand.
	type summary struct {
		n, bad      int
		first, last time.Duration
		example     string
	}
	sums := map[time.Duration]*summary{}
	for r := range results {
		s := sums[r.interval]
		if s == nil {
			s = &summary{first: r.cut}
			sums[r.interval] = s
		}
		s.n++
		s.first, s.last = min(s.first, r.cut), max(s.last, r.cut)
		var problem string
		switch {
		case r.err != nil:
			problem = r.err.Error()
		case r.cut < headerTimeout-cutEarly || r.cut > headerTimeout+cutMargin:
			problem = fmt.Sprintf("cut after %v (%d bytes sent), want about %v", r.cut, r.sent, headerTimeout)
		case strings.HasPrefix(r.answer, "HTTP/1.1 2"):
			problem = fmt.Sprintf("a partial request was answered %q", r.answer)
		case r.interval == time.Second && r.sent < 4:
			problem = fmt.Sprintf("only %d bytes sent before the cut after %v", r.sent, r.cut)
		}
		if problem != "" {
			s.bad++
			s.example = problem
		}
	}
	for _, interval := range []time.Duration{10 * time.Second, time.Second} {
		s := sums[interval]
		t.Logf("a byte every %v: %d connections cut after %v to %v", interval, s.n, s.first, s.last)
		if s.bad > 0 {
			t.Errorf("a byte every %v: %d of %d connections wrong, for example: %s", interval, s.bad, s.n, s.example)
		}
	}
}

// slowBody sends a request's complete headers to addr at once, then its
// body of 100 bytes one byte every half second (50 s in all), checks that
// the server cuts it about readTimeout after the connection opened, and
// returns what the server answered, if anything.
func slowBody(t *testing.T, addr, method, path string) (answer string) {
	t.Helper()
	body := "grant_type=client_credentials&scope=" + strings.Repeat("s", 64)
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	if _, err := fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Basic ZGVtbzpkZW1v\r\n"+
		"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n", method, path, addr, len(body)); err != nil {
		t.Fatal(err)
	}
	cut, sent, answer, err := trickle(c, start, []byte(body), 500*time.Millisecond, readTimeout+cutMargin+5*time.Second)
	switch {
	case err != nil:
		t.Fatal(err)
	case cut < readTimeout-cutEarly || cut > readTimeout+cutMargin:
		t.Fatalf("cut after %v (%d body bytes sent), want about %v", cut, sent, readTimeout)
	}
	t.Logf("cut after %v with %d of %d body bytes sent; answer %.40q", cut, sent, len(body), answer)
	return answer
}

// keepServing requests base's /healthz and JWKS on fresh connections every
// 200 ms until stop is closed, then reports the first failure, or too few
// answers.
func keepServing(base string, stop <-chan struct{}) <-chan error {
	errc := make(chan error, 1)
	go func() {
		client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		for n := 0; ; n++ {
			select {
			case <-stop:
				if n < 10 {
					errc <- fmt.Errorf("only %d requests served", n)
					return
				}
				errc <- nil
				return
			case <-time.After(200 * time.Millisecond):
			}
			path := []string{"/healthz", "/.well-known/jwks.json"}[n%2]
			res, err := client.Get(base + path)
			if err != nil {
				errc <- fmt.Errorf("GET %s: %v", path, err)
				return
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				errc <- fmt.Errorf("GET %s: %d", path, res.StatusCode)
				return
			}
		}
	}()
	return errc
}

// TestServerTimeouts (AV-03) runs a slowloris attack on a real keyward
// serve: 1,000 connections each sending one header byte every 10 s, and
// one sending a byte every second, are all cut about 5 s after they
// connect (ReadHeaderTimeout), while other clients keep being served. A
// request whose body trickles in is cut by the 10 s ReadTimeout, which runs
// from the start of the request, not per read. The --metrics-addr listener
// cuts slow headers too. Skipped with -short: it takes about 11 s.
func TestServerTimeouts(t *testing.T) {
	if testing.Short() {
		t.Skip("the slowloris run takes about 11 s")
	}
	dir := t.TempDir()
	p := startProcess(t, nil, "--database", "sqlite:"+filepath.Join(dir, "keyward.db"), "--key-encryption-key-file", writeKEK(t, dir),
		"--metrics-addr", "127.0.0.1:0")
	addr := strings.TrimPrefix(p.URL, "http://")
	m := metricsAddr.FindStringSubmatch(p.Log.String())
	if m == nil {
		t.Fatalf("no metrics listener in the log:\n%s", p.Log.String())
	}
	metrics := m[1]

	t.Run("slowloris", func(t *testing.T) {
		t.Parallel()
		stop := make(chan struct{})
		served := keepServing(p.URL, stop)
		slowloris(t, addr, 1000)
		close(stop)
		if err := <-served; err != nil {
			t.Errorf("other clients during the attack: %v", err)
		}
		if code, _ := get(t, p.URL+"/healthz"); code != http.StatusOK {
			t.Errorf("/healthz after the attack: %d", code)
		}
	})
	t.Run("slowloris on the metrics listener", func(t *testing.T) {
		t.Parallel()
		slowloris(t, metrics, 10)
	})
	t.Run("slow body", func(t *testing.T) {
		t.Parallel()
		if answer := slowBody(t, addr, http.MethodPost, "/oauth2/token"); strings.HasPrefix(answer, "HTTP/1.1 2") {
			t.Errorf("a partial body was answered %.100q", answer)
		}
	})
	t.Run("slow body on the metrics listener", func(t *testing.T) {
		t.Parallel()
		slowBody(t, metrics, http.MethodGet, "/metrics")
	})
}

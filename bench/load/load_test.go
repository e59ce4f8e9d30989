package load

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestCheckLoopback(t *testing.T) {
	tests := []struct {
		name, url string
		ok        bool
	}{
		{"ipv4 loopback", "http://127.0.0.1:8080", true},
		{"other 127/8 address", "http://127.10.20.30:1", true},
		{"ipv6 loopback", "http://[::1]:8080/", true},
		{"localhost", "http://localhost:8080", true},
		{"localhost upper case", "https://LOCALHOST", true},
		{"private address", "http://10.0.0.1:8080", false},
		{"public address", "http://93.184.216.34", false},
		{"unspecified", "http://0.0.0.0:8080", false},
		{"hostname", "http://example.com", false},
		{"localhost lookalike", "http://localhost.example.com", false},
		{"loopback-looking hostname", "http://127.0.0.1.nip.io", false},
		{"ipv4-mapped non-loopback", "http://[::ffff:10.0.0.1]", false},
		{"no scheme", "127.0.0.1:8080", false},
		{"other scheme", "ftp://127.0.0.1", false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckLoopback(tt.url)
			if (err == nil) != tt.ok {
				t.Fatalf("CheckLoopback(%q) = %v, want ok %v", tt.url, err, tt.ok)
			}
		})
	}
}

func TestLoopbackOnlyAtConnect(t *testing.T) {
	if err := loopbackOnly("tcp", "127.0.0.1:80", nil); err != nil {
		t.Fatal(err)
	}
	if err := loopbackOnly("tcp", "[::1]:80", nil); err != nil {
		t.Fatal(err)
	}
	if err := loopbackOnly("tcp", "192.168.1.1:80", nil); err == nil {
		t.Fatal("connection to 192.168.1.1 allowed")
	}
}

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		d := make([]time.Duration, len(v))
		for i, x := range v {
			d[i] = time.Duration(x) * time.Millisecond
		}
		return d
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		q      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one value", ms(7), 99, 7 * time.Millisecond},
		{"p50 of 1..100", ms(hundred...), 50, 50 * time.Millisecond},
		{"p95 of 1..100", ms(hundred...), 95, 95 * time.Millisecond},
		{"p99 of 1..100", ms(hundred...), 99, 99 * time.Millisecond},
		{"p100 of 1..100", ms(hundred...), 100, 100 * time.Millisecond},
		{"p50 of four: nearest rank 2", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p51 of four: rank 3", ms(1, 2, 3, 4), 51, 3 * time.Millisecond},
		{"p99 of ten: the max", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
		{"tiny q: the min", ms(1, 2, 3), 0.001, time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.sorted, tt.q); got != tt.want {
				t.Fatalf("Percentile(%v, %v) = %v, want %v", tt.sorted, tt.q, got, tt.want)
			}
		})
	}
}

func TestRecorderSummary(t *testing.T) {
	r := NewRecorder()
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.Record(200, time.Duration(100-i)*time.Millisecond, false)
		}()
	}
	wg.Wait()
	r.Record(503, time.Second, true)
	r.Record(503, time.Second, false)
	r.Error(syscall.ECONNREFUSED)
	s := r.Summary()
	if s.Completed() != 102 || s.ErrorCount() != 1 || s.Errors["connection refused"] != 1 {
		t.Fatalf("counts: %+v", s)
	}
	if s.P50 != 51*time.Millisecond || s.Max != time.Second {
		t.Fatalf("p50 %v max %v", s.P50, s.Max)
	}
	want := `200: 100, 503: 2 (1 with Retry-After), error "connection refused": 1`
	if got := s.Histogram(); got != want {
		t.Fatalf("histogram %q, want %q", got, want)
	}
}

func TestHasRetryAfter(t *testing.T) {
	tests := []struct {
		value string
		want  bool
	}{
		{"", false},
		{"3", true},
		{" 0 ", true},
		{"-1", false},
		{"soon", false},
		{"Wed, 21 Oct 2015 07:28:00 GMT", true},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.value != "" {
			h.Set("Retry-After", tt.value)
		}
		if got := HasRetryAfter(h); got != tt.want {
			t.Errorf("HasRetryAfter(%q) = %v, want %v", tt.value, got, tt.want)
		}
	}
}

func TestParseStatus(t *testing.T) {
	b := []byte("Name:\tkeyward\nVmPeak:\t 1000 kB\nVmHWM:\t   51200 kB\nVmRSS:\t   40960 kB\nThreads:\t8\n")
	rss, hwm, err := parseStatus(b)
	if err != nil || rss != 40<<20 || hwm != 50<<20 {
		t.Fatalf("parseStatus = %d, %d, %v", rss, hwm, err)
	}
	if _, _, err := parseStatus([]byte("Name:\tkthreadd\n")); err == nil {
		t.Fatal("no error without VmRSS")
	}
}

func TestSamplerOwnProcess(t *testing.T) {
	s, err := StartSampler(syscall.Getpid(), time.Millisecond)
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	time.Sleep(10 * time.Millisecond)
	m := s.Stop()
	if m.RSSBefore <= 0 || m.RSSPeak < m.RSSBefore || m.HWM < m.RSSPeak || m.Samples < 2 {
		t.Fatalf("memory %+v", m)
	}
}

func TestConfigCaps(t *testing.T) {
	ok := Config{URL: "http://127.0.0.1:1", Scenario: JWKS, Concurrency: 1, Duration: time.Second}
	if err := ok.check(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		mod  func(*Config)
	}{
		{"remote target", func(c *Config) { c.URL = "http://192.0.2.1" }},
		{"unknown scenario", func(c *Config) { c.Scenario = "authorization_code" }},
		{"duration over the cap", func(c *Config) { c.Duration = MaxDuration + time.Second }},
		{"requests over the cap", func(c *Config) { c.Requests = MaxRequests + 1 }},
		{"concurrency over the cap", func(c *Config) { c.Concurrency = MaxConcurrency + 1 }},
		{"no concurrency", func(c *Config) { c.Concurrency = 0 }},
		{"unbounded", func(c *Config) { c.Duration, c.Requests = 0, 0 }},
		{"token scenario without client", func(c *Config) { c.Scenario = ClientCredentials }},
		{"password without user", func(c *Config) { c.Scenario, c.ClientID = Password, "c" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mod(&c)
			if err := c.check(); err == nil {
				t.Fatal("accepted")
			}
			if _, err := Run(t.Context(), c); err == nil {
				t.Fatal("Run accepted")
			}
		})
	}
}

// fakeToken answers the token endpoint like Keyward's, in miniature: every
// third request is refused 503 (two with Retry-After, one without), every
// fifth 429 with Retry-After, the rest 200 with an access token and a
// rotated refresh token.
type fakeToken struct {
	n        atomic.Int64
	mu       sync.Mutex
	live     map[string]bool // refresh tokens not yet used
	reused   atomic.Int64
	next     atomic.Int64
	badAuths atomic.Int64
}

func (f *fakeToken) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/.well-known/jwks.json" {
		w.Write([]byte(`{"keys":[]}`))
		return
	}
	// RFC 6749 §2.3.1: both parts are form-encoded inside Basic.
	id, secret, _ := r.BasicAuth()
	id, _ = url.QueryUnescape(id)
	secret, _ = url.QueryUnescape(secret)
	if id != "c1" || secret != "s e+cret" {
		f.badAuths.Add(1)
		http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
		return
	}
	r.ParseForm()
	n := f.n.Add(1)
	switch {
	case r.PostForm.Get("grant_type") == "password":
		// always succeed: setup logins and password runs
	case n%15 == 0:
		w.WriteHeader(http.StatusServiceUnavailable) // no Retry-After
		return
	case n%3 == 0:
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	case n%5 == 0:
		w.Header().Set("Retry-After", "2")
		w.WriteHeader(http.StatusTooManyRequests)
		return
	}
	rt := fmt.Sprintf("rt%d", f.next.Add(1))
	f.mu.Lock()
	if r.PostForm.Get("grant_type") == "refresh_token" {
		// A refused refresh leaves its token usable; a 200 uses it up.
		if !f.live[r.PostForm.Get("refresh_token")] {
			f.reused.Add(1)
		}
		delete(f.live, r.PostForm.Get("refresh_token"))
	}
	f.live[rt] = true
	f.mu.Unlock()
	json.NewEncoder(w).Encode(map[string]string{"access_token": "a.b.c", "id_token": "d.e.f", "refresh_token": rt})
}

func TestRunCountsRetryAfter(t *testing.T) {
	f := &fakeToken{live: map[string]bool{}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	res, err := Run(t.Context(), Config{URL: srv.URL, Scenario: ClientCredentials, ClientID: "c1", ClientSecret: "s e+cret",
		Concurrency: 4, Requests: 150})
	if err != nil {
		t.Fatal(err)
	}
	// Of 150 requests: 10 are multiples of 15 (503 without Retry-After),
	// 40 other multiples of 3 (503 with), 20 multiples of 5 but not 3 (429 with).
	s := res.Summary
	if s.Completed() != 150 || s.ErrorCount() != 0 {
		t.Fatalf("completed %d, errors %v", s.Completed(), s.Errors)
	}
	if s.Status[503] != 50 || s.WithRetryAfter[503] != 40 || s.Status[429] != 20 || s.WithRetryAfter[429] != 20 || s.Status[200] != 80 {
		t.Fatalf("histogram %s", s.Histogram())
	}
	if f.badAuths.Load() != 0 {
		t.Fatal("client authentication failed: Basic credentials not form-encoded")
	}
	if res.TokensPerOK != 2 {
		t.Fatalf("tokens per 200: %v", res.TokensPerOK)
	}
}

func TestRunRefreshKeepsOneChainPerWorker(t *testing.T) {
	f := &fakeToken{live: map[string]bool{}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	res, err := Run(t.Context(), Config{URL: srv.URL, Scenario: Refresh, ClientID: "c1", ClientSecret: "s e+cret",
		Username: "u", Password: "p", Concurrency: 3, Requests: 60})
	if err != nil {
		t.Fatal(err)
	}
	if res.SetupLogins != 3 || res.Completed() != 60 {
		t.Fatalf("setup %d, completed %d", res.SetupLogins, res.Completed())
	}
	// Each worker moves on to the successor after a 200 and keeps its token
	// after a refusal, so no token is ever presented twice successfully.
	if res.Status[200] == 0 || res.Status[503] == 0 {
		t.Fatalf("histogram %s", res.Histogram())
	}
	if got := f.reused.Load(); got != 0 {
		t.Fatalf("%d refresh tokens used twice", got)
	}
}

func TestRunDurationStopsByItself(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	start := time.Now()
	res, err := Run(t.Context(), Config{URL: srv.URL, Scenario: JWKS, Concurrency: 2, Duration: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 5*time.Second || res.Completed() == 0 || res.ErrorCount() != 0 {
		t.Fatalf("took %v, %s", el, res.Histogram())
	}
}

func TestRunRefusesRedirects(t *testing.T) {
	srv := httptest.NewServer(http.RedirectHandler("http://192.0.2.1/", http.StatusFound))
	defer srv.Close()
	res, err := Run(t.Context(), Config{URL: srv.URL, Scenario: JWKS, Concurrency: 1, Requests: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status[http.StatusFound] != 1 {
		t.Fatalf("redirect followed: %s", res.Histogram())
	}
}

func TestErrorClass(t *testing.T) {
	if got := ErrorClass(errors.New("read tcp: unexpected EOF")); got != "EOF" {
		t.Fatal(got)
	}
	if got := ErrorClass(syscall.ECONNRESET); got != "connection reset" {
		t.Fatal(got)
	}
	if got := ErrorClass(errors.New("boom")); !strings.Contains(got, "boom") {
		t.Fatal(got)
	}
}

func TestMeasureLimits(t *testing.T) {
	if testing.Short() {
		t.Skip("measures the machine")
	}
	if r := MeasureRSASign(50 * time.Millisecond); r <= 0 {
		t.Fatalf("RSA rate %v", r)
	}
	if r := MeasureArgon2(50 * time.Millisecond); r <= 0 {
		t.Fatalf("argon2 rate %v", r)
	}
}

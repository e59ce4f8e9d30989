// Package load is a bounded load generator for a Keyward server on the same
// machine. It drives the token endpoint (client_credentials, refresh_token,
// password), introspection or the JWKS (200, or 304 on If-None-Match), records latencies and status codes, and measures the
// machine's own limits (RSA-2048, ES256 and EdDSA signatures, RSA-2048
// verifications and argon2id verifications per second over GOMAXPROCS, and
// OpenSSL's RSA-2048 rate parsed from openssl speed) so results can be read
// as ratios rather than absolute times; MeasureVerify runs the verify package
// in process. Report renders bench/run's table. It refuses any target that
// is not loopback, caps how long and how much it runs, and stops by itself.
// bench/loadgen is its CLI; bench/run drives it for every scenario.
package load

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Scenarios.
const (
	ClientCredentials = "client_credentials"
	Refresh           = "refresh"
	Password          = "password"
	JWKS              = "jwks"
	JWKS304           = "jwks304"    // GET the JWKS with If-None-Match: its ETag
	Introspect        = "introspect" // a resource server introspecting Config.Token
)

// Scenarios lists every scenario Run knows.
var Scenarios = []string{ClientCredentials, Refresh, Password, JWKS, JWKS304, Introspect}

// ExpectedStatus is the status every request of scenario should get: 304
// for JWKS304, 200 otherwise. Any other status counts as an error.
func ExpectedStatus(scenario string) int {
	if scenario == JWKS304 {
		return http.StatusNotModified
	}
	return http.StatusOK
}

// usesJWKS reports whether scenario reads the JWKS rather than a token endpoint.
func usesJWKS(scenario string) bool { return scenario == JWKS || scenario == JWKS304 }

// Caps: a run never exceeds these, whatever it is asked.
const (
	MaxDuration    = 2 * time.Minute
	MaxRequests    = 1_000_000
	MaxConcurrency = 2000
	MaxSources     = 250
)

// Config describes one run.
type Config struct {
	URL          string // server base URL, e.g. http://127.0.0.1:8080; must be loopback
	Scenario     string // one of Scenarios
	ClientID     string // for Introspect: the resource server's own client
	ClientSecret string
	Token        string // Introspect: the access token every request introspects
	Username     string
	Password     string
	Scope        string // "" means the scenario's default (DefaultScope)

	Concurrency int           // workers, each with one request in flight
	Duration    time.Duration // stop after this long (0: only Requests bounds the run)
	Requests    int           // stop after this many requests (0: only Duration bounds the run)

	// WrongPasswordEvery makes every n-th password request use a wrong
	// password (0: never), to mix failures into a password run.
	WrongPasswordEvery int
	// Sources spreads workers over this many loopback source addresses
	// (127.0.0.1, 127.0.0.2, ...), so a per-IP limit is not the only thing
	// answering. 0 or 1: the system's choice. IPv4 targets only.
	Sources int
	// PID, when set, is sampled from /proc/PID/status during the run.
	PID int
	// Calibrate is how long each machine-limit measurement runs (0: none).
	Calibrate time.Duration
	// Timeout bounds one request (default 30 s).
	Timeout time.Duration
}

// DefaultScope is the scope a scenario asks for unless Config.Scope says
// otherwise: what the demo client is registered for.
func DefaultScope(scenario string) string {
	switch scenario {
	case ClientCredentials:
		return "api:read"
	case Refresh, Password:
		return "openid api:read"
	}
	return ""
}

func (c *Config) check() error {
	if err := CheckLoopback(c.URL); err != nil {
		return err
	}
	if !slices.Contains(Scenarios, c.Scenario) {
		return fmt.Errorf("unknown scenario %q (want one of %s)", c.Scenario, strings.Join(Scenarios, ", "))
	}
	if !usesJWKS(c.Scenario) && c.ClientID == "" {
		return errors.New("the token and introspection scenarios need a client id and secret")
	}
	if c.Scenario == Introspect && c.Token == "" {
		return errors.New("scenario introspect needs a token to introspect")
	}
	if (c.Scenario == Refresh || c.Scenario == Password) && (c.Username == "" || c.Password == "") {
		return fmt.Errorf("scenario %s needs a username and password", c.Scenario)
	}
	switch {
	case c.Concurrency < 1 || c.Concurrency > MaxConcurrency:
		return fmt.Errorf("concurrency %d not in 1..%d", c.Concurrency, MaxConcurrency)
	case c.Duration < 0 || c.Duration > MaxDuration:
		return fmt.Errorf("duration %v not in 0..%v", c.Duration, MaxDuration)
	case c.Requests < 0 || c.Requests > MaxRequests:
		return fmt.Errorf("requests %d not in 0..%d", c.Requests, MaxRequests)
	case c.Duration == 0 && c.Requests == 0:
		return errors.New("give a duration or a request count")
	case c.Sources < 0 || c.Sources > MaxSources:
		return fmt.Errorf("sources %d not in 0..%d", c.Sources, MaxSources)
	}
	return nil
}

// CheckLoopback accepts only http(s) URLs whose host is localhost or a
// loopback address (127.0.0.0/8, ::1).
func CheckLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("target %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("target %q: scheme must be http or https", raw)
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("target %q is not loopback: only 127.0.0.0/8, ::1 and localhost may be loaded", raw)
	}
	return nil
}

// loopbackOnly refuses, at connect time, any connection whose peer is not a
// loopback address (a "localhost" that resolves elsewhere, for instance).
func loopbackOnly(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("refusing to connect to non-loopback %s", address)
	}
	return nil
}

// newClient returns an HTTP client that connects only to loopback, from
// source (nil: the system's choice), follows no redirects and keeps up to
// conns idle connections.
func newClient(source net.IP, conns int, timeout time.Duration) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second, Control: loopbackOnly}
	if source != nil {
		d.LocalAddr = &net.TCPAddr{IP: source}
	}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext:         d.DialContext,
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			IdleConnTimeout:     30 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Result is what a run measured.
type Result struct {
	Config  Config        `json:"-"`
	Elapsed time.Duration `json:"elapsed_ns"`
	Summary
	// TokensPerOK is the mean number of JWTs (access + ID tokens) in a 200
	// token response: each is one RSA signature.
	TokensPerOK float64 `json:"tokens_per_ok,omitempty"`
	Limits      Limits  `json:"limits"`
	Memory      *Memory `json:"memory,omitempty"`
	SetupLogins int     `json:"setup_logins,omitempty"`
	// Inactive counts introspection answers of 200 that said the token was
	// not active: a 200, but not the answer asked for.
	Inactive int `json:"inactive,omitempty"`
}

// Good is the number of responses with the scenario's expected status
// (ExpectedStatus), less introspection answers that said inactive.
func (r *Result) Good() int {
	return r.Status[ExpectedStatus(r.Config.Scenario)] - r.Inactive
}

// GoodPerSecond is Good responses per second.
func (r *Result) GoodPerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Good()) / r.Elapsed.Seconds()
}

// Failures counts every request that did not get the expected answer:
// another status, no response at all, or an inactive introspection.
func (r *Result) Failures() int {
	return r.Completed() - r.Good() + r.ErrorCount()
}

// RPS is completed requests (any status, not errors) per second.
func (r *Result) RPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Completed()) / r.Elapsed.Seconds()
}

// OKPerSecond is 200 responses per second.
func (r *Result) OKPerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Status[http.StatusOK]) / r.Elapsed.Seconds()
}

// SignRatio is RSA signatures delivered per second (200s × tokens each)
// over the machine's RSA-sign limit; 0 when not measured.
func (r *Result) SignRatio() float64 {
	if r.Limits.RSASignsPerSec == 0 {
		return 0
	}
	return r.OKPerSecond() * r.TokensPerOK / r.Limits.RSASignsPerSec
}

// Argon2Ratio is password checks per second (200s and 400s: each ran one
// argon2id verification) over the machine's argon2id limit; 0 when not
// measured or not a password run.
func (r *Result) Argon2Ratio() float64 {
	if r.Limits.Argon2PerSec == 0 || r.Elapsed <= 0 {
		return 0
	}
	checks := float64(r.Status[http.StatusOK] + r.Status[http.StatusBadRequest])
	return checks / r.Elapsed.Seconds() / r.Limits.Argon2PerSec
}

// Run performs one bounded run. The machine limits are measured first (when
// cfg.Calibrate > 0; and again after the run), then, for the refresh scenario, each worker logs in
// once to get its own refresh chain (not counted), then the load runs.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.Scope == "" {
		cfg.Scope = DefaultScope(cfg.Scenario)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	res := &Result{Config: cfg}
	calibrate := cfg.Calibrate > 0 && (cfg.Scenario == ClientCredentials || cfg.Scenario == Refresh || cfg.Scenario == Password)
	if calibrate {
		res.Limits.measure(cfg.Calibrate, cfg.Scenario == Password, false)
	}
	clients, err := makeClients(cfg)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, c := range clients {
			c.CloseIdleConnections()
		}
	}()
	base := strings.TrimRight(cfg.URL, "/")
	g := &gen{cfg: cfg, base: base}

	// Per-worker state for the refresh scenario: one chain each.
	var chains []string
	if cfg.Scenario == Refresh {
		chains, err = g.setupChains(ctx, clients)
		if err != nil {
			return nil, err
		}
		res.SetupLogins = len(chains)
	}
	if cfg.Scenario == JWKS304 {
		if g.etag, err = g.fetchETag(ctx, clients[0]); err != nil {
			return nil, err
		}
	}

	var sampler *Sampler
	if cfg.PID > 0 {
		sampler, err = StartSampler(cfg.PID, 20*time.Millisecond)
		if err != nil {
			return nil, err
		}
	}

	// A run bounded by request count still stops after MaxDuration.
	limit := cfg.Duration
	if limit == 0 {
		limit = MaxDuration
	}
	runCtx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	rec := NewRecorder()
	var issued atomic.Int64
	var tokens, oks, inactive atomic.Int64
	start := make(chan struct{})
	var wg sync.WaitGroup
	for w := range cfg.Concurrency {
		client := clients[w%len(clients)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf bytes.Buffer
			<-start
			for runCtx.Err() == nil {
				n := issued.Add(1)
				if cfg.Requests > 0 && n > int64(cfg.Requests) {
					return
				}
				var chain *string
				if chains != nil {
					chain = &chains[w]
				}
				req := g.request(runCtx, int(n), chain)
				t0 := time.Now()
				resp, err := client.Do(req)
				lat := time.Since(t0)
				if err != nil {
					if runCtx.Err() != nil {
						return // cut off by the end of the run, not a failure
					}
					rec.Error(err)
					continue
				}
				buf.Reset() // one buffer per worker: the generator's own cost stays low (JWKS)
				buf.ReadFrom(io.LimitReader(resp.Body, 1<<20))
				body := buf.Bytes()
				resp.Body.Close()
				rec.Record(resp.StatusCode, lat, HasRetryAfter(resp.Header))
				if resp.StatusCode == http.StatusOK && cfg.Scenario == Introspect {
					if !parseActive(body) {
						inactive.Add(1)
					}
				} else if resp.StatusCode == http.StatusOK && !usesJWKS(cfg.Scenario) {
					tr := parseToken(body)
					oks.Add(1)
					tokens.Add(int64(tr.jwts()))
					if chain != nil && tr.RefreshToken != "" {
						*chain = tr.RefreshToken
					}
				}
			}
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	res.Elapsed = time.Since(t0)
	res.Summary = rec.Summary()
	res.Inactive = int(inactive.Load())
	if n := oks.Load(); n > 0 {
		res.TokensPerOK = float64(tokens.Load()) / float64(n)
	}
	if sampler != nil {
		m := sampler.Stop()
		res.Memory = &m
	}
	if calibrate {
		res.Limits.measure(cfg.Calibrate, cfg.Scenario == Password, true)
	}
	return res, nil
}

func makeClients(cfg Config) ([]*http.Client, error) {
	if cfg.Sources <= 1 {
		return []*http.Client{newClient(nil, cfg.Concurrency, cfg.Timeout)}, nil
	}
	u, _ := url.Parse(cfg.URL)
	if ip := net.ParseIP(u.Hostname()); ip == nil || ip.To4() == nil {
		return nil, errors.New("-sources needs an IPv4 loopback target such as 127.0.0.1")
	}
	per := (cfg.Concurrency + cfg.Sources - 1) / cfg.Sources
	clients := make([]*http.Client, cfg.Sources)
	for i := range clients {
		clients[i] = newClient(net.IPv4(127, 0, 0, byte(i+1)), per, cfg.Timeout)
	}
	return clients, nil
}

// gen builds the requests of a scenario.
type gen struct {
	cfg  Config
	base string
	etag string // JWKS304: the JWKS's ETag
}

func (g *gen) request(ctx context.Context, n int, chain *string) *http.Request {
	switch g.cfg.Scenario {
	case JWKS, JWKS304:
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, g.base+"/.well-known/jwks.json", nil)
		if g.etag != "" {
			req.Header.Set("If-None-Match", g.etag)
		}
		return req
	case Introspect:
		return g.postForm(ctx, "/oauth2/introspect", url.Values{"token": {g.cfg.Token}, "token_type_hint": {"access_token"}})
	}
	form := url.Values{"scope": {g.cfg.Scope}}
	switch g.cfg.Scenario {
	case ClientCredentials:
		form.Set("grant_type", "client_credentials")
	case Password:
		form.Set("grant_type", "password")
		form.Set("username", g.cfg.Username)
		pw := g.cfg.Password
		if e := g.cfg.WrongPasswordEvery; e > 0 && n%e == 0 {
			pw += "-wrong"
		}
		form.Set("password", pw)
	case Refresh:
		form.Set("grant_type", "refresh_token")
		form.Set("refresh_token", *chain)
	}
	return g.tokenRequest(ctx, form)
}

func (g *gen) tokenRequest(ctx context.Context, form url.Values) *http.Request {
	return g.postForm(ctx, "/oauth2/token", form)
}

// postForm is a form POST to path, authenticated as the configured client
// (client_secret_basic).
func (g *gen) postForm(ctx context.Context, path string, form url.Values) *http.Request {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, g.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(g.cfg.ClientID), url.QueryEscape(g.cfg.ClientSecret))
	return req
}

// setupChains logs in once per worker, a few at a time so the hashing
// limiter is not overrun, retrying 429/503 after their Retry-After.
func (g *gen) setupChains(ctx context.Context, clients []*http.Client) ([]string, error) {
	chains := make([]string, g.cfg.Concurrency)
	sctx, cancel := context.WithTimeout(ctx, MaxDuration)
	defer cancel()
	sem := make(chan struct{}, 4)
	errc := make(chan error, len(chains))
	var wg sync.WaitGroup
	for w := range chains {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			client := clients[w%len(clients)]
			for sctx.Err() == nil {
				form := url.Values{"grant_type": {"password"}, "username": {g.cfg.Username}, "password": {g.cfg.Password}, "scope": {g.cfg.Scope}}
				resp, err := client.Do(g.tokenRequest(sctx, form))
				if err != nil {
					errc <- fmt.Errorf("setup login: %w", err)
					return
				}
				body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusOK:
					tr := parseToken(body)
					if tr.RefreshToken == "" {
						errc <- errors.New("setup login: no refresh token (is the client allowed the refresh_token grant?)")
						return
					}
					chains[w] = tr.RefreshToken
					return
				case http.StatusTooManyRequests, http.StatusServiceUnavailable:
					wait := retryAfter(resp.Header)
					select {
					case <-time.After(wait):
					case <-sctx.Done():
					}
				default:
					errc <- fmt.Errorf("setup login: %d %s", resp.StatusCode, strings.TrimSpace(string(body)))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return nil, err
	}
	if err := sctx.Err(); err != nil {
		return nil, fmt.Errorf("setup logins: %w", err)
	}
	return chains, nil
}

// fetchETag GETs the JWKS once and returns its ETag.
func (g *gen) fetchETag(ctx context.Context, client *http.Client) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, g.base+"/.well-known/jwks.json", nil)
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("setup: fetch the JWKS: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	etag := resp.Header.Get("ETag")
	if resp.StatusCode != http.StatusOK || etag == "" {
		return "", fmt.Errorf("setup: JWKS answered %d with ETag %q", resp.StatusCode, etag)
	}
	return etag, nil
}

// parseActive reads the active member of an introspection answer (RFC 7662 §2.2).
func parseActive(body []byte) bool {
	var ir struct {
		Active bool `json:"active"`
	}
	json.Unmarshal(body, &ir)
	return ir.Active
}

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	IDToken      string `json:"id_token"`
	RefreshToken string `json:"refresh_token"`
}

func parseToken(body []byte) tokenResponse {
	var tr tokenResponse
	json.Unmarshal(body, &tr)
	return tr
}

// jwts counts the signed tokens in a response.
func (tr tokenResponse) jwts() int {
	n := 0
	for _, s := range []string{tr.AccessToken, tr.IDToken} {
		if strings.Count(s, ".") == 2 {
			n++
		}
	}
	return n
}

// HasRetryAfter reports whether h carries a usable Retry-After: a
// non-negative number of seconds or an HTTP date (RFC 9110 §10.2.3).
func HasRetryAfter(h http.Header) bool {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return false
	}
	if n, err := strconv.Atoi(v); err == nil {
		return n >= 0
	}
	_, err := http.ParseTime(v)
	return err == nil
}

// retryAfter is the wait a 429/503 asks for, between 100 ms and 5 s.
func retryAfter(h http.Header) time.Duration {
	d := time.Second
	if n, err := strconv.Atoi(strings.TrimSpace(h.Get("Retry-After"))); err == nil {
		d = time.Duration(n) * time.Second
	}
	return min(max(d, 100*time.Millisecond), 5*time.Second)
}

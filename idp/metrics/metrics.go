package metrics

import (
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

// KeyAge is one signing key as the key-age gauge reports it.
type KeyAge struct {
	KID   string
	State string // next, active, retired
	Age   time.Duration
}

// Metrics holds Keyward's Prometheus metrics on a registry of its own, so
// several servers (in tests) never collide on the global one. A nil
// *Metrics records nothing, so code under test need not build one.
type Metrics struct {
	reg           *prometheus.Registry
	httpRequests  *prometheus.CounterVec
	httpDuration  *prometheus.HistogramVec
	tokenRequests *prometheus.CounterVec
	loginFailures *prometheus.CounterVec
	throttled     *prometheus.CounterVec
	refreshReuse  *prometheus.CounterVec
	hashQueue     prometheus.Gauge
	hashWait      prometheus.Histogram
	grants        map[string]bool // the grant_type label values; others are "other"
}

// Refresh-token reuse results, the result label of keyward_refresh_reuse_total.
const (
	ReuseReplayedInWindow = "replayed_in_window" // a retry inside the reuse window got the same successor
	ReuseFamilyRevoked    = "family_revoked"     // any other reuse: the family was revoked
)

// Options names what New needs to know of the layers above: the label
// values they count under, and the signing keys' ages.
type Options struct {
	// KeyAges, when not nil, is called at each scrape for
	// keyward_signing_key_age_seconds.
	KeyAges func() []KeyAge
	// Grants bounds the grant_type label of keyward_token_requests_total:
	// any other grant type a client sends counts as "other".
	Grants []string
	// ThrottleKinds are the kind labels of keyward_throttled_total, created
	// at zero so dashboards show zeroes, not gaps.
	ThrottleKinds []string
}

// New registers Keyward's metrics, the Go runtime's and the process's
// on a new registry.
func New(o Options) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg:    reg,
		grants: make(map[string]bool, len(o.Grants)),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyward_http_requests_total",
			Help: "HTTP requests by route template, method and status code.",
		}, []string{"endpoint", "method", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "keyward_http_request_duration_seconds",
			Help:    "HTTP request latency by route template.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"endpoint"}),
		tokenRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyward_token_requests_total",
			Help: "Token endpoint requests by grant type and outcome (success or the OAuth error code).",
		}, []string{"grant_type", "outcome"}),
		loginFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyward_login_failures_total",
			Help: "Failed password logins by internal reason (never shown to clients).",
		}, []string{"reason"}),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyward_throttled_total",
			Help: "Attempts refused by a brute-force limit, by limit kind.",
		}, []string{"kind"}),
		refreshReuse: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyward_refresh_reuse_total",
			Help: "Presentations of an already-used refresh token, by result.",
		}, []string{"result"}),
		hashQueue: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "keyward_password_hash_queue_depth",
			Help: "Password hashes waiting for a slot under the concurrency limit.",
		}),
		hashWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "keyward_password_hash_wait_seconds",
			Help:    "Time a password hash waited for a slot.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
	}
	reg.MustRegister(m.httpRequests, m.httpDuration, m.tokenRequests, m.loginFailures, m.throttled,
		m.refreshReuse, m.hashQueue, m.hashWait,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if o.KeyAges != nil {
		reg.MustRegister(keyAgeCollector(o.KeyAges))
	}
	for _, g := range o.Grants {
		m.grants[g] = true
	}
	// Pre-create the known series so dashboards show zeroes, not gaps.
	for _, k := range o.ThrottleKinds {
		m.throttled.WithLabelValues(k)
	}
	for _, r := range []string{ReuseReplayedInWindow, ReuseFamilyRevoked} {
		m.refreshReuse.WithLabelValues(r)
	}
	return m
}

// HashQueueFrom replaces the pushed queue-depth gauge with one read from
// depth at each scrape (the hashing limiter knows its own queue).
func (m *Metrics) HashQueueFrom(depth func() int) {
	if m == nil || depth == nil {
		return
	}
	m.reg.Unregister(m.hashQueue)
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "keyward_password_hash_queue_depth",
		Help: "Password hashes waiting for a slot under the concurrency limit.",
	}, func() float64 { return float64(depth()) }))
}

// Registry is the registry the metrics live on, for cmd/keyward to add to.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves every metric in the Prometheus text format, with the
// internal login failure reasons: for the operator's own listener
// (serve --metrics-addr), never the public one (AD-09).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Login failure reasons as PublicHandler shows them.
const (
	PublicReasonFailed    = "invalid_credentials" // every failure the password was checked for, whatever the account
	PublicReasonThrottled = "throttled"           // refused by a limit before the password was checked
)

// PublicHandler serves the metrics as a listener anyone may reach can show
// them (serve --public-metrics, which is unsafe: go_info names the Go
// version, and traffic is visible). keyward_login_failures_total has its
// reason collapsed into PublicReasonFailed and PublicReasonThrottled, so no
// series tells an unknown user from a wrong password, a disabled account or
// any reason added later (TE-11, AD-09); the throttle counts a name whether
// or not an account has it, so "throttled" says nothing about existence.
func (m *Metrics) PublicHandler() http.Handler {
	return promhttp.HandlerFor(prometheus.GathererFunc(m.gatherPublic), promhttp.HandlerOpts{Registry: m.reg})
}

// gatherPublic is the registry's gathering with the login failure reasons
// collapsed (PublicHandler). Gather returns fresh copies, so they are
// changed in place.
func (m *Metrics) gatherPublic() ([]*dto.MetricFamily, error) {
	mfs, err := m.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "keyward_login_failures_total" {
			mf.Metric = collapseLoginFailures(mf.Metric)
		}
	}
	return mfs, err
}

// collapseLoginFailures sums the keyward_login_failures_total series into
// one per public reason; both are always present.
func collapseLoginFailures(in []*dto.Metric) []*dto.Metric {
	sums := map[string]float64{PublicReasonFailed: 0, PublicReasonThrottled: 0}
	for _, mt := range in {
		reason := PublicReasonFailed
		for _, lp := range mt.GetLabel() {
			if lp.GetName() == "reason" && lp.GetValue() == "throttled" {
				reason = PublicReasonThrottled
			}
		}
		sums[reason] += mt.GetCounter().GetValue()
	}
	var out []*dto.Metric
	for _, reason := range []string{PublicReasonFailed, PublicReasonThrottled} {
		name, value, sum := "reason", reason, sums[reason]
		out = append(out, &dto.Metric{
			Label:   []*dto.LabelPair{{Name: &name, Value: &value}},
			Counter: &dto.Counter{Value: &sum},
		})
	}
	return out
}

// TokenRequest counts a token request; outcome is "success" or the OAuth
// error code answered.
func (m *Metrics) TokenRequest(grantType, outcome string) {
	if m == nil {
		return
	}
	if !m.grants[grantType] {
		grantType = "other"
	}
	m.tokenRequests.WithLabelValues(grantType, truncate(outcome, 32)).Inc()
}

// LoginFailure counts a failed login by internal reason (bad_password,
// unknown_user, disabled, bad_hash, wrong_pepper, throttled). Only Handler
// shows the reasons; PublicHandler collapses them.
func (m *Metrics) LoginFailure(reason string) {
	if m == nil {
		return
	}
	m.loginFailures.WithLabelValues(truncate(reason, 32)).Inc()
}

// Throttled counts an attempt a limit refused (a Kind constant).
func (m *Metrics) Throttled(kind string) {
	if m == nil {
		return
	}
	m.throttled.WithLabelValues(truncate(kind, 32)).Inc()
}

// RefreshReuse counts a reused refresh token (ReuseReplayedInWindow or
// ReuseFamilyRevoked).
func (m *Metrics) RefreshReuse(result string) {
	if m == nil {
		return
	}
	m.refreshReuse.WithLabelValues(truncate(result, 32)).Inc()
}

// HashQueued moves the password-hash queue depth by delta (+1 on entering
// the wait, -1 on leaving it).
func (m *Metrics) HashQueued(delta int) {
	if m == nil {
		return
	}
	m.hashQueue.Add(float64(delta))
}

// HashWaited observes how long a password hash waited for its slot.
func (m *Metrics) HashWaited(d time.Duration) {
	if m == nil {
		return
	}
	m.hashWait.Observe(d.Seconds())
}

// Middleware counts requests and their latency by route template (never the
// raw path, so labels stay few). Install it with mux.Router.Use, so the
// matched route is known; Unmatched covers requests no route took.
func (m *Metrics) Middleware(next http.Handler) http.Handler {
	return m.instrument(func(r *http.Request) string {
		if rt := mux.CurrentRoute(r); rt != nil {
			if tpl, err := rt.GetPathTemplate(); err == nil {
				return tpl
			}
		}
		return "unmatched"
	}, next)
}

// Unmatched counts requests under the endpoint "unmatched"; wrap the
// router's NotFound and MethodNotAllowed handlers with it.
func (m *Metrics) Unmatched(next http.Handler) http.Handler {
	return m.instrument(func(*http.Request) string { return "unmatched" }, next)
}

// Endpoint counts requests under the fixed endpoint label name, for
// answers given before routing (the HTTPS refusal).
func (m *Metrics) Endpoint(name string, next http.Handler) http.Handler {
	return m.instrument(func(*http.Request) string { return name }, next)
}

func (m *Metrics) instrument(endpoint func(*http.Request) string, next http.Handler) http.Handler {
	if m == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		ep := endpoint(r)
		defer func() {
			code := sw.code
			if v := recover(); v != nil {
				code = http.StatusInternalServerError
				defer panic(v)
			}
			if code == 0 {
				code = http.StatusOK
			}
			m.httpRequests.WithLabelValues(ep, method(r.Method), strconv.Itoa(code)).Inc()
			m.httpDuration.WithLabelValues(ep).Observe(time.Since(start).Seconds())
		}()
		next.ServeHTTP(sw, r)
	})
}

// method bounds the method label to the standard methods.
func method(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}

// statusWriter remembers the status code written.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// keyAgeCollector reports keyward_signing_key_age_seconds{state,kid} from a
// callback at scrape time, so keys that are gone leave no stale series.
type keyAgeCollector func() []KeyAge

var keyAgeDesc = prometheus.NewDesc("keyward_signing_key_age_seconds",
	"Age of each published signing key, by state and kid.", []string{"state", "kid"}, nil)

func (c keyAgeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- keyAgeDesc }

func (c keyAgeCollector) Collect(ch chan<- prometheus.Metric) {
	for _, k := range c() {
		ch <- prometheus.MustNewConstMetric(keyAgeDesc, prometheus.GaugeValue, k.Age.Seconds(), k.State, k.KID)
	}
}

// truncate cuts a label value to at most n bytes at a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

package load

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Recorder collects the outcome of requests; it is safe for concurrent use.
type Recorder struct {
	mu        sync.Mutex
	latencies []time.Duration
	status    map[int]int
	retry     map[int]int
	errs      map[string]int
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder {
	return &Recorder{status: map[int]int{}, retry: map[int]int{}, errs: map[string]int{}}
}

// Record notes one response: its status, how long it took, and whether it
// carried a usable Retry-After.
func (r *Recorder) Record(status int, latency time.Duration, hasRetryAfter bool) {
	r.mu.Lock()
	r.latencies = append(r.latencies, latency)
	r.status[status]++
	if hasRetryAfter {
		r.retry[status]++
	}
	r.mu.Unlock()
}

// Error notes a request that got no response, by a short class of the error.
func (r *Recorder) Error(err error) {
	r.mu.Lock()
	r.errs[ErrorClass(err)]++
	r.mu.Unlock()
}

// ErrorClass names a transport error briefly: "connection refused",
// "connection reset", "timeout", "EOF", else the error text.
func ErrorClass(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case strings.HasSuffix(err.Error(), "EOF"):
		return "EOF"
	}
	return err.Error()
}

// Summary is what a Recorder saw.
type Summary struct {
	Status         map[int]int    `json:"status"`           // responses by status code
	WithRetryAfter map[int]int    `json:"with_retry_after"` // of those, how many carried Retry-After
	Errors         map[string]int `json:"errors,omitempty"` // requests without a response, by class
	P50            time.Duration  `json:"p50_ns"`
	P95            time.Duration  `json:"p95_ns"`
	P99            time.Duration  `json:"p99_ns"`
	Max            time.Duration  `json:"max_ns"`
}

// Summary returns counts and latency percentiles of everything recorded.
func (r *Recorder) Summary() Summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	lat := slices.Clone(r.latencies)
	slices.Sort(lat)
	s := Summary{
		Status: clone(r.status), WithRetryAfter: clone(r.retry), Errors: clone(r.errs),
		P50: Percentile(lat, 50), P95: Percentile(lat, 95), P99: Percentile(lat, 99),
	}
	if len(lat) > 0 {
		s.Max = lat[len(lat)-1]
	}
	return s
}

func clone[K comparable](m map[K]int) map[K]int {
	c := make(map[K]int, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// Completed is the number of requests that got a response.
func (s Summary) Completed() int {
	n := 0
	for _, v := range s.Status {
		n += v
	}
	return n
}

// ErrorCount is the number of requests that got no response.
func (s Summary) ErrorCount() int {
	n := 0
	for _, v := range s.Errors {
		n += v
	}
	return n
}

// Histogram renders the status counts as "200: 12, 429: 3 (3 with Retry-After)".
func (s Summary) Histogram() string {
	codes := make([]int, 0, len(s.Status))
	for c := range s.Status {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	var parts []string
	for _, c := range codes {
		p := fmt.Sprintf("%d: %d", c, s.Status[c])
		if c == http.StatusTooManyRequests || c == http.StatusServiceUnavailable || s.WithRetryAfter[c] > 0 {
			p += fmt.Sprintf(" (%d with Retry-After)", s.WithRetryAfter[c])
		}
		parts = append(parts, p)
	}
	errs := make([]string, 0, len(s.Errors))
	for e := range s.Errors {
		errs = append(errs, e)
	}
	sort.Strings(errs)
	for _, e := range errs {
		parts = append(parts, fmt.Sprintf("error %q: %d", e, s.Errors[e]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// Percentile returns the q-th percentile (0 < q ≤ 100) of sorted by the
// nearest-rank method: the smallest value at least q % of the values are
// less than or equal to. It returns 0 for no values.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(q / 100 * float64(n)))
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}

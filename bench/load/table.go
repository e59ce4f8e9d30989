package load

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Target is what the issue asks of one row; a zero field asks nothing.
type Target struct {
	MinRatio   float64       `json:"min_ratio,omitempty"`      // good answers/s over the limit
	MinRPS     float64       `json:"min_rps,omitempty"`        // good answers/s
	MaxP99     time.Duration `json:"max_p99_ns,omitempty"`     // 99th percentile latency
	MaxLatency time.Duration `json:"max_latency_ns,omitempty"` // slowest request
}

// String renders t as "≥0.60 · p99≤25ms · max≤1s", or "—" when it asks nothing.
func (t Target) String() string {
	var p []string
	if t.MinRatio > 0 {
		p = append(p, "≥"+strconv.FormatFloat(t.MinRatio, 'f', 2, 64))
	}
	if t.MinRPS > 0 {
		p = append(p, "≥"+thousands(t.MinRPS)+"/s")
	}
	if t.MaxP99 > 0 {
		p = append(p, "p99≤"+t.MaxP99.String())
	}
	if t.MaxLatency > 0 {
		p = append(p, "max≤"+t.MaxLatency.String())
	}
	if len(p) == 0 {
		return "—"
	}
	return strings.Join(p, " · ")
}

// Row is one line of the bench/run table: one scenario on one backend at
// one concurrency.
type Row struct {
	Scenario string `json:"scenario"`
	Backend  string `json:"backend"` // sqlite, postgres, or "—" for in-process scenarios
	Conns    int    `json:"conns"`
	// NA, when set, says why the row was not measured ("flag missing").
	NA string `json:"na,omitempty"`

	RPS         float64       `json:"rps"` // answers with the expected status per second
	P50         time.Duration `json:"p50_ns"`
	P99         time.Duration `json:"p99_ns"`
	Max         time.Duration `json:"max_ns"`
	Errors      int           `json:"errors"`                 // any other status, or no answer
	ErrorDetail string        `json:"error_detail,omitempty"` // what the errors were

	Limit     string  `json:"limit,omitempty"` // what RPS is compared against
	LimitRate float64 `json:"limit_rate,omitempty"`
	Target    Target  `json:"target"`
}

// FromResult fills the measured fields of r from res.
func (r *Row) FromResult(res *Result) {
	r.RPS = res.GoodPerSecond()
	r.P50, r.P99, r.Max = res.P50, res.P99, res.Max
	r.Errors = res.Failures()
	if r.Errors > 0 {
		r.ErrorDetail = res.Histogram()
		if res.Inactive > 0 {
			r.ErrorDetail += fmt.Sprintf(", inactive: %d", res.Inactive)
		}
	}
}

// Ratio is RPS over the limit's rate; 0 without a limit.
func (r Row) Ratio() float64 {
	if r.LimitRate <= 0 {
		return 0
	}
	return r.RPS / r.LimitRate
}

// Misses lists the parts of the target r does not meet: "ratio", "req/s",
// "p99", "max", "errors" (a row with errors meets no target).
func (r Row) Misses() []string {
	var m []string
	t := r.Target
	if t.MinRatio > 0 && r.Ratio() < t.MinRatio {
		m = append(m, "ratio")
	}
	if t.MinRPS > 0 && r.RPS < t.MinRPS {
		m = append(m, "req/s")
	}
	if t.MaxP99 > 0 && r.P99 > t.MaxP99 {
		m = append(m, "p99")
	}
	if t.MaxLatency > 0 && r.Max > t.MaxLatency {
		m = append(m, "max")
	}
	if r.Errors > 0 && t != (Target{}) {
		m = append(m, "errors")
	}
	return m
}

// Verdict is "pass", "miss (p99, max)", "—" without a target, or
// "n/a (why)" for a row not measured.
func (r Row) Verdict() string {
	switch {
	case r.NA != "":
		return "n/a (" + r.NA + ")"
	case r.Target == (Target{}):
		return "—"
	}
	if m := r.Misses(); len(m) > 0 {
		return "miss (" + strings.Join(m, ", ") + ")"
	}
	return "pass"
}

// LimitFigure is one limit measured on the server's core, before and after
// the scenarios; Rate is the one ratios use (bench/run: the higher, as other
// work on a core only ever slows a measure).
type LimitFigure struct {
	Name   string  `json:"name"`
	Rate   float64 `json:"rate"`
	Before float64 `json:"before"`
	After  float64 `json:"after,omitempty"`
	Err    string  `json:"error,omitempty"`
}

// MemoryFigure is the server's resident memory on one backend and setup.
type MemoryFigure struct {
	Backend string `json:"backend"`
	Server  string `json:"server"`   // the server's flags, e.g. "--signer go"
	Idle    int64  `json:"idle_rss"` // VmRSS after start, before any load
	Peak    int64  `json:"peak_rss"` // VmHWM when the server stopped
}

// Report is everything one bench/run measured.
type Report struct {
	Date     time.Time      `json:"date"`
	Machine  string         `json:"machine"`
	Duration time.Duration  `json:"scenario_duration_ns"`
	Limits   []LimitFigure  `json:"limits"`
	Rows     []Row          `json:"rows"`
	Memory   []MemoryFigure `json:"memory"`
	// IdleRSSTarget is the bound on idle RSS (bytes).
	IdleRSSTarget int64    `json:"idle_rss_target"`
	Notes         []string `json:"notes,omitempty"`
}

var header = []string{"scenario", "backend", "conns", "req/s", "p50", "p99", "max", "errors", "limit", "ratio", "target", "result"}

// cells renders r as the table's columns.
func (r Row) cells() []string {
	if r.NA != "" {
		return []string{r.Scenario, r.Backend, strconv.Itoa(r.Conns), "—", "—", "—", "—", "—", r.limitCell(), "—", r.Target.String(), r.Verdict()}
	}
	ratio := "—"
	if r.LimitRate > 0 {
		ratio = strconv.FormatFloat(r.Ratio(), 'f', 2, 64)
	}
	errs := strconv.Itoa(r.Errors)
	if r.Errors > 0 {
		errs += " (" + r.ErrorDetail + ")"
	}
	return []string{r.Scenario, r.Backend, strconv.Itoa(r.Conns), thousands(r.RPS), Latency(r.P50), Latency(r.P99), Latency(r.Max),
		errs, r.limitCell(), ratio, r.Target.String(), r.Verdict()}
}

func (r Row) limitCell() string {
	switch {
	case r.Limit == "":
		return "—"
	case r.LimitRate > 0:
		return r.Limit + " " + thousands(r.LimitRate) + "/s"
	}
	return r.Limit
}

// WriteText prints the report as aligned columns for a terminal.
func (rep *Report) WriteText(w io.Writer) {
	fmt.Fprintf(w, "bench/run %s, %s, %v per scenario\n\n", rep.Date.UTC().Format("2006-01-02 15:04 MST"), rep.Machine, rep.Duration)
	fmt.Fprintln(w, "limits on the server's core (before / after the scenarios; ratios use the higher):")
	for _, l := range rep.Limits {
		fmt.Fprintf(w, "  %s\n", l.text())
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rep.Rows {
		fmt.Fprintln(tw, strings.Join(r.cells(), "\t"))
	}
	tw.Flush()
	rep.writeMemory(w, "  ")
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

// WriteMarkdown prints the report as a markdown table, for docs/performance.md.
func (rep *Report) WriteMarkdown(w io.Writer) {
	fmt.Fprintf(w, "`bench/run` of %s (%s, %v per scenario).\n\n", rep.Date.UTC().Format("2006-01-02 15:04 MST"), rep.Machine, rep.Duration)
	fmt.Fprintln(w, "Limits on the server's core (before / after the scenarios; ratios use the higher):")
	fmt.Fprintln(w)
	for _, l := range rep.Limits {
		fmt.Fprintf(w, "- %s\n", l.text())
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| "+strings.Join(header, " | ")+" |")
	fmt.Fprintln(w, "|"+strings.Repeat("---|", len(header)))
	for _, r := range rep.Rows {
		c := r.cells()
		for i := range c {
			c[i] = strings.ReplaceAll(c[i], "|", `\|`)
		}
		fmt.Fprintln(w, "| "+strings.Join(c, " | ")+" |")
	}
	rep.writeMemory(w, "- ")
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "\nNote: %s\n", n)
	}
}

func (rep *Report) writeMemory(w io.Writer, bullet string) {
	if len(rep.Memory) == 0 {
		return
	}
	fmt.Fprintf(w, "\nserver memory (idle RSS target < %s):\n", MiB(rep.IdleRSSTarget))
	if bullet == "- " {
		fmt.Fprintln(w)
	}
	for _, m := range rep.Memory {
		verdict := "pass"
		if rep.IdleRSSTarget > 0 && m.Idle >= rep.IdleRSSTarget {
			verdict = "miss"
		}
		fmt.Fprintf(w, "%s%s, %s: idle %s (%s), peak %s\n", bullet, m.Backend, m.Server, MiB(m.Idle), verdict, MiB(m.Peak))
	}
}

func (l LimitFigure) text() string {
	if l.Err != "" {
		return fmt.Sprintf("%s: not measured (%s)", l.Name, l.Err)
	}
	if l.After > 0 {
		return fmt.Sprintf("%s: %s/s (%s / %s)", l.Name, thousands(l.Rate), thousands(l.Before), thousands(l.After))
	}
	return fmt.Sprintf("%s: %s/s", l.Name, thousands(l.Rate))
}

// Latency formats d with three significant digits: "840µs", "12.3ms", "1.23s".
func Latency(d time.Duration) string {
	switch {
	case d <= 0:
		return "0"
	case d >= time.Second:
		return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + "s"
	case d >= 100*time.Millisecond:
		return strconv.FormatFloat(float64(d)/1e6, 'f', 0, 64) + "ms"
	case d >= 10*time.Millisecond:
		return strconv.FormatFloat(float64(d)/1e6, 'f', 1, 64) + "ms"
	case d >= time.Millisecond:
		return strconv.FormatFloat(float64(d)/1e6, 'f', 2, 64) + "ms"
	}
	return strconv.FormatFloat(float64(d)/1e3, 'f', 0, 64) + "µs"
}

// thousands formats a rate: one decimal under 100, else a whole number with
// comma separators ("37.4", "2,412").
func thousands(v float64) string {
	if v < 100 {
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// Command run measures every Keyward scenario against this machine's own
// limits in one go, and prints one table:
//
//	go run ./bench/run                  # about 9 min: 10 s per scenario
//	go run ./bench/run -quick           # 2–3 min, to check the tool
//	go run ./bench/run -markdown table.md -json run.json
//	go run ./bench/run -render run.json -markdown table.md  # a saved run
//
// It builds keyward and bench/loadgen once, starts the server pinned to one
// core (-server-core, default 0; on PostgreSQL a private cluster pinned to
// the same core, initdb'd into a temporary directory and deleted at the end)
// and runs the load generator pinned to another (-load-core, default 1).
// On the server's core it measures, before and after the scenarios (each
// ratio is to the higher of the two), Go's
// RSA-2048, ES256 and EdDSA signatures per second, OpenSSL's RSA-2048
// (openssl speed), argon2id verifications at Keyward's defaults and Go's
// RSA-2048 verifications; each row is compared with the limit that bounds
// it, and with issue 18's target. Scenarios whose serve flag (--signer,
// --key-algorithm) this keyward lacks are reported n/a. It must run as root
// (runuser starts PostgreSQL as the postgres user); everything it loads is
// on loopback.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/keyward/keyward/bench/load"
)

type options struct {
	duration, limitTime  time.Duration
	conns                []int
	backends             []string
	serverCore, loadCore int
	markdown, jsonOut    string
	quick                bool
	variants             []string // the server setups to run; all when empty
	keepAutogroup        bool     // leave the kernel's autogroup scheduling on (sched.go)
}

func main() {
	var o options
	var conns, backends, render, only string
	flag.BoolVar(&o.quick, "quick", false, "a short run to check the tool: 2 s per scenario, 1 s per limit")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "how long each scenario runs")
	flag.DurationVar(&o.limitTime, "limit-time", 3*time.Second, "how long each limit is measured (before and after)")
	flag.StringVar(&conns, "conns", "8,32", "concurrent connections, comma-separated")
	flag.StringVar(&backends, "backends", "sqlite,postgres", "backends, comma-separated: sqlite, postgres")
	flag.IntVar(&o.serverCore, "server-core", 0, "CPU core of the server, its PostgreSQL and the limits")
	flag.IntVar(&o.loadCore, "load-core", 1, "CPU core of the load generator")
	flag.StringVar(&o.markdown, "markdown", "", "also write the table as markdown to this file")
	flag.StringVar(&o.jsonOut, "json", "", "also write the report as JSON to this file")
	flag.StringVar(&only, "variants", "", "run only these server setups, comma-separated: default, go, openssl, es256, eddsa (the limits are still measured)")
	flag.BoolVar(&o.keepAutogroup, "keep-autogroup", false, "leave the kernel's autogroup scheduling on (it is turned off for the run, as root, when on: each PostgreSQL backend would weigh as much as keyward)")
	flag.StringVar(&render, "render", "", "measure nothing: print the report of an earlier -json file (and write -markdown)")
	flag.Parse()
	if o.quick {
		o.duration, o.limitTime = 2*time.Second, time.Second
	}
	for _, c := range strings.Split(conns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n < 1 || n > load.MaxConcurrency {
			fatal(fmt.Errorf("-conns: %q", c))
		}
		o.conns = append(o.conns, n)
	}
	for _, b := range strings.Split(backends, ",") {
		b = strings.TrimSpace(b)
		if b != "sqlite" && b != "postgres" {
			fatal(fmt.Errorf("-backends: %q (want sqlite, postgres)", b))
		}
		o.backends = append(o.backends, b)
	}
	if only != "" {
		names := variantNames()
		for _, v := range strings.Split(only, ",") {
			v = strings.TrimSpace(v)
			if !slices.Contains(names, v) {
				fatal(fmt.Errorf("-variants: %q (want %s)", v, strings.Join(names, ", ")))
			}
			o.variants = append(o.variants, v)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var rep *load.Report
	var err error
	if render != "" {
		rep, err = readReport(render)
		o.jsonOut = ""
	} else {
		rep, err = run(ctx, o)
	}
	if rep != nil {
		rep.WriteText(os.Stdout)
		if o.markdown != "" {
			var b bytes.Buffer
			rep.WriteMarkdown(&b)
			if werr := os.WriteFile(o.markdown, b.Bytes(), 0o644); werr != nil {
				err = errors.Join(err, werr)
			}
		}
		if o.jsonOut != "" {
			b, _ := json.MarshalIndent(rep, "", "  ")
			if werr := os.WriteFile(o.jsonOut, append(b, '\n'), 0o644); werr != nil {
				err = errors.Join(err, werr)
			}
		}
	}
	if err != nil {
		fatal(err)
	}
}

// readReport reads a report that -json wrote.
func readReport(path string) (*load.Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rep load.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &rep, nil
}

// loadAverage is the first figure of /proc/loadavg, "?" if unreadable.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "?"
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench/run:", err)
	os.Exit(1)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// bench holds what one run has built and measured.
type bench struct {
	o            options
	dir          string
	keyward, gen string // binaries
	kek          string
	limits       map[string]*load.LimitFigure
	rep          *load.Report
}

func run(ctx context.Context, o options) (*load.Report, error) {
	if runtime.NumCPU() < 2 || o.serverCore == o.loadCore {
		return nil, errors.New("needs two distinct cores for the server and the load generator")
	}
	dir, err := os.MkdirTemp("", "keyward-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	b := &bench{o: o, dir: dir, keyward: filepath.Join(dir, "keyward"), gen: filepath.Join(dir, "loadgen"),
		kek: filepath.Join(dir, "kek"), limits: map[string]*load.LimitFigure{}}
	logf("building keyward and loadgen")
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil || !strings.HasSuffix(strings.TrimSpace(string(gomod)), "go.mod") {
		return nil, fmt.Errorf("run inside the keyward module (go env GOMOD: %s)", gomod)
	}
	for _, p := range [][2]string{{b.keyward, "./cmd/keyward"}, {b.gen, "./bench/loadgen"}} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", p[0], p[1])
		cmd.Dir = filepath.Dir(strings.TrimSpace(string(gomod)))
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build %s: %w\n%s", p[1], err, out)
		}
	}
	kek := make([]byte, 32)
	rand.Read(kek)
	if err := os.WriteFile(b.kek, kek, 0o600); err != nil {
		return nil, err
	}
	help, _ := exec.CommandContext(ctx, b.keyward, "serve", "--help").CombinedOutput()
	hasSigner, hasKeyAlg := serveFlags(string(help))
	vs := variants(hasSigner, hasKeyAlg)
	if len(o.variants) > 0 {
		vs = slices.DeleteFunc(vs, func(v variant) bool { return !slices.Contains(o.variants, v.name) })
	}

	b.rep = &load.Report{Date: time.Now(), Machine: machine(o), Duration: o.duration, IdleRSSTarget: 30 << 20}
	loadBefore := loadAverage()
	defer func() {
		b.rep.Notes = append(b.rep.Notes, fmt.Sprintf("load average (1 min) %s at the start, %s at the end: above 0 means other work shared the cores", loadBefore, loadAverage()))
	}()
	restoreAutogroup, note := withoutAutogroup(autogroupSwitch, o.keepAutogroup)
	defer restoreAutogroup()
	if note != "" {
		b.rep.Notes = append(b.rep.Notes, note)
	}
	if !hasSigner || !hasKeyAlg {
		b.rep.Notes = append(b.rep.Notes, fmt.Sprintf("this keyward's serve has --signer: %v, --key-algorithm: %v; rows needing a missing flag are n/a", hasSigner, hasKeyAlg))
	}
	rows := planRows(vs, o.backends, o.conns)
	vrow := verifyRow()

	b.measureLimits(ctx, false)
	var runErr error
	for _, backend := range o.backends {
		if err := b.runBackend(ctx, backend, vs, rows, &vrow); err != nil {
			runErr = errors.Join(runErr, fmt.Errorf("%s: %w", backend, err))
			logf("%s: %v", backend, err)
		}
		if ctx.Err() != nil {
			break
		}
	}
	if ctx.Err() == nil {
		b.measureLimits(ctx, true)
	} else {
		for i := range rows {
			if rows[i].NA == "" && rows[i].P50 == 0 {
				rows[i].NA = "interrupted"
			}
		}
		if vrow.NA == "" && vrow.P50 == 0 {
			vrow.NA = "interrupted"
		}
	}
	for i := range rows {
		rows[i].LimitRate = b.limitRate(rows[i].Limit)
	}
	vrow.LimitRate = b.limitRate(vrow.Limit)
	b.rep.Rows = append(rows, vrow)
	for _, l := range []string{limitGoRSA, limitOpenSSL, limitES256, limitEdDSA, limitArgon2, limitGoVerify} {
		if f := b.limits[l]; f != nil {
			b.rep.Limits = append(b.rep.Limits, *f)
		}
	}
	return b.rep, errors.Join(runErr, ctx.Err())
}

func machine(o options) string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("%d × %s, %s, server on core %d, load generator on core %d", runtime.NumCPU(), model, runtime.Version(), o.serverCore, o.loadCore)
}

func (b *bench) limitRate(name string) float64 {
	if f := b.limits[name]; f != nil {
		return f.Rate
	}
	return 0
}

// measureLimits measures every limit on the server core, each in its own
// pinned process; after says whether this is the second measure.
func (b *bench) measureLimits(ctx context.Context, after bool) {
	logf("measuring the limits on core %d (after: %v)", b.o.serverCore, after)
	secs := int(max(b.o.limitTime.Round(time.Second), time.Second) / time.Second)
	note := func(name string, rate float64, err error) {
		f := b.limits[name]
		if f == nil {
			f = &load.LimitFigure{Name: name}
			b.limits[name] = f
		}
		switch {
		case err != nil:
			f.Err = err.Error()
		case !after:
			f.Before, f.Rate = rate, rate
		case f.Before > 0:
			// Other work on the core only ever slows a measure, so the
			// higher of the two is the nearer to what the core can do.
			f.After, f.Rate = rate, max(f.Before, rate)
		default:
			f.After, f.Rate = rate, rate
		}
	}
	argv := load.OpenSSLSpeedArgs(b.o.serverCore, secs)
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	var sign float64
	if err == nil {
		sign, _, err = load.ParseOpenSSLSpeed(out)
	}
	note(limitOpenSSL, sign, err)
	for _, m := range limitMeasures {
		argv := load.Pinned(b.o.serverCore, b.gen, "-measure", m.measure, "-duration", b.o.limitTime.String())
		out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).Output()
		var r struct{ Rate float64 }
		if err == nil {
			err = json.Unmarshal(out, &r)
		}
		note(m.name, r.Rate, err)
	}
}

// runBackend starts the backend's database (a private cluster for
// PostgreSQL), then each variant's server in turn, and fills its rows.
func (b *bench) runBackend(ctx context.Context, backend string, vs []variant, rows []load.Row, vrow *load.Row) error {
	var pg *cluster
	if backend == "postgres" {
		logf("starting a private PostgreSQL cluster on core %d", b.o.serverCore)
		var err error
		if pg, err = startCluster(ctx, b.o.serverCore); err != nil {
			return err
		}
		defer pg.stop()
	}
	var errs error
	for _, v := range vs {
		if v.needs != "" {
			continue
		}
		if err := b.runVariant(ctx, backend, pg, v, rows, vrow); err != nil {
			errs = errors.Join(errs, fmt.Errorf("%s server: %w", v.name, err))
			logf("%s %s: %v", backend, v.name, err)
			if ctx.Err() == nil {
				markUnmeasured(rows, backend, v, err)
			}
		}
		if ctx.Err() != nil {
			return errs
		}
	}
	return errs
}

func (b *bench) runVariant(ctx context.Context, backend string, pg *cluster, v variant, rows []load.Row, vrow *load.Row) error {
	database := "sqlite:" + filepath.Join(b.dir, "keyward-"+v.name+".db")
	if pg != nil {
		var err error
		if database, err = pg.createDB(ctx, "keyward_"+v.name); err != nil {
			return err
		}
	}
	logf("%s: starting keyward %s", backend, strings.Join(v.flags, " "))
	s, err := startServer(ctx, b.keyward, b.dir, database, b.kek, b.o.serverCore, v.flags)
	if err != nil {
		return err
	}
	defer s.stop()
	time.Sleep(time.Second) // let start-up settle before the idle figure
	idle, _, err := load.ProcStatus(s.pid())
	if err != nil {
		return err
	}
	token, err := s.token(ctx)
	if err != nil {
		return err
	}
	var errs error
	for _, sc := range v.scens {
		for i := range rows {
			r := &rows[i]
			if r.Backend != backend || r.Scenario != sc.label {
				continue
			}
			if ctx.Err() != nil {
				break
			}
			logf("%s: %s at %d connections", backend, sc.label, r.Conns)
			n0, d0, werr := s.poolWaits(ctx)
			res, err := b.load(ctx, s, sc.load, r.Conns, token)
			if n1, d1, werr1 := s.poolWaits(ctx); werr == nil && werr1 == nil {
				logf("%s: %s at %d connections: %.0f waits for a pooled connection, %v in all",
					backend, sc.label, r.Conns, n1-n0, (d1 - d0).Round(time.Millisecond))
			}
			if err != nil && ctx.Err() != nil {
				r.NA = "interrupted"
				break
			}
			if err != nil {
				r.NA = "failed: " + firstLine(err.Error())
				errs = errors.Join(errs, fmt.Errorf("%s at %d: %w", sc.label, r.Conns, err))
				continue
			}
			r.FromResult(res)
		}
	}
	if v.name == "go" && vrow.P50 == 0 && vrow.NA == "" && ctx.Err() == nil {
		logf("verify in process on core %d", b.o.serverCore)
		res, err := b.load(ctx, s, load.Verify, 1, token)
		if err != nil {
			vrow.NA = "failed: " + firstLine(err.Error())
		} else {
			vrow.FromResult(res)
		}
	}
	_, hwm, err := load.ProcStatus(s.pid())
	if err != nil {
		return errors.Join(errs, err)
	}
	server := v.name + " server"
	if len(v.flags) > 0 {
		server += " (" + strings.Join(v.flags, " ") + ")"
	}
	b.rep.Memory = append(b.rep.Memory, load.MemoryFigure{Backend: backend, Server: server, Idle: idle, Peak: hwm})
	return errs
}

// load runs one scenario through loadgen pinned to the load core (verify:
// to the server core, where a resource server would validate), secrets in
// its environment rather than on its command line.
func (b *bench) load(ctx context.Context, s *server, scenario string, conns int, token string) (*load.Result, error) {
	args := []string{b.gen, "-json", "-url", s.url, "-scenario", scenario, "-concurrency", strconv.Itoa(conns),
		"-duration", b.o.duration.String(), "-calibrate", "0"}
	env := []string{"KEYWARD_PASSWORD=" + s.password, "KEYWARD_CLIENT_SECRET=" + s.secret}
	switch scenario {
	case load.Password, load.Refresh, load.ClientCredentials:
		args = append(args, "-scope", "api:read") // one signature per answer
	case load.Introspect:
		args = append(args, "-client-id", "bench-rs")
		env = []string{"KEYWARD_CLIENT_SECRET=" + s.rsSecret}
	}
	if slices.Contains([]string{load.Introspect, load.Verify}, scenario) {
		env = append(env, "KEYWARD_TOKEN="+token)
	}
	core := b.o.loadCore
	if scenario == load.Verify {
		core = b.o.serverCore
	}
	argv := load.Pinned(core, args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			err = fmt.Errorf("%w: %s", err, msg)
		}
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	var res load.Result
	if err := json.Unmarshal(out, &res); err != nil || res.Elapsed <= 0 {
		return nil, errors.New("loadgen printed no result")
	}
	res.Config.Scenario = scenario
	return &res, nil
}

// markUnmeasured marks the rows of v on backend that got no figures (its
// server did not start, say) as failed, so they do not read as 0 req/s.
func markUnmeasured(rows []load.Row, backend string, v variant, err error) {
	for i := range rows {
		r := &rows[i]
		if r.Backend != backend || r.NA != "" || r.P50 != 0 {
			continue
		}
		for _, sc := range v.scens {
			if r.Scenario == sc.label {
				r.NA = "failed: " + firstLine(err.Error())
			}
		}
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

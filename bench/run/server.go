package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/keyward/keyward/bench/load"
)

// server is one keyward serve process, pinned to the server core.
type server struct {
	cmd      *exec.Cmd
	url      string
	metrics  string // its /metrics, on a listener of its own
	logPath  string
	secret   string // the demo client's
	password string // the demo user's
	rsSecret string // the resource server client's (introspection)
	done     chan error
}

var demoCreds = regexp.MustCompile(`client_secret: (\S+)[\s\S]*password:\s+(\S+)`)

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startServer starts keyward serve --demo on database with extra flags,
// pinned to core, waits for /readyz and registers a resource-server client
// that may introspect the demo client's tokens (audience api).
func startServer(ctx context.Context, bin, dir, database, kek string, core int, extra []string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	mport, err := freePort()
	if err != nil {
		return nil, err
	}
	u := "http://127.0.0.1:" + strconv.Itoa(port)
	args := []string{bin, "serve", "--demo", "--database", database, "--key-encryption-key-file", kek,
		"--addr", "127.0.0.1:" + strconv.Itoa(port), "--issuer", u, "--metrics-addr", "127.0.0.1:" + strconv.Itoa(mport),
		// Introspection is rate-limited per client (50/s by default); the
		// benchmark measures the endpoint, not the limiter.
		"--introspect-revoke-rate", "1000000", "--introspect-revoke-burst", "1000000"}
	args = append(args, extra...)
	argv := load.Pinned(core, args...)
	logPath := filepath.Join(dir, fmt.Sprintf("keyward-%d.log", port))
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start keyward: %w", err)
	}
	s := &server{cmd: cmd, url: u, metrics: "http://127.0.0.1:" + strconv.Itoa(mport) + "/metrics", logPath: logPath, done: make(chan error, 1)}
	go func() { s.done <- cmd.Wait() }()
	if err := s.waitReady(ctx, 60*time.Second); err != nil {
		s.stop()
		return nil, err
	}
	b, _ := os.ReadFile(logPath)
	m := demoCreds.FindSubmatch(b)
	if m == nil {
		s.stop()
		return nil, fmt.Errorf("keyward serve --demo printed no credentials (see %s)", logPath)
	}
	s.secret, s.password = string(m[1]), string(m[2])
	out, err := exec.CommandContext(ctx, bin, "clients", "create", "--database", database, "--id", "bench-rs",
		"--grant", "client_credentials", "--introspect-audience", "api", "-o", "json", "--log-level", "error").Output()
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("create the resource-server client: %w", err)
	}
	var c struct {
		Secret string `json:"client_secret"`
	}
	if i := bytes.IndexByte(out, '{'); i < 0 || json.Unmarshal(out[i:], &c) != nil || c.Secret == "" {
		s.stop()
		return nil, fmt.Errorf("create the resource-server client: no secret in its output")
	}
	s.rsSecret = c.Secret
	return s, nil
}

func (s *server) pid() int { return s.cmd.Process.Pid }

func (s *server) waitReady(ctx context.Context, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		select {
		case err := <-s.done:
			s.done <- err
			return fmt.Errorf("keyward exited at start: %v (see %s)", err, s.logPath)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := http.Get(s.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("keyward not ready after %v (see %s)", d, s.logPath)
}

// token gets a client_credentials access token of the demo client.
func (s *server) token(ctx context.Context) (string, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"api:read"}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.url+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("demo-app", s.secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &tr) != nil || tr.AccessToken == "" {
		return "", fmt.Errorf("token endpoint answered %d", resp.StatusCode)
	}
	return tr.AccessToken, nil
}

// poolWaits reads from the server's /metrics how many times a query has
// waited for a pooled database connection, and for how long in all.
func (s *server) poolWaits(ctx context.Context) (n float64, d time.Duration, err error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.metrics, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return 0, 0, err
	}
	found := 0
	for _, l := range strings.Split(string(b), "\n") {
		name, v, ok := strings.Cut(l, " ")
		if !ok {
			continue
		}
		f, perr := strconv.ParseFloat(strings.TrimSpace(v), 64)
		switch {
		case perr != nil:
		case name == `go_sql_wait_count_total{db_name="keyward"}`:
			n, found = f, found+1
		case name == `go_sql_wait_duration_seconds_total{db_name="keyward"}`:
			d, found = time.Duration(f*float64(time.Second)), found+1
		}
	}
	if found != 2 {
		return 0, 0, fmt.Errorf("%s lists no go_sql_wait metrics", s.metrics)
	}
	return n, d, nil
}

// stop ends the server (SIGTERM, then SIGKILL after 20 s) and waits for it.
func (s *server) stop() {
	if s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

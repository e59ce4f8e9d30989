package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for the keyward binary: started
// with KEYWARD_TEST_RUN_MAIN=1 it runs main, so tests can start real
// server processes without a separate build.
func TestMain(m *testing.M) {
	if os.Getenv("KEYWARD_TEST_RUN_MAIN") == "1" {
		os.Args = append([]string{"keyward"}, os.Args[1:]...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// process is a keyward serve running as its own operating-system process.
type process struct {
	URL string
	Out *syncBuffer
	Log *syncBuffer
	cmd *exec.Cmd
}

// startProcess runs "keyward serve --addr 127.0.0.1:0 args..." in a new
// process with the given extra environment, waits until it listens, and
// stops it (SIGTERM) when the test ends.
func startProcess(t *testing.T, env []string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(append(os.Environ(), "KEYWARD_TEST_RUN_MAIN=1"), env...)
	return startCommand(t, cmd)
}

// startCommand starts cmd, a keyward serve, waits until it listens, and
// stops it (SIGTERM) when the test ends.
func startCommand(t *testing.T, cmd *exec.Cmd) *process {
	t.Helper()
	p := &process{Out: &syncBuffer{}, Log: &syncBuffer{}, cmd: cmd}
	cmd.Stdout, cmd.Stderr = p.Out, p.Log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			t.Error("keyward process did not stop on SIGTERM")
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if m := servingAddr.FindStringSubmatch(p.Log.String()); m != nil {
			p.URL = "http://" + m[1]
			return p
		}
		select {
		case err := <-exited:
			t.Fatalf("keyward process exited: %v\n%s", err, p.Log.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("keyward process did not start:\n%s", p.Log.String())
	return nil
}

// waitOut waits until the process's standard output matches re and returns
// the match. Standard output and the log travel through separate pipes, so
// what serve printed before it logged "keyward serving" may still be on its
// way when startProcess returns.
func (p *process) waitOut(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := re.FindStringSubmatch(p.Out.String()); m != nil {
			return m
		}
	}
	t.Fatalf("standard output never matched %s:\n%s", re, p.Out.String())
	return nil
}

// Pid is the process id, for reading its memory use from /proc.
func (p *process) Pid() int { return p.cmd.Process.Pid }

// clientFrom returns an HTTP client whose connections come from the given
// loopback address (any of 127.0.0.0/8), so tests can play several client
// IPs against one server.
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return d.DialContext(ctx, network, addr)
			},
			MaxIdleConnsPerHost: 64,
		},
	}
}

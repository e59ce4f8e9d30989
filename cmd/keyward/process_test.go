package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/testsupport"
)

// TestMain lets the test binary stand in for the keyward binary: started
// with KEYWARD_TEST_RUN_MAIN=1 it runs main, so tests can start real
// server processes without a separate build. It also lowers the hash
// ceiling of the tests' servers (below).
func TestMain(m *testing.M) {
	if os.Getenv("KEYWARD_TEST_RUN_MAIN") == "1" {
		os.Args = append([]string{"keyward"}, os.Args[1:]...)
		main()
		os.Exit(0)
	}
	// Every failed login lasts as long as a check at the hash ceiling (TE-21):
	// about 0.35 s at the default. Tests that do not measure that run at the
	// lowest ceiling the default hash parameters allow, so their many failed
	// logins return sooner; the servers they start inherit it, and a test's
	// own --password-hash-ceiling still wins (flag over environment).
	if os.Getenv("KEYWARD_PASSWORD_HASH_CEILING") == "" {
		os.Setenv("KEYWARD_PASSWORD_HASH_CEILING", "m=19456,t=2,bcrypt=10")
	}
	os.Exit(m.Run())
}

// process is a keyward serve running as its own operating-system process.
type process = testsupport.Process

// startProcess runs "keyward serve --addr 127.0.0.1:0 args..." in a new
// process with the given extra environment, waits until it listens, and
// stops it (SIGTERM) when the test ends.
func startProcess(t *testing.T, env []string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(append(os.Environ(), "KEYWARD_TEST_RUN_MAIN=1"), env...)
	return testsupport.StartProcess(t, cmd)
}

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

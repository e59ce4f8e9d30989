package testsupport

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ServingAddr matches the log line in which keyward serve says where it
// listens; the submatch is host:port.
var ServingAddr = regexp.MustCompile(`"msg":"keyward serving","addr":"([^"]+)"`)

// Process is a keyward serve running as its own operating-system process.
type Process struct {
	URL  string      // http://host:port, from the log
	Out  *SyncBuffer // standard output (the --demo credentials)
	Log  *SyncBuffer // standard error: the JSON log
	cmd  *exec.Cmd
	task *Task
}

// StartProcess starts cmd, a keyward serve, and waits (up to a minute)
// until its log says where it serves. When the test ends the process gets
// SIGTERM, and is killed, failing the test, if it has not stopped 20 s on.
func StartProcess(t testing.TB, cmd *exec.Cmd) *Process {
	t.Helper()
	p := &Process{Out: &SyncBuffer{}, Log: &SyncBuffer{}, cmd: cmd}
	cmd.Stdout, cmd.Stderr = p.Out, p.Log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.task = Go(cmd.Wait)
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		if _, ended := p.task.Wait(20 * time.Second); !ended {
			cmd.Process.Kill()
			t.Error("keyward process did not stop on SIGTERM")
		}
	})
	m := WaitFor(t, "keyward process", p.Log, ServingAddr, p.task, 60*time.Second)
	p.URL = "http://" + m[1]
	return p
}

// WaitOut waits until the process's standard output matches re and returns
// the match. Standard output and the log travel through separate pipes, so
// what serve printed before it logged "keyward serving" may still be on its
// way when StartProcess returns.
func (p *Process) WaitOut(t testing.TB, re *regexp.Regexp) []string {
	t.Helper()
	return WaitFor(t, "keyward process", p.Out, re, p.task, 10*time.Second)
}

// Pid is the process id, for reading its memory use from /proc.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.task.Done() }

// BuildKeyward builds the keyward command into a temporary directory and
// returns the binary's path. Tests that need a binary of their own (not the
// test binary standing in for it) use it: one built without -race, or one
// run from another package's tests.
func BuildKeyward(t testing.TB) string {
	t.Helper()
	return BuildKeywardTags(t)
}

// BuildKeywardTags is BuildKeyward with build tags (go build -tags), for a
// binary with test-only code such as storage's faultinject switch.
func BuildKeywardTags(t testing.TB, tags ...string) string {
	t.Helper()
	bin, err := BuildKeywardInto(t.TempDir(), tags...)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// Signal sends sig to the process.
func (p *Process) Signal(t testing.TB, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

// Exited waits up to timeout for the process to end and returns what
// exec.Cmd.Wait returned (nil for exit status 0) and whether it ended.
func (p *Process) Exited(timeout time.Duration) (err error, ended bool) {
	return p.task.Wait(timeout)
}

// BuildKeywardInto builds the keyward command, with the build tags given,
// into dir and returns the binary's path: for a package whose tests share
// one binary beyond any one test's temporary directory.
func BuildKeywardInto(dir string, tags ...string) (string, error) {
	bin := filepath.Join(dir, "keyward")
	if len(tags) > 0 {
		bin += "-" + strings.Join(tags, "-")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	args := []string{"build", "-o", bin}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	args = append(args, "github.com/keyward/keyward/cmd/keyward")
	if out, err := exec.CommandContext(ctx, "go", args...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build keyward (tags %q): %v\n%s", tags, err, out)
	}
	return bin, nil
}

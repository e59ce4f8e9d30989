package testsupport

import (
	"fmt"
	"regexp"
	"testing"
	"time"
)

// Task is a function running in its own goroutine (a server, a process's
// Wait) whose end any number of waiters may watch.
type Task struct {
	done chan struct{}
	err  error
}

// Go runs f in a new goroutine.
func Go(f func() error) *Task {
	k := &Task{done: make(chan struct{})}
	go func() {
		k.err = f()
		close(k.done)
	}()
	return k
}

// Done is closed when the function has returned.
func (k *Task) Done() <-chan struct{} { return k.done }

// Wait waits up to timeout for the function to return, and returns its
// error and whether it returned.
func (k *Task) Wait(timeout time.Duration) (err error, ended bool) {
	select {
	case <-k.done:
		return k.err, true
	case <-time.After(timeout):
		return nil, false
	}
}

// Stopped fails the test unless the function returns nil within timeout;
// what names it in the message.
func (k *Task) Stopped(t testing.TB, what string, timeout time.Duration) {
	t.Helper()
	if err, ended := k.Wait(timeout); !ended {
		t.Errorf("%s did not stop", what)
	} else if err != nil {
		t.Errorf("%s returned %v", what, err)
	}
}

// WaitFor polls out until re matches and returns the match. It fails the
// test after timeout, or as soon as task (when not nil), the writer of out,
// has ended; what names that writer in the message.
func WaitFor(t testing.TB, what string, out fmt.Stringer, re *regexp.Regexp, task *Task, timeout time.Duration) []string {
	t.Helper()
	var done <-chan struct{}
	if task != nil {
		done = task.done
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			return m
		}
		select {
		case <-done:
			if m := re.FindStringSubmatch(out.String()); m != nil {
				return m
			}
			t.Fatalf("%s exited: %v\n%s", what, task.err, out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("%s: no %s within %v:\n%s", what, re, timeout, out.String())
	return nil
}

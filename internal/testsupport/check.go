package testsupport

import (
	"strings"
	"testing"
	"time"
)

// WantError checks err against a table test's expected error: with want
// set, err must mention it, and WantError returns true (the case is done);
// with want empty, err must be nil and it returns false. It fails the test
// otherwise.
func WantError(t testing.TB, err error, want string) bool {
	t.Helper()
	if want != "" {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("error = %v, want one mentioning %q", err, want)
		}
		return true
	}
	if err != nil {
		t.Fatal(err)
	}
	return false
}

// Eventually polls cond every few milliseconds until it holds, and fails
// the test when timeout passes first.
func Eventually(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

package testsupport

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Python returns a Python 3 interpreter that imports every module named, trying
// python3 on the PATH and then Debian's /usr/bin/python3 (a pyenv or venv python3
// first on the PATH does not see Debian's python3-* packages). Without one it skips
// the test, or fails it when KEYWARD_PYTHON_REQUIRED=1 (CI, where the packages are
// installed).
func Python(t testing.TB, modules ...string) string {
	t.Helper()
	check := "import " + strings.Join(modules, ", ")
	for _, py := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(py, "-c", check).Run() == nil {
			return py
		}
	}
	msg := "no python3 that imports " + strings.Join(modules, ", ") +
		" (Debian: apt-get install python3-flask python3-jwt python3-requests python3-werkzeug)"
	if os.Getenv("KEYWARD_PYTHON_REQUIRED") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// FreeAddr is a loopback host:port nothing listens on, for a server the
// test starts next.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// StartPython runs script with py and env added, in the working directory,
// waits (30 s at most) until GET url answers below 500, and kills it when
// the test ends, showing its output if the test failed.
func StartPython(t testing.TB, py, script, url string, env ...string) {
	t.Helper()
	cmd := exec.Command(py, script)
	cmd.Env = append(os.Environ(), env...)
	var log SyncBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s said:\n%s", script, log.String())
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if res, err := http.Get(url); err == nil {
			res.Body.Close()
			if res.StatusCode < 500 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer %s in 30 s:\n%s", script, url, log.String())
		}
	}
}

package testsupport

import (
	"os"
	"os/exec"
	"strings"
	"testing"
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

package flaskresourceserver

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/testsupport"
)

// flaskDB makes the SQLite database of a Flask-SQLAlchemy app (model User, table
// "user") with Werkzeug hashes of each user's password, as the tutorial's app has it.
const flaskDB = `
import sqlite3, sys
from werkzeug.security import generate_password_hash as g
con = sqlite3.connect(sys.argv[1])
con.execute('CREATE TABLE user (id INTEGER PRIMARY KEY, username VARCHAR(64), email VARCHAR(120), password_hash VARCHAR(256), created DATETIME, active BOOLEAN)')
con.execute("INSERT INTO user VALUES (1, 'ana', 'ana@example.com', ?, '2022-05-06 07:08:09.123456', 1)", (g('ana password 1'),))
con.execute("INSERT INTO user VALUES (2, 'bo', NULL, ?, NULL, 1)", (g('bo password 22', method='pbkdf2:sha512:50000'),))
con.execute("INSERT INTO user VALUES (3, 'cy', 'cy@example.com', ?, '2023-01-01 00:00:00', 0)", (g('cy password 333'),))
con.commit()
`

// TestExportThenImport runs export_users.py on a Flask-SQLAlchemy SQLite database,
// imports its output with `keyward users import`, and signs the users in through the
// password grant with their Flask passwords; the inactive one is imported disabled.
func TestExportThenImport(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs keyward")
	}
	py := testsupport.Python(t, "werkzeug")
	dir := t.TempDir()
	appDB := filepath.Join(dir, "app.db")
	if out, err := exec.Command(py, "-c", flaskDB, appDB).CombinedOutput(); err != nil {
		t.Fatalf("make the Flask database: %v\n%s", err, out)
	}
	export := exec.Command(py, "export_users.py", "sqlite:///"+appDB, "--created-column", "created", "--active-column", "active")
	var stderr strings.Builder
	export.Stderr = &stderr
	jsonl, err := export.Output()
	if err != nil {
		t.Fatalf("export_users.py: %v\n%s", err, stderr.String())
	}
	if lines := strings.Split(strings.TrimSpace(string(jsonl)), "\n"); len(lines) != 3 ||
		!strings.Contains(lines[0], `"created_at": "2022-05-06T07:08:09.123456Z"`) || !strings.Contains(lines[0], `"id": 1`) {
		t.Fatalf("export printed %s", jsonl)
	}
	file := filepath.Join(dir, "users.jsonl")
	if err := os.WriteFile(file, jsonl, 0o600); err != nil {
		t.Fatal(err)
	}

	bin := testsupport.BuildKeyward(t)
	dsn := "sqlite:" + filepath.Join(dir, "keyward.db")
	cli := keywardCLI(t, bin, dsn, dir)
	var sum struct{ Imported int }
	if err := json.Unmarshal(cli("users", "import", file, "--output", "json"), &sum); err != nil || sum.Imported != 3 {
		t.Fatalf("import: %+v %v", sum, err)
	}
	var c struct {
		Secret string `json:"client_secret"`
	}
	json.Unmarshal(cli("clients", "create", "--id", "web", "--grant", "password", "--scope", "api:read",
		"--audience", "api", "--output", "json"), &c)

	addr := testsupport.FreeAddr(t)
	serve := exec.Command(bin, "serve", "--addr", addr, "--issuer", "http://"+addr, "--database", dsn)
	serve.Dir = dir
	testsupport.StartProcess(t, serve)
	login := func(user, pw string) (int, map[string]any) {
		req := testsupport.FormRequest(t, http.MethodPost, "http://"+addr+"/oauth2/token",
			url.Values{"grant_type": {"password"}, "username": {user}, "password": {pw}, "scope": {"api:read"}})
		req.SetBasicAuth("web", c.Secret)
		status, body, _ := testsupport.Do(t, nil, req)
		var m map[string]any
		json.Unmarshal(body, &m)
		return status, m
	}
	for user, pw := range map[string]string{"ana": "ana password 1", "bo": "bo password 22"} {
		if status, body := login(user, pw+"x"); status != 400 || body["error"] != "invalid_grant" {
			t.Errorf("%s, wrong password: %d %v", user, status, body)
		}
		status, body := login(user, pw)
		if status != 200 {
			t.Fatalf("%s: %d %v", user, status, body)
		}
		_, claims := parts(t, body["access_token"].(string))
		if want := map[string]string{"ana": "1", "bo": "2"}[user]; claims["sub"] != want {
			t.Errorf("%s: sub %v, want the Flask id %s", user, claims["sub"], want)
		}
	}
	if status, body := login("cy", "cy password 333"); status != 400 {
		t.Errorf("an inactive Flask user signed in: %d %v", status, body)
	}
}

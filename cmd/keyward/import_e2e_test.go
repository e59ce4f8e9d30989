package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/keyward/keyward/idp/password"
	"github.com/keyward/keyward/internal/testsupport"
	"github.com/keyward/keyward/storage"
)

// importPW is every imported user's password; importWerkzeug prints Werkzeug's hashes of
// argv[1]: its default pbkdf2, pbkdf2:sha512, and scrypt (Werkzeug 3's algorithm with
// hashlib when Debian's Werkzeug 2.2 has none).
const (
	importPW       = "Flask pässword 42"
	importWerkzeug = `
import sys, hashlib
from werkzeug.security import generate_password_hash as g
pw = sys.argv[1]
print(g(pw))
print(g(pw, method="pbkdf2:sha512:20000"))
try:
    print(g(pw, method="scrypt:16384:8:1"))
except Exception:
    salt = "Zq3yW0pLx8TfHs2K"
    print("scrypt:16384:8:1$" + salt + "$" + hashlib.scrypt(pw.encode(), salt=salt.encode(), n=16384, r=8, p=1, maxmem=132*16384*8, dklen=64).hex())
`
)

// djangoVectors are hashes of "lètmein" in Django's formats, made once with Debian's
// python3-passlib 1.7.4.
var djangoVectors = []string{
	"pbkdf2_sha256$10000$seasalt$CWWFdHOWwPnki7HvkcqN9iA2T3KLW1cf2uZ5kvArtVY=",
	"argon2$argon2id$v=19$m=1024,t=2,p=2$DQEAwHiPcW4t5Vzr/f+/Nw$/CgnjfJkZg0LynbqG63LrV27UxjXlEjEKeVpYlClOhA",
	"bcrypt_sha256$$2b$05$VZR9cyAMgEHZbNnTLeoxxeztj8PjSkE6gB4PS4ih1yfG4zeFYnzGq",
}

// TestUsersImportThenLogin: `keyward users import` refuses a file with bad lines
// (listing them by number, never printing a hash, importing nothing), imports a good
// one in one transaction, refuses to import it twice unless --skip-existing; each
// imported user signs in with the password grant (a wrong password fails), keeps the
// id given, and their stored hash becomes argon2id, audited as user_updated
// password_rehashed.
func TestUsersImportThenLogin(t *testing.T) {
	py := testsupport.Python(t, "werkzeug")
	out, err := exec.Command(py, "-c", importWerkzeug, importPW).Output()
	if err != nil {
		t.Fatalf("werkzeug: %v", err)
	}
	werk := strings.Fields(string(out))
	if len(werk) != 3 {
		t.Fatalf("werkzeug printed %q", out)
	}
	t.Chdir(t.TempDir())
	t.Setenv("KEYWARD_PASSWORD_HASH_CEILING", password.DefaultCeiling().String())
	const dsn = "sqlite:keyward.db"
	secret := createLoginClient(t, dsn)

	type rec map[string]any
	var good []rec
	pws := map[string]string{}
	for i, h := range werk {
		name := fmt.Sprintf("werk%d", i)
		good = append(good, rec{"username": name, "email": name + "@example.com", "email_verified": true,
			"password_hash": h, "disabled": false, "created_at": "2021-03-04T05:06:07Z"})
		pws[name] = importPW
	}
	for i, h := range djangoVectors {
		name := fmt.Sprintf("dj%d", i)
		good = append(good, rec{"username": name, "email": "", "password_hash": h, "id": 1000 + i})
		pws[name] = "lètmein"
	}
	writeJSONL := func(name string, rs []rec) string {
		var b strings.Builder
		for _, r := range rs {
			j, _ := json.Marshal(r)
			b.Write(j)
			b.WriteByte('\n')
		}
		if err := os.WriteFile(name, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		return name
	}

	bad := append([]rec{}, good...)
	bad = append(bad,
		rec{"username": "x1", "password_hash": "pbkdf2:sha256:99999999$saltsalt$" + strings.Repeat("ab", 32)},
		rec{"username": "x2", "password_hash": "scrypt:1048576:8:1$saltsalt$" + strings.Repeat("cd", 64)},
		rec{"username": "werk0", "password_hash": werk[0]},
		rec{"username": "x3", "password_hash": "md5$00$deadbeefdeadbeef"},
		rec{"username": "x4", "password_hash": werk[1], "colour": "blue"},
	)
	stdout, err := run(t, dsn, "", "users", "import", writeJSONL("bad.jsonl", bad), "--output", "json")
	if err == nil || !strings.Contains(err.Error(), "nothing imported") {
		t.Fatalf("bad file: %v", err)
	}
	report := decode[struct {
		Imported int              `json:"imported"`
		Bad      []map[string]any `json:"bad_lines"`
	}](t, stdout)
	if len(report.Bad) != 5 || report.Bad[0]["line"] != float64(len(good)+1) {
		t.Errorf("bad lines %v", report.Bad)
	}
	for _, h := range append(werk, "99999999$saltsalt", "deadbeef") {
		if strings.Contains(stdout, h) || strings.Contains(err.Error(), h) {
			t.Errorf("the report shows a hash: %s %v", stdout, err)
		}
	}
	if n := decode[[]any](t, mustRun(t, dsn, "", "users", "list", "--output", "json")); len(n) != 0 {
		t.Fatalf("a bad file imported %d users", len(n))
	}

	file := writeJSONL("users.jsonl", good)
	sum := decode[map[string]any](t, mustRun(t, dsn, "", "users", "import", file, "--output", "json"))
	if sum["imported"] != float64(len(good)) || sum["batches"] != float64(1) {
		t.Fatalf("summary %v", sum)
	}
	if _, err := run(t, dsn, "", "users", "import", file); err == nil || !strings.Contains(err.Error(), "nothing imported") {
		t.Errorf("second import: %v", err)
	}
	sum = decode[map[string]any](t, mustRun(t, dsn, "", "users", "import", file, "--skip-existing", "--batch", "2", "--output", "json"))
	if sum["imported"] != float64(0) || sum["skipped"] != float64(len(good)) || sum["batches"] != float64(3) {
		t.Errorf("re-run with --skip-existing: %v", sum)
	}

	s := startServe(t)
	auth := http.Header{"Authorization": {basicAuth(loginClientID, secret)}}
	login := func(name, pw string) tokenReply {
		return send(t, http.DefaultClient, http.MethodPost, s.URL+"/oauth2/token", auth,
			url.Values{"grant_type": {"password"}, "username": {name}, "password": {pw}, "scope": {"api:read"}})
	}
	for name, pw := range pws {
		checkTokenErrorE1(t, name+" with a wrong password", login(name, pw+"!"), 400, "invalid_grant")
		checkIssued(t, name, login(name, pw))
	}
	s.stop(t)

	rehashed := 0
	for _, ev := range decode[[]map[string]any](t, mustRun(t, dsn, "", "audit", "list", "--type", "user_updated", "--output", "json")) {
		if ev["reason"] == "password_rehashed" {
			rehashed++
		}
	}
	if rehashed != len(pws) {
		t.Errorf("%d password_rehashed audit events, want %d", rehashed, len(pws))
	}

	db, err := storage.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for name := range pws {
		u, err := db.UserByUsername(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		if password.Scheme(u.PasswordHash) != "argon2id" {
			t.Errorf("%s: stored hash is %s after a login, want argon2id", name, password.Scheme(u.PasswordHash))
		}
		if strings.HasPrefix(name, "dj") && u.ID != fmt.Sprint(1000+int(name[2]-'0')) {
			t.Errorf("%s: id %q, want the imported one", name, u.ID)
		}
		if strings.HasPrefix(name, "werk") && (!u.EmailVerified || u.CreatedAt.Time.Year() != 2021) {
			t.Errorf("%s: email_verified %v, created %v", name, u.EmailVerified, u.CreatedAt)
		}
	}
}

// TestUsersImportBatchesResume: with --batch, a batch that meets an existing username
// fails alone (the error names its line, says how many users earlier batches stored and
// how to resume), and the same import with --skip-existing finishes the rest.
func TestUsersImportBatchesResume(t *testing.T) {
	t.Chdir(t.TempDir())
	const dsn = "sqlite:keyward.db"
	createLoginUser(t, dsn, "u3", alicePassword)
	h, err := bcrypt.GenerateFromPassword([]byte(alicePassword), 4)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for i := 1; i <= 5; i++ {
		fmt.Fprintf(&b, `{"username":"u%d","password_hash":%q}`+"\n", i, h)
	}
	if err := os.WriteFile("users.jsonl", []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = run(t, dsn, "", "users", "import", "users.jsonl", "--batch", "2")
	if err == nil || !strings.Contains(err.Error(), "line 3:") || !strings.Contains(err.Error(), "2 users of earlier batches are imported") ||
		!strings.Contains(err.Error(), "--skip-existing") {
		t.Fatalf("import over an existing user: %v", err)
	}
	if n := len(decode[[]any](t, mustRun(t, dsn, "", "users", "list", "--output", "json"))); n != 3 {
		t.Fatalf("%d users after the failed batch, want 3 (u1, u2 and the existing u3)", n)
	}
	sum := decode[map[string]any](t, mustRun(t, dsn, "", "users", "import", "users.jsonl", "--batch", "2", "--skip-existing", "--output", "json"))
	if sum["imported"] != float64(2) || sum["skipped"] != float64(3) {
		t.Errorf("resume: %v", sum)
	}
	if n := len(decode[[]any](t, mustRun(t, dsn, "", "users", "list", "--output", "json"))); n != 5 {
		t.Errorf("%d users after resuming, want 5", n)
	}
}

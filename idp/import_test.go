package idp_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/password"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/internal/idptest"
	"github.com/keyward/keyward/storage/storagetest"
)

// TestAdminImportUsers: POST /admin/v1/users/import takes JSON Lines, lists bad lines
// by number (an over-ceiling hash among them) and imports nothing, imports a good body
// in one transaction with one user_created event, answers 409 to a second import and
// skips with skip_existing=true, refuses other media types and over MaxImportLines
// lines; an imported bcrypt user signs in and their hash becomes argon2id.
func TestAdminImportUsers(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := idptest.NewAdmin(t, b)
		ops := e.OpsToken()
		const pw = "imported passphrase"
		bc, err := bcrypt.GenerateFromPassword([]byte(pw), 4)
		if err != nil {
			t.Fatal(err)
		}
		argon, err := e.Hasher.Hash(t.Context(), pw)
		if err != nil {
			t.Fatal(err)
		}
		over, _ := bcrypt.GenerateFromPassword([]byte(pw), 6) // above the test ceiling's cost 4
		line := func(name, hash string, extra ...any) string {
			m := map[string]any{"username": name, "email": name + "@example.com", "password_hash": hash}
			for i := 0; i+1 < len(extra); i += 2 {
				m[extra[i].(string)] = extra[i+1]
			}
			j, _ := json.Marshal(m)
			return string(j) + "\n"
		}
		post := func(query, ctype, body string) idptest.Response {
			r := e.Do(idptest.Request{Method: http.MethodPost, Path: "/admin/v1/users/import", Query: query,
				ContentType: ctype, Body: body, Auth: "Bearer " + ops})
			e.Bodies = append(e.Bodies, r.Body)
			return r
		}
		good := line("imp1", string(bc), "id", 7) + "\n" + line("imp2", argon, "email_verified", true)

		r := post("", "application/x-ndjson", good+line("imp3", string(over))+"{not json\n"+line("imp1", string(bc)))
		idptest.Want(t, r, http.StatusBadRequest, web.ErrInvalidRequest)
		bad, _ := r.JSON["bad_lines"].([]any)
		var got []string
		for _, b := range bad {
			m := b.(map[string]any)
			got = append(got, fmt.Sprint(m["line"]))
		}
		if strings.Join(got, ",") != "4,5,6" {
			t.Errorf("bad lines %s, want 4,5,6: %s", got, r.Body)
		}
		if strings.Contains(string(r.Body), string(over)[7:]) || !strings.Contains(string(r.Body), "ceiling") {
			t.Errorf("bad-line report: %s", r.Body)
		}
		if _, err := e.DB.UserByUsername(t.Context(), "imp1"); err == nil {
			t.Fatal("a refused import stored a user")
		}

		r = post("", "application/x-ndjson", good)
		idptest.Want(t, r, http.StatusOK, "")
		if r.JSON["imported"] != float64(2) {
			t.Fatalf("import: %s", r.Body)
		}
		e.WantAudit(t, audit.UserCreated, 1, "", "imported")
		idptest.Want(t, post("", "application/x-ndjson", good), http.StatusConflict, web.ErrInvalidRequest)
		r = post("skip_existing=true", "application/jsonl", good)
		idptest.Want(t, r, http.StatusOK, "")
		if r.JSON["skipped"] != float64(2) || r.JSON["imported"] != float64(0) {
			t.Errorf("skip_existing: %s", r.Body)
		}
		idptest.Want(t, post("", "application/json", good), http.StatusUnsupportedMediaType, web.ErrInvalidRequest)
		var many strings.Builder
		for i := range 1001 {
			many.WriteString(line(fmt.Sprintf("many%d", i), string(bc)))
		}
		idptest.Want(t, post("", "application/x-ndjson", many.String()), http.StatusBadRequest, web.ErrInvalidRequest)

		u, err := e.DB.UserByUsername(t.Context(), "imp1")
		if err != nil || u.ID != "7" {
			t.Fatalf("imp1: %+v, %v", u, err)
		}
		if r := e.Token("C1", idptest.PasswordForm("imp1", pw+"x")); r.Status != http.StatusBadRequest {
			t.Errorf("wrong password: %d %s", r.Status, r.Body)
		}
		if r := e.Token("C1", idptest.PasswordForm("imp1", pw)); r.Status != http.StatusOK {
			t.Fatalf("login: %d %s", r.Status, r.Body)
		}
		if u, _ = e.DB.UserByUsername(t.Context(), "imp1"); password.Scheme(u.PasswordHash) != "argon2id" {
			t.Errorf("after login the hash is %s", password.Scheme(u.PasswordHash))
		}
	})
}

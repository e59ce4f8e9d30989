package manage

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/keyward/keyward/idp/password"
)

// TestParseImport: every line of an import is validated, bad lines are all reported by
// number with a reason that never holds the hash, blank lines are skipped, ids and
// created_at are read, and maxLines bounds the file.
func TestParseImport(t *testing.T) {
	h, err := password.NewHasher(password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		password.WithCeiling(password.Ceiling{Memory: 64, Time: 1, BcryptCost: 5}))
	if err != nil {
		t.Fatal(err)
	}
	bc, _ := bcrypt.GenerateFromPassword([]byte("pw"), 4)
	over, _ := bcrypt.GenerateFromPassword([]byte("pw"), 6)
	hash := string(bc)
	rec := func(fields string) string { return "{" + fields + "}\n" }
	good := rec(`"username":"ana","email":"Ana@Example.com","email_verified":true,"password_hash":"`+hash+`","id":7,"created_at":"2020-01-02T03:04:05Z"`) +
		"\n   \n" +
		rec(`"username":"bo","password_hash":"`+hash+`","id":"legacy-b0","disabled":true`) +
		rec(`"username":"cy","password_hash":"`+hash+`"`)
	users, lines, err := ParseImport(strings.NewReader(good), h, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 3 || fmt.Sprint(lines) != "[1 4 5]" {
		t.Fatalf("users %d, lines %v", len(users), lines)
	}
	if u := users[0]; u.ID != "7" || u.Email != "Ana@example.com" || !u.EmailVerified || u.CreatedAt.Time.Year() != 2020 {
		t.Errorf("ana: %+v", u)
	}
	if u := users[1]; u.ID != "legacy-b0" || !u.Disabled || !u.CreatedAt.IsZero() {
		t.Errorf("bo: %+v", u)
	}
	if users[2].ID != "" {
		t.Errorf("cy got id %q, want none (the store makes one)", users[2].ID)
	}

	bad := []struct{ line, want string }{
		{rec(`"username":"a1","password_hash":"` + string(over) + `"`), "above the ceiling"},
		{rec(`"username":"a2","password_hash":"pbkdf2:sha256$salt$abcd"`), "iteration count is required"},
		{rec(`"username":"a3"`), "password hash is missing"},
		{rec(`"username":"a 4","password_hash":"` + hash + `"`), "username"},
		{rec(`"username":"a5","email":"not an address","password_hash":"` + hash + `"`), "email"},
		{rec(`"username":"a6","email_verified":true,"password_hash":"` + hash + `"`), "without an email"},
		{rec(`"username":"a7","password_hash":"` + hash + `","id":"a b"`), "id"},
		{rec(`"username":"a8","password_hash":"` + hash + `","id":-1`), "id"},
		{rec(`"username":"a9","password_hash":"` + hash + `","created_at":"yesterday"`), "created_at"},
		{rec(`"username":"a10","password_hash":"` + hash + `","colour":"blue"`), "unknown field"},
		{rec(`"username":"ANA","password_hash":"` + hash + `"`), "same as line 1"},
		{rec(`"username":"a11","password_hash":"` + hash + `","id":"7"`), "same as line 1"},
		{"{not json\n", "syntax error"},
		{rec(`"username":"a12","password_hash":"`+hash+`"`) + "{}", ""}, // two lines: the second is "{}"
	}
	var in strings.Builder
	in.WriteString(rec(`"username":"ana","password_hash":"` + hash + `","id":7`))
	for _, b := range bad {
		in.WriteString(b.line)
	}
	_, _, err = ParseImport(strings.NewReader(in.String()), h, 0)
	var ie *ImportError
	if !errors.As(err, &ie) {
		t.Fatalf("ParseImport of bad lines: %v", err)
	}
	byLine := map[int]string{}
	for _, l := range ie.Lines {
		byLine[l.Line] = l.Reason
		if strings.Contains(l.Reason, string(over)[7:]) || strings.Contains(l.Reason, hash[7:]) {
			t.Errorf("line %d's reason holds a hash: %s", l.Line, l.Reason)
		}
	}
	for i, b := range bad[:len(bad)-1] {
		if r, ok := byLine[i+2]; !ok || !strings.Contains(r, b.want) {
			t.Errorf("line %d: reason %q, want one with %q", i+2, r, b.want)
		}
	}
	if _, ok := byLine[len(bad)+1]; ok {
		t.Errorf("a good line after bad ones was reported: %v", byLine)
	}
	if _, ok := byLine[len(bad)+2]; !ok {
		t.Errorf("the last line ({}) was not reported: %v", byLine)
	}

	if _, _, err := ParseImport(strings.NewReader(strings.Repeat(rec(`"username":"x","password_hash":"`+hash+`"`), 3)), h, 2); err == nil ||
		!strings.Contains(err.Error(), "more than 2 lines") {
		t.Errorf("maxLines: %v", err)
	}
	long := rec(`"username":"x","password_hash":"` + strings.Repeat("a", maxImportLine) + `"`)
	_, _, err = ParseImport(strings.NewReader(long+rec(`"username":"y","password_hash":"`+hash+`"`)), h, 0)
	if !errors.As(err, &ie) || len(ie.Lines) != 1 || ie.Lines[0].Line != 1 || !strings.Contains(ie.Lines[0].Reason, "longer than") {
		t.Errorf("a line over the limit: %v", err)
	}
}

package password

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestPolicyCheck(t *testing.T) {
	custom, err := LoadBlocklist(strings.NewReader("Keyward-Staff-Password\r\nwinter is coming 2025\n"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPolicy(0, custom)
	if err != nil {
		t.Fatal(err)
	}
	short := &Policy{MinLength: 8}
	strict := &Policy{RejectShortRepeats: true}
	tests := []struct {
		name     string
		policy   *Policy
		pw       string
		username string
		email    string
		wantRule string // "" means accepted
	}{
		// PW-05: length in code points after NFKC.
		{"14 characters", p, "abcdefghijklm!", "", "", RuleTooShort},
		{"15 characters", p, "qxvdbjwmzr4kt!p", "", "", ""},
		{"15 e-acute, 30 bytes", p, strings.Repeat("é", 15), "", "", ""},
		{"15 decomposed e-acute count 15", p, strings.Repeat("e\u0301", 15), "", "", ""},
		{"14 emoji, 56 bytes", p, strings.Repeat("🔑", 13) + "🐉", "", "", RuleTooShort},
		{"15 emoji", p, strings.Repeat("🔑", 14) + "🐉", "", "", ""},
		{"ligatures count after NFKC", p, "\ufb01\ufb01\ufb01\ufb01\ufb01\ufb01\ufb01x", "", "", ""},
		// PW-06: at least 64 accepted, over the byte cap refused.
		{"64 characters", p, strings.Repeat("gkw7", 16), "", "", ""},
		{"256 bytes", p, strings.Repeat("ŋ", 128), "", "", ""},
		{"257 bytes", p, strings.Repeat("ŋ", 128) + "x", "", "", RuleTooLong},
		{"one megabyte", p, strings.Repeat("x", 1<<20), "", "", RuleTooLong},
		// PW-07 and PW-10: no composition rules, any printable character.
		{"lower case and spaces", p, "correct horse battery staple", "", "", ""},
		{"sql-looking", p, `p' "; DROP TABLE users;--`, "", "", ""},
		{"spaces and emoji", p, "my 🐉 dragon is green 🌿", "", "", ""},
		{"digits only, not a run", p, "830572946150382", "", "", ""},
		// Input that is not text.
		{"invalid UTF-8", p, "abcdefghijklmnop\xff", "", "", RuleInvalidUTF8},
		{"newline", p, "correct horse\nbattery staple", "", "", RuleControlCharacter},
		{"NUL", p, "correct horse\x00battery staple", "", "", RuleControlCharacter},
		{"tab", p, "correct horse\tbattery staple", "", "", RuleControlCharacter},
		// Username and e-mail.
		{"contains username", p, "alicekeyward2025", "alice", "", RuleContainsUsername},
		{"contains username, other case", p, "ALICEkeyward2025", "alice", "", RuleContainsUsername},
		{"contains full-width username", p, "ａｌｉｃｅkeyward2025", "alice", "", RuleContainsUsername},
		{"username too short to look for", p, "al is a fine passphrase", "al", "", ""},
		{"contains e-mail local part", p, "bob.smith-likes-tea", "", "bob.smith@example.com", RuleContainsEmail},
		{"other e-mail", p, "bob.smith-likes-tea", "", "carol@example.com", ""},
		// PW-08: whole-password blocklist, case-insensitive, and runs and repeats.
		{"123456789012345", p, "123456789012345", "", "", RuleBlocklisted},
		{"qwertyuiopasdfgh", p, "qwertyuiopasdfgh", "", "", RuleBlocklisted},
		{"passwordpassword", p, "passwordpassword", "", "", RuleBlocklisted},
		{"PasswordPassword", p, "PasswordPassword", "", "", RuleBlocklisted},
		{"on the built-in list", p, "1qaz2wsx3edc4rfv", "", "", RuleBlocklisted},
		{"on the built-in list, upper case", p, "MOMSANALADVENTURE", "", "", RuleBlocklisted},
		{"reversed digits", p, "987654321098765", "", "", RuleBlocklisted},
		{"alphabet", p, "abcdefghijklmnop", "", "", RuleBlocklisted},
		{"one character repeated", p, "aaaaaaaaaaaaaaaa", "", "", ""},
		{"one character repeated, strict", strict, "aaaaaaaaaaaaaaaa", "", "", RuleBlocklisted},
		{"short unit repeated, strict", strict, "abc1abc1abc1abc1", "", "", RuleBlocklisted},
		{"15 e-acute, strict", strict, strings.Repeat("é", 15), "", "", RuleBlocklisted},
		{"64 characters, strict", strict, strings.Repeat("gkw7", 16), "", "", RuleBlocklisted},
		{"blocklisted word repeated", p, "dragondragondragon", "", "", RuleBlocklisted},
		{"on the file list, other case", p, "keyward-staff-password", "", "", RuleBlocklisted},
		{"on the file list with spaces", p, "Winter Is Coming 2025", "", "", RuleBlocklisted},
		{"blocklisted word inside a passphrase", p, "my password is a purple giraffe", "", "", ""},
		{"built-in entry, short policy", short, "password", "", "", RuleBlocklisted},
		{"built-in entry full-width, short policy", short, "ＰＡＳＳＷＯＲＤ", "", "", RuleBlocklisted},
		{"8 characters, short policy", short, "x7#kq!vz", "", "", ""},
		{"7 characters, short policy", short, "x7#kq!v", "", "", RuleTooShort},
		// The zero Policy uses the defaults; a MinLength under 8 is raised to 8.
		{"zero policy, 14 characters", &Policy{}, "abcdefghijklm!", "", "", RuleTooShort},
		{"zero policy, built-in list", &Policy{}, "passwordpassword", "", "", RuleBlocklisted},
		{"min 4 is raised to 8", &Policy{MinLength: 4}, "x7#kq!v", "", "", RuleTooShort},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.policy.Check(tt.pw, tt.username, tt.email)
			if tt.wantRule == "" {
				if err != nil {
					t.Fatalf("Check = %v, want accepted", err)
				}
				return
			}
			var pe *PolicyError
			if !errors.As(err, &pe) {
				t.Fatalf("Check = %v, want *PolicyError %q", err, tt.wantRule)
			}
			if pe.Rule != tt.wantRule {
				t.Errorf("rule %q (%s), want %q", pe.Rule, pe.Message, tt.wantRule)
			}
			if pe.Message == "" || (len(tt.pw) >= 10 && strings.Contains(pe.Error(), tt.pw)) {
				t.Errorf("message %q is empty or quotes the password", pe.Error())
			}
		})
	}
}

// TestPolicyCheckHugeIsQuick checks that a megabyte password costs nothing to refuse.
func TestPolicyCheckHugeIsQuick(t *testing.T) {
	pw := strings.Repeat("é", 1<<19)
	start := time.Now()
	for range 100 {
		if err := (&Policy{}).Check(pw, "alice", "alice@example.com"); err == nil {
			t.Fatal("accepted a megabyte password")
		}
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("100 refusals took %v", d)
	}
}

func TestNewPolicy(t *testing.T) {
	tests := []struct {
		name    string
		min     int
		wantMin int
		wantErr bool
	}{
		{"default", 0, DefaultMinLength, false},
		{"8", 8, 8, false},
		{"20", 20, 20, false},
		{"7", 7, 0, true},
		{"negative", -1, 0, true},
		{"above the cap", MaxBytes + 1, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPolicy(tt.min)
			if (err != nil) != tt.wantErr {
				t.Fatalf("NewPolicy(%d) err = %v, want error %v", tt.min, err, tt.wantErr)
			}
			if err == nil && p.MinLength != tt.wantMin {
				t.Errorf("MinLength = %d, want %d", p.MinLength, tt.wantMin)
			}
		})
	}
}

func TestCommonBlocklist(t *testing.T) {
	b := Common()
	if b.Len() < 10000 {
		t.Errorf("built-in list has %d entries, want at least 10,000", b.Len())
	}
	for _, pw := range []string{"password", "123456", "qwerty", "PASSWORD", "Qwerty", "iloveyou", "letmein", "passwordpassword"} {
		if !b.Contains(pw) {
			t.Errorf("built-in list lacks %q", pw)
		}
	}
	for _, pw := range []string{"correct horse battery staple", "", "x7#kq!vz-Gm2"} {
		if b.Contains(pw) {
			t.Errorf("built-in list contains %q", pw)
		}
	}
}

func TestLoadBlocklist(t *testing.T) {
	file := "Hunter2\r\n\n  \nÉté2025\nstraße\n" + strings.Repeat("x", MaxBytes+1) + "\nlast-line-no-newline"
	b, err := LoadBlocklist(strings.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		pw   string
		want bool
	}{
		{"hunter2", true},
		{"HUNTER2", true},
		{"hunter2\r", false},
		{"  ", true}, // a line of spaces is an entry like any other
		{"été2025", true},
		{"ete\u0301" + "2025", false},
		{"e\u0301te\u0301" + "2025", true},
		{"STRASSE", true},
		{"last-line-no-newline", true},
		{strings.Repeat("x", MaxBytes+1), false},
		{"", false},
	}
	for _, tt := range tests {
		if got := b.Contains(tt.pw); got != tt.want {
			t.Errorf("Contains(%q) = %v, want %v", tt.pw, got, tt.want)
		}
	}
	if b.Len() != 5 {
		t.Errorf("Len = %d, want 5", b.Len())
	}
	var nilList *Blocklist
	if nilList.Contains("x") || nilList.Len() != 0 {
		t.Error("a nil Blocklist is not empty")
	}
	if _, err := LoadBlocklist(strings.NewReader(strings.Repeat("y", 2<<20))); err == nil {
		t.Error("LoadBlocklist accepted a 2 MiB line")
	}
}

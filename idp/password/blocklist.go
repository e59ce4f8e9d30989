package password

import (
	"bufio"
	"bytes"
	"compress/gzip"
	_ "embed"
	"fmt"
	"io"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/text/cases"
)

// commonGz is the built-in list, one password a line, most common first; see
// README.md beside this file for its source and licence.
//
//go:embed common-passwords.txt.gz
var commonGz []byte

// Blocklist is a set of passwords that may not be chosen (PW-08), matched against the
// whole password after NFKC and case folding. It is safe for concurrent reads.
type Blocklist struct {
	set map[string]struct{}
}

// Common returns the built-in list of the most common passwords (about 49,000 entries,
// from leaked-password frequency data), decoded on first use.
func Common() *Blocklist { return common() }

var common = sync.OnceValue(func() *Blocklist {
	zr, err := gzip.NewReader(bytes.NewReader(commonGz))
	if err != nil {
		panic("password: embedded blocklist: " + err.Error())
	}
	b, err := LoadBlocklist(zr)
	if err != nil {
		panic("password: embedded blocklist: " + err.Error())
	}
	return b
})

// LoadBlocklist reads a blocklist file: one password a line, in UTF-8, with "\n" or
// "\r\n" line ends. Blank lines, and lines longer than MaxBytes (which no accepted
// password can equal), are skipped.
func LoadBlocklist(r io.Reader) (*Blocklist, error) {
	b := &Blocklist{set: make(map[string]struct{})}
	fold := cases.Fold()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if line == "" || len(line) > MaxBytes {
			continue
		}
		b.set[blockKey(fold, line)] = struct{}{}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("load password blocklist: %w", err)
	}
	return b, nil
}

// Contains reports whether pw, normalised and case-folded, is on the list.
func (b *Blocklist) Contains(pw string) bool {
	if b == nil {
		return false
	}
	_, ok := b.set[blockKey(cases.Fold(), pw)]
	return ok
}

// Len returns the number of distinct entries.
func (b *Blocklist) Len() int {
	if b == nil {
		return 0
	}
	return len(b.set)
}

// blockKey is the form entries and candidates are compared in: NFKC, then case-folded.
func blockKey(fold cases.Caser, s string) string {
	s = Normalize(s)
	if isASCII(s) {
		return strings.ToLower(s)
	}
	fold.Reset()
	return Normalize(fold.String(s))
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// sequences are runs a person types without thinking: digits, the alphabet and
// keyboard rows and columns, each forwards and backwards (NIST SP 800-63B-4 §3.1.1.2
// names repetitive and sequential characters). The built-in list leaves most of these
// out because zxcvbn, which it comes from, finds them by pattern instead.
var sequences = func() []string {
	base := []string{
		strings.Repeat("0123456789", MaxBytes/10+2),
		strings.Repeat("abcdefghijklmnopqrstuvwxyz", MaxBytes/26+2),
		"qwertyuiopasdfghjklzxcvbnm",
		"qwertzuiopasdfghjklyxcvbnm",
		"azertyuiopqsdfghjklmwxcvbn",
		"1234567890qwertyuiopasdfghjklzxcvbnm",
		"1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p",
		"qazwsxedcrfvtgbyhnujmikolp",
		"zaqxswcdevfrbgtnhymjukilop",
		"!@#$%^&*()_+",
	}
	out := make([]string, 0, 2*len(base))
	for _, s := range base {
		out = append(out, s, reverse(s))
	}
	return out
}()

func reverse(s string) string {
	r := []rune(s)
	for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
		r[i], r[j] = r[j], r[i]
	}
	return string(r)
}

// trivial reports whether key (a blockKey) is a keyboard or alphabet run, or a
// blocklisted word repeated ("passwordpassword"), or, with shortUnits, one to four
// characters repeated ("aaaaaaaa", "abcabcabc").
func trivial(key string, lists []*Blocklist, shortUnits bool) bool {
	for _, s := range sequences {
		if strings.Contains(s, key) {
			return true
		}
	}
	r := []rune(key)
	for size := 1; size <= len(r)/2; size++ {
		if len(r)%size != 0 {
			continue
		}
		unit := string(r[:size])
		if strings.Repeat(unit, len(r)/size) != key {
			continue
		}
		if shortUnits && size <= 4 {
			return true
		}
		for _, b := range lists {
			if b.Contains(unit) {
				return true
			}
		}
	}
	return false
}

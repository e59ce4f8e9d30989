package password

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
)

// Length limits of the password policy, in Unicode code points after NFKC (PW-05).
const (
	DefaultMinLength = 15 // NIST SP 800-63B-4 §3.1.1.2, single-factor
	LowestMinLength  = 8  // MinLength is never allowed below this
)

// Rules a *PolicyError can name; the values are stable and meant for the API's reason.
const (
	RuleTooShort         = "too_short"
	RuleTooLong          = "too_long"
	RuleInvalidUTF8      = "invalid_utf8"
	RuleControlCharacter = "control_character"
	RuleContainsUsername = "contains_username"
	RuleContainsEmail    = "contains_email"
	RuleBlocklisted      = "blocklisted"
)

// minIdentifierLen is the shortest username or e-mail local part looked for inside a
// password; shorter ones ("al") would reject too many good passphrases.
const minIdentifierLen = 3

// PolicyError says which rule a password broke. Message is fit to show the user; neither
// field contains the password.
type PolicyError struct {
	Rule    string // one of the Rule constants
	Message string
}

// Error returns the message, prefixed with the operation.
func (e *PolicyError) Error() string { return "password rejected: " + e.Message }

// Policy decides whether a password may be set at registration, change or reset
// (NIST SP 800-63B-4 §3.1.1.2): a minimum length, the MaxBytes cap, no composition rules,
// no username or e-mail inside it, and not on a blocklist. The zero Policy applies the
// defaults and the built-in list.
type Policy struct {
	// MinLength is the minimum in code points after NFKC. 0 means DefaultMinLength; a
	// value below LowestMinLength is treated as LowestMinLength.
	MinLength int
	// Blocklists are checked in addition to Common(), for example one loaded from the
	// file named by --password-blocklist.
	Blocklists []*Blocklist
	// RejectShortRepeats also rejects one to four characters repeated ("aaaaaaaaaaaaaaa",
	// "abcabcabcabcabc"). It is off by default: NIST SP 800-63B-4 no longer asks for it,
	// and PW-05 expects "é" repeated 15 times to be accepted.
	RejectShortRepeats bool
}

// NewPolicy returns a Policy with the given minimum length (0 for the default) and extra
// blocklists. It fails when minLength is below LowestMinLength.
func NewPolicy(minLength int, blocklists ...*Blocklist) (*Policy, error) {
	if minLength == 0 {
		minLength = DefaultMinLength
	}
	if minLength < LowestMinLength {
		return nil, fmt.Errorf("new password policy: minimum length %d below %d", minLength, LowestMinLength)
	}
	if minLength > MaxBytes {
		return nil, fmt.Errorf("new password policy: minimum length %d above the %d-byte cap", minLength, MaxBytes)
	}
	return &Policy{MinLength: minLength, Blocklists: blocklists}, nil
}

// minLength is MinLength with the default and the floor applied.
func (p *Policy) minLength() int {
	switch {
	case p.MinLength == 0:
		return DefaultMinLength
	case p.MinLength < LowestMinLength:
		return LowestMinLength
	}
	return p.MinLength
}

// Check returns nil when pw may be set for the account, or a *PolicyError naming the
// first rule it breaks. username and email may be empty. The checks run cheapest first,
// and a password over MaxBytes is rejected before anything reads it whole.
func (p *Policy) Check(pw, username, email string) error {
	reject := func(rule, format string, args ...any) error {
		return &PolicyError{Rule: rule, Message: fmt.Sprintf(format, args...)}
	}
	tooLong := func() error {
		return reject(RuleTooLong, "password must be at most %d bytes", MaxBytes)
	}
	if len(pw) > MaxBytes {
		return tooLong()
	}
	if !utf8.ValidString(pw) {
		return reject(RuleInvalidUTF8, "password is not valid UTF-8")
	}
	if strings.ContainsFunc(pw, unicode.IsControl) {
		return reject(RuleControlCharacter, "password must not contain control characters such as tab or newline")
	}
	n := Normalize(pw)
	if len(n) > MaxBytes {
		return tooLong()
	}
	if want := p.minLength(); utf8.RuneCountInString(n) < want {
		return reject(RuleTooShort, "password must be at least %d characters", want)
	}
	fold := cases.Fold()
	key := blockKey(fold, n)
	if u := blockKey(fold, strings.TrimSpace(username)); utf8.RuneCountInString(u) >= minIdentifierLen &&
		strings.Contains(key, u) {
		return reject(RuleContainsUsername, "password must not contain the username")
	}
	if local := emailLocal(email); local != "" {
		if l := blockKey(fold, local); utf8.RuneCountInString(l) >= minIdentifierLen && strings.Contains(key, l) {
			return reject(RuleContainsEmail, "password must not contain the e-mail address")
		}
	}
	lists := append([]*Blocklist{Common()}, p.Blocklists...)
	for _, b := range lists {
		if b.Contains(n) {
			return reject(RuleBlocklisted, "password is on a list of common or breached passwords")
		}
	}
	if trivial(key, lists, p.RejectShortRepeats) {
		return reject(RuleBlocklisted, "password is a keyboard run, a sequence or a repetition")
	}
	return nil
}

// emailLocal returns the part of an e-mail address before its last "@".
func emailLocal(email string) string {
	email = strings.TrimSpace(email)
	if i := strings.LastIndexByte(email, '@'); i >= 0 {
		return email[:i]
	}
	return email
}

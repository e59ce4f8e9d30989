package manage

import (
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// MaxUsernameLength is the longest username, in characters.
const MaxUsernameLength = 64

// NormalizeUsername returns the username as stored (NFKC) or an error saying
// which rule it breaks: 1 to 64 characters, no spaces or control
// characters. Uniqueness is by storage.UsernameKey (case-folded).
func NormalizeUsername(name string) (string, error) {
	if !utf8.ValidString(name) {
		return "", fmt.Errorf("username is not valid UTF-8")
	}
	name = norm.NFKC.String(name)
	n := utf8.RuneCountInString(name)
	if n == 0 {
		return "", fmt.Errorf("username is empty")
	}
	if n > MaxUsernameLength {
		return "", fmt.Errorf("username is longer than %d characters", MaxUsernameLength)
	}
	for _, r := range name {
		if unicode.IsSpace(r) || unicode.IsControl(r) || !unicode.IsPrint(r) {
			return "", fmt.Errorf("username contains a space or a control character")
		}
	}
	return name, nil
}

// NormalizeNewUsername is NormalizeUsername for a name about to be given to
// a new account (registration, `keyward users create`): it also refuses a
// name whose letters mix scripts, such as "аlice" with a Cyrillic а
// (ErrMixedScripts). Names that merely look like an existing one ("alicė"
// beside "alice") are refused by the store, which compares confusable
// skeletons (storage.UsernameSkeleton, storage.ErrLookalike). Logins keep
// NormalizeUsername, so names made before the rule still sign in.
func NormalizeNewUsername(name string) (string, error) {
	name, err := NormalizeUsername(name)
	if err != nil {
		return "", err
	}
	if !singleScript(name) {
		return "", ErrMixedScripts
	}
	return name, nil
}

// ErrMixedScripts reports a new username whose letters come from more than one
// script (UTS #39 §5.2 "Highly Restrictive").
var ErrMixedScripts = errors.New("username mixes letters of different scripts (such as Latin and Cyrillic)")

// scriptSets are the combinations of scripts UTS #39 §5.2 lets one
// "Highly Restrictive" identifier mix: the writing systems of Japanese,
// Chinese and Korean, each with Latin.
var scriptSets = [][]*unicode.RangeTable{
	{unicode.Latin, unicode.Han, unicode.Hiragana, unicode.Katakana},
	{unicode.Latin, unicode.Han, unicode.Bopomofo},
	{unicode.Latin, unicode.Han, unicode.Hangul},
}

// singleScript reports whether name is "Highly Restrictive" (UTS #39 §5.2):
// its characters, leaving out those common to scripts (digits, punctuation)
// and inherited ones (combining marks), are of one script, or of one of
// scriptSets. Go's tables give each character its Script, not its
// Script_Extensions, which only makes the rule stricter for a few marks.
func singleScript(name string) bool {
	var seen []*unicode.RangeTable
	for _, r := range name {
		if unicode.In(r, unicode.Common, unicode.Inherited) {
			continue
		}
		t := scriptOf(r)
		if t == nil {
			return false // unassigned: no script to agree on
		}
		if !slices.Contains(seen, t) {
			seen = append(seen, t)
		}
	}
	if len(seen) <= 1 {
		return true
	}
	for _, set := range scriptSets {
		if !slices.ContainsFunc(seen, func(t *unicode.RangeTable) bool { return !slices.Contains(set, t) }) {
			return true
		}
	}
	return false
}

// scriptOf returns the script table r belongs to, nil if none.
func scriptOf(r rune) *unicode.RangeTable {
	for _, t := range unicode.Scripts {
		if unicode.Is(t, r) {
			return t
		}
	}
	return nil
}

// NormalizeEmail checks that email is one bare address (no display name, no
// line breaks, at most 254 bytes) and returns it with the domain lower-cased.
// An empty email is allowed.
func NormalizeEmail(email string) (string, error) {
	if email == "" {
		return "", nil
	}
	if len(email) > 254 || strings.ContainsAny(email, "\r\n\x00") {
		return "", fmt.Errorf("email %q is not a valid address", email)
	}
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email || a.Name != "" {
		return "", fmt.Errorf("email %q is not a valid address (write it bare, as alice@example.com)", email)
	}
	at := strings.LastIndexByte(email, '@')
	local, domain := email[:at], email[at+1:]
	if local == "" || domain == "" || !strings.Contains(domain, ".") || strings.HasSuffix(domain, ".") {
		return "", fmt.Errorf("email %q is not a valid address", email)
	}
	for _, r := range domain {
		if r > unicode.MaxASCII {
			return "", fmt.Errorf("email %q has a non-ASCII domain; write it in its punycode form", email)
		}
	}
	return local + "@" + strings.ToLower(domain), nil
}

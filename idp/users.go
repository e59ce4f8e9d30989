package idp

import (
	"fmt"
	"net/mail"
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

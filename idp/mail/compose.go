package mail

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/mail"
	"net/url"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// compose builds the RFC 5322 message of m from r: From, To, Subject, Date,
// Message-ID, Auto-Submitted, X-Keyward-Kind (m.Kind), and a multipart/alternative body (text, then
// HTML), quoted-printable in UTF-8. The SMTP sender and the outbox write the
// same message. Addresses are parsed (net/mail), so a CR or LF in them is an
// error, never a header of its own (RR-14).
func compose(from string, m Message, r Rendered, now time.Time) (*gomail.Msg, error) {
	to, err := mail.ParseAddress(m.To)
	if err != nil || to.Name != "" || strings.ContainsAny(m.To, "\r\n") {
		return nil, fmt.Errorf("compose mail %s: the recipient %s is not a bare e-mail address", m.Kind, Mask(m.To))
	}
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	if err := msg.From(from); err != nil {
		return nil, fmt.Errorf("compose mail %s: from: %w", m.Kind, err)
	}
	msg.ToMailAddress(to)
	msg.Subject(r.Subject)
	msg.SetDateWithValue(now)
	msg.SetMessageIDWithValue(messageID(from))
	msg.SetGenHeader(gomail.Header("Auto-Submitted"), "auto-generated") // RFC 3834: no auto-replies
	msg.SetGenHeader(gomail.Header("X-Keyward-Kind"), string(m.Kind))   // for mail filters, and the tests' inbox
	msg.SetBodyString(gomail.TypeTextPlain, r.Text)
	msg.AddAlternativeString(gomail.TypeTextHTML, r.HTML)
	return msg, nil
}

// messageID is a random Message-ID local part at the From address's domain.
func messageID(from string) string {
	var b [16]byte
	rand.Read(b[:])
	domain := "keyward.invalid"
	if a, err := mail.ParseAddress(from); err == nil {
		if i := strings.LastIndexByte(a.Address, '@'); i >= 0 && i < len(a.Address)-1 {
			domain = a.Address[i+1:]
		}
	}
	return hex.EncodeToString(b[:]) + "@" + domain
}

// Mask hides an address's local part but its first character, for logs
// and notices: alice@example.com becomes a***@example.com.
func Mask(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return "***"
	}
	local, domain := addr[:i], addr[i+1:]
	if local == "" {
		return "***@" + domain
	}
	first := []rune(local)[0]
	return string(first) + "***@" + domain
}

// redact returns err's text with the secrets cut out that an SMTP server's
// answer could echo: the link and its query values (the token), the SMTP
// password, and the recipient, masked. Only this text is ever logged.
func redact(err error, m Message, password string) string {
	s := err.Error()
	var secrets []string
	if m.Link != "" {
		secrets = append(secrets, m.Link)
		if u, perr := url.Parse(m.Link); perr == nil {
			for _, vs := range u.Query() {
				secrets = append(secrets, vs...)
			}
		}
	}
	for _, sec := range secrets {
		if len(sec) >= 4 { // a tiny query value would cut out ordinary words
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	if password != "" {
		s = strings.ReplaceAll(s, password, "[redacted]")
	}
	if m.To != "" {
		s = strings.ReplaceAll(s, m.To, Mask(m.To))
	}
	return s
}

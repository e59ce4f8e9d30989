package mail

import (
	"context"
	"time"
)

// Kind names a message; each has text and HTML templates in English and Simplified Chinese.
type Kind string

const (
	KindVerifyEmail      Kind = "verify_email"       // Link: verify the address
	KindPasswordReset    Kind = "password_reset"     // Link: set a new password
	KindPasswordChanged  Kind = "password_changed"   // notice, no link
	KindPasswordWasReset Kind = "password_was_reset" // notice, no link
	KindEmailChanged     Kind = "email_changed"      // notice to the OLD address; NewEmail set (masked)
)

// Message is one mail to send. It carries the link (a secret) only to the template; the mailer
// never logs Link.
type Message struct {
	Kind     Kind
	To       string // the recipient address
	Lang     string // "en" or "zh-CN"; anything else means "en"
	Username string
	Link     string        // the absolute link for KindVerifyEmail and KindPasswordReset
	Expires  time.Duration // how long Link stays valid, for the text
	NewEmail string        // for KindEmailChanged: the new address, masked (a***@example.com)
}

// Sender queues a message. It never blocks on the network: it returns at once, with an
// error only when the queue is full or closed (the caller logs it without the link and
// answers the HTTP request as if it had been sent).
type Sender interface {
	Send(ctx context.Context, m Message) error
}

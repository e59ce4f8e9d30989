// Package mailtest is the real mail path of the tests: an SMTP server
// (github.com/emersion/go-smtp) on a loopback port that keeps what it
// receives (Server), and a mail.Sender that delivers each message to it at
// once over net/smtp (Sender), so an end-to-end test reads the link out of a
// message a real SMTP exchange carried. FailingSender is the sender whose
// every Send fails.
//
// It is for tests only. It owns no templates: Sender writes a plain-text
// body naming the kind, the user, the link and the masked new address;
// after the merge with idp/mail, tests may use idp/mail's SMTP sender
// against Server instead. It must not be imported outside tests.
package mailtest

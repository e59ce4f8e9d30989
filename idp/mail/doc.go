// Package mail renders and delivers Keyward's account mail: e-mail verification, password
// reset links and the notices of a changed password or address (issue 14, SECURITY-REQUIREMENTS
// §9 RR). A Mailer takes a Message (Sender.Send), queues it without blocking and delivers it
// from one or two workers, with retries (exponential backoff with jitter), a timeout per
// attempt and Prometheus metrics, either over SMTP (go-mail; STARTTLS required unless the
// host is loopback, or implicit TLS with smtps://) or into a development outbox directory of
// .eml files. Templates (text and HTML, English and Simplified Chinese) are embedded and
// may be replaced file by file from a directory.
//
// The package owns the rendering, the queue and the delivery; it decides nothing about
// accounts or tokens (idp/account does) and imports nothing else of Keyward. It never logs
// a link, a body or the SMTP password: a failed delivery is logged with its kind, a masked
// recipient (Mask) and the error with those secrets cut out.
package mail

// Package manage holds the operations on users and clients that the CLI
// (cmd/keyward) and the admin API (idp) both perform, written once: create,
// update, disable or enable, delete a user or a client, set a password, end
// sessions, unlock an account, rotate a client secret, set an e-mail
// address, and the account links of issue 14: mail a password-reset or
// verification link, consume one, and mail the notices of a password
// change, a reset and an address change (Ops, links.go). Each records its
// audit event and ends the sessions (and reset links) its change must end.
// Mail goes through Mailer (a mail.Sender), configured by SetMail; the
// tokens are generated here and stored only hashed. It also owns the rules of what a client and a username are (NewClient, CheckClient,
// NormalizeUsername, NormalizeEmail), the client secrets, and the views
// shown of both (UserView, ClientView, never a hash or a stored secret).
//
// It reaches the database only through Store, the audit trail through
// Recorder, the throttle through Unlocker and mail through Mailer; it never
// logs or records a token or a link. It writes no HTTP answer and no CLI
// output, and never imports idp or a handler package: callers word its
// errors for their users.
package manage

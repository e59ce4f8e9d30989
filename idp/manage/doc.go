// Package manage holds the operations on users and clients that the CLI
// (cmd/keyward) and the admin API (idp) both perform, written once: create,
// update, disable or enable, delete a user or a client, set a password, end
// sessions, unlock an account, rotate a client secret (Ops). Each records
// its audit event and ends the sessions its change must end. It also owns
// the rules of what a client and a username are (NewClient, CheckClient,
// NormalizeUsername, NormalizeEmail), the client secrets, and the views
// shown of both (UserView, ClientView, never a hash or a stored secret).
//
// It reaches the database only through Store, the audit trail through
// Recorder and the throttle through Unlocker. It writes no HTTP answer and
// no CLI output, and never imports idp or a handler package: callers word
// its errors for their users.
package manage

package storage

// PROTOCOL's copy; the other branch's wins at merge. The AuthRequest of
// issue 15's contract (storage/authz.go on branch i15-protocol), so that
// idp/login compiles and is tested against an in-test AuthRequests before
// the two branches meet. Delete this file when merging i15-protocol.

// AuthRequest is an authorization request in progress (table
// auth_requests, PROTOCOL's migration 00013).
type AuthRequest struct {
	ID                   string // 128-bit random, base64url; the pages carry it as ?req=ID
	ClientID             string
	RedirectURI          string
	Scope                List
	Audience             string
	State, Nonce         string
	CodeChallenge        string // S256 only
	ResponseMode         string // "query" or "form_post"
	Prompt               string // "", "none", "login", "consent"
	MaxAge               int64  // -1 when absent
	LoginHint            string
	CreatedAt, ExpiresAt Time
	SessionID            string // the login session this request is served under
	LoginAt              Time   // when a login completed during this request
	ConsentAt            Time   // when consent was given during this request
	Denied               bool   // the user refused consent
}

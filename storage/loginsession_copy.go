package storage

// LoginSession is a browser's login session (table login_sessions, issue 15);
// the cookie holds a random value, the row's ID is its SHA-256.
//
// PROTOCOL's copy; the other branch's wins at merge (delete this file then).
type LoginSession struct {
	ID            string `db:"id"`
	UserID        string `db:"user_id"`
	AuthTime      Time   `db:"auth_time"` // when the user last authenticated
	AMR           List   `db:"amr"`       // "pwd", "otp", "mfa"
	CreatedAt     Time   `db:"created_at"`
	LastSeenAt    Time   `db:"last_seen_at"`
	IdleExpiresAt Time   `db:"idle_expires_at"`
	ExpiresAt     Time   `db:"expires_at"`
	RevokedAt     Time   `db:"revoked_at"`
}

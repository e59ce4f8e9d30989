// Package password hashes, verifies and vets user passwords: argon2id in the PHC string
// format (RFC 9106), hashes of other systems accepted for import and upgraded on the next
// login (bcrypt, Werkzeug pbkdf2 and scrypt, Django's pbkdf2, argon2 and bcrypt formats,
// argon2i; imported.go: bounded, checked in constant time, refused by CheckStored when a
// check would cost more than the Ceiling), an
// optional pepper (WithPepper: an HMAC-SHA256 key kept outside the database, marked keyid=
// in the PHC string, PW-04), a concurrency and memory limit around every hash (AV-01), and the NIST SP 800-63B-4
// §3.1.1.2 password policy with a built-in blocklist of common passwords (PW-05 to PW-10).
//
// A Hasher normalises (NFKC) and length-checks the password before it spends any hashing
// time (AV-02), so callers hand it the password as received. Every check that does not
// match, VerifyDummy's included, lasts at least Floor, the time of a check at the Ceiling
// (the costliest stored hash it checks), so timing tells no stored hash from another or
// from an unknown user (TE-21). Policy decides whether a new password may be set; it is
// pure and does no hashing.
//
// The package stores nothing and imports nothing else of Keyward: callers own the user
// record, decide when to rehash (Verify says so) and map ErrOverloaded to 503 with
// Retry-After and *PolicyError to a 400 that names the rule.
package password

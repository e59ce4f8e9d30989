package guard

import (
	"errors"
	"net/http"
	"time"

	"github.com/keyward/keyward/idp/password"
	"github.com/keyward/keyward/idp/web"
)

// HashingError maps an error of the password hasher to the answer every
// endpoint that hashes or checks a password gives: a full hashing queue is
// 503 temporarily_unavailable with Retry-After, at least a second (AV-01);
// a password over password.MaxBytes is 400; anything else is returned as
// it is, a server error.
func HashingError(err error) error {
	if errors.Is(err, password.ErrOverloaded) {
		retry := time.Second
		var oe *password.OverloadError
		if errors.As(err, &oe) && oe.RetryAfter > retry {
			retry = oe.RetryAfter
		}
		return &web.Error{Code: web.ErrTemporarilyUnavail, Description: "the server is busy; retry shortly",
			Status: http.StatusServiceUnavailable, RetryAfter: retry, Err: err}
	}
	if errors.Is(err, password.ErrTooLong) {
		return web.BadRequest("password is too long")
	}
	return err
}

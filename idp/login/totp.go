package login

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"image/png"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/ui"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage"
)

// TOTP parameters (RFC 6238 defaults every authenticator app supports).
const (
	totpPeriod = 30
	totpDigits = otp.DigitsSix
	// totpSkew is how many steps either side of now a code is accepted in.
	totpSkew = 1
	// enrolmentTTL is how long a started enrolment is reused on reload.
	enrolmentTTL = 10 * time.Minute
	// recoveryCodes is how many recovery codes an enrolment gives.
	recoveryCodes = 10
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// seal protects a TOTP secret at rest: "v1:" and AES-256-GCM of it (nonce
// first, the user id as additional data, so a sealed secret copied to
// another user's row does not open) when a key is configured, else
// "plain:" and the secret.
func (h *Handler) seal(userID, secret string) (string, error) {
	if h.sealKey == nil {
		return "plain:" + secret, nil
	}
	gcm, err := h.gcm()
	if err != nil {
		return "", err
	}
	nonce := make([]byte, gcm.NonceSize())
	rand.Read(nonce)
	ct := gcm.Seal(nonce, nonce, []byte(secret), []byte(userID))
	return "v1:" + base64.RawURLEncoding.EncodeToString(ct), nil
}

func (h *Handler) open(userID, sealed string) (string, error) {
	if s, ok := strings.CutPrefix(sealed, "plain:"); ok {
		return s, nil
	}
	s, ok := strings.CutPrefix(sealed, "v1:")
	if !ok || h.sealKey == nil {
		return "", errors.New("totp secret: sealed with a key this server does not have")
	}
	gcm, err := h.gcm()
	if err != nil {
		return "", err
	}
	ct, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(ct) < gcm.NonceSize() {
		return "", errors.New("totp secret: malformed")
	}
	pt, err := gcm.Open(nil, ct[:gcm.NonceSize()], ct[gcm.NonceSize():], []byte(userID))
	if err != nil {
		return "", errors.New("totp secret: does not open with this server's key")
	}
	return string(pt), nil
}

func (h *Handler) gcm() (cipher.AEAD, error) {
	block, err := aes.NewCipher(h.sealKey)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// totpEnrolled reports whether the user has a confirmed TOTP credential.
func (h *Handler) totpEnrolled(r *http.Request, userID string) (bool, error) {
	c, err := h.cfg.Store.TOTPCredential(r.Context(), userID)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return !c.ConfirmedAt.IsZero(), nil
}

// matchStep returns the time step within the skew of now whose code is
// code, or ok=false.
func matchStep(secret, code string, now time.Time) (int64, bool) {
	if len(code) != 6 {
		return 0, false
	}
	cur := now.Unix() / totpPeriod
	found, step := 0, int64(0)
	for s := cur - totpSkew; s <= cur+totpSkew; s++ {
		want, err := totp.GenerateCodeCustom(secret, time.Unix(s*totpPeriod, 0),
			totp.ValidateOpts{Period: totpPeriod, Digits: totpDigits, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			return 0, false
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 && found == 0 {
			found, step = 1, s
		}
	}
	return step, found == 1
}

// normalizeCode removes the spaces and dashes people type in codes and
// lower-cases it.
func normalizeCode(code string) string {
	return strings.ToLower(strings.NewReplacer(" ", "", "-", "").Replace(strings.TrimSpace(code)))
}

func hashRecovery(code string) string {
	sum := sha256.Sum256([]byte("keyward recovery v1\x00" + normalizeCode(code)))
	return hex.EncodeToString(sum[:])
}

// checkSecondFactor checks code, a TOTP code or a recovery code, for the
// user: throttled (a refused attempt is a failure), a TOTP time step is
// accepted once, a recovery code once. It returns the session's amr.
func (h *Handler) checkSecondFactor(r *http.Request, userID, code string) (bool, []string, error) {
	ctx := r.Context()
	account, ip := "totp:"+userID, clientIP(r)
	dec, err := h.cfg.Throttle.CheckLogin(ctx, account, ip)
	if err != nil {
		return false, nil, err
	}
	// fail records a failed attempt: a guess (counted) or one the
	// throttle refused (not counted: it guessed nothing). A Throttle
	// verdict, or a failure under VerifyFirst, is the 429 (dec.Err); a
	// Deny is answered as a wrong code.
	fail := func(reason string) (bool, []string, error) {
		h.cfg.Audit.Record(ctx, audit.Event{Type: audit.MFAFailed, Actor: userID, Subject: userID, Reason: reason,
			UserAgent: r.UserAgent()})
		if dec.Allowed() {
			if err := h.cfg.Throttle.LoginFailed(ctx, account, ip); err != nil {
				return false, nil, err
			}
		}
		if err := dec.Err(); err != nil {
			return false, nil, err
		}
		return false, nil, nil
	}
	if !dec.Allowed() {
		// Unlike a password, a refused code is answered 429 (Throttle or
		// Deny alike): whoever is here knows the password already, and
		// telling them to wait leaks nothing the throttle protects.
		h.cfg.Audit.Record(ctx, audit.Event{Type: audit.MFAFailed, Actor: userID, Subject: userID, Reason: "throttled",
			UserAgent: r.UserAgent()})
		return false, nil, &web.Error{Code: web.ErrTemporarilyUnavail, Description: "too many failed attempts; retry later",
			Status: http.StatusTooManyRequests, RetryAfter: max(dec.RetryAfter, time.Second)}
	}
	cred, err := h.cfg.Store.TOTPCredential(ctx, userID)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && cred.ConfirmedAt.IsZero()) {
		return fail("no_credential") // reset by an admin since the password step
	}
	if err != nil {
		return false, nil, err
	}
	code = normalizeCode(code)
	if len(code) == 6 {
		secret, err := h.open(userID, cred.Secret)
		if err != nil {
			return false, nil, err
		}
		step, ok := matchStep(secret, code, h.now())
		if !ok {
			return fail("bad_code")
		}
		fresh, err := h.cfg.Store.UseTOTPStep(ctx, userID, step)
		if err != nil {
			return false, nil, err
		}
		if !fresh {
			return fail("replay")
		}
		if err := h.cfg.Throttle.LoginSucceeded(ctx, account, ip); err != nil {
			return false, nil, err
		}
		return true, []string{"pwd", "otp", "mfa"}, nil
	}
	if code == "" || len(code) > 64 {
		return fail("bad_code")
	}
	used, err := h.cfg.Store.UseRecoveryCode(ctx, userID, hashRecovery(code))
	if err != nil {
		return false, nil, err
	}
	if !used {
		return fail("bad_recovery_code")
	}
	h.cfg.Audit.Record(ctx, audit.Event{Type: audit.RecoveryCodeUsed, Actor: userID, Subject: userID, UserAgent: r.UserAgent()})
	if err := h.cfg.Throttle.LoginSucceeded(ctx, account, ip); err != nil {
		return false, nil, err
	}
	return true, []string{"pwd", "mfa"}, nil
}

// clientIP is the request's client address as the server's middleware
// found it, else the connection's.
func clientIP(r *http.Request) string {
	if ip := web.ClientIP(r.Context()); ip != "" {
		return ip
	}
	host := r.RemoteAddr
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		host = strings.Trim(host[:i], "[]")
	}
	return host
}

// enrolForm is the data of the totp_enrol page.
type enrolForm struct {
	Secret, QR string // the secret in groups of four, for typing; the QR code's path
}

// codesData is the data of the totp_codes page.
type codesData struct{ Codes []string }

// signedIn returns the session of r, or sends the browser to /login.
func (h *Handler) signedIn(w http.ResponseWriter, r *http.Request) (storage.LoginSession, bool) {
	s, ok, err := h.Session(r)
	if err != nil {
		h.pages.Fail(w, r, err)
		return s, false
	}
	if !ok {
		redirect(w, r, LoginPath, "")
		return s, false
	}
	return s, true
}

// pendingSecret returns the user's unconfirmed TOTP secret, starting an
// enrolment when there is none or it is older than enrolmentTTL. A
// confirmed credential is ok=false.
func (h *Handler) pendingSecret(r *http.Request, u storage.User, start bool) (string, bool, error) {
	ctx := r.Context()
	c, err := h.cfg.Store.TOTPCredential(ctx, u.ID)
	switch {
	case err == nil && !c.ConfirmedAt.IsZero():
		return "", false, nil
	case err == nil && (!start || h.now().Sub(c.CreatedAt.Time) < enrolmentTTL):
		s, err := h.open(u.ID, c.Secret)
		return s, err == nil, err
	case err != nil && !errors.Is(err, storage.ErrNotFound):
		return "", false, err
	case !start:
		return "", false, nil
	}
	raw := make([]byte, 20)
	rand.Read(raw)
	secret := b32.EncodeToString(raw)
	sealed, err := h.seal(u.ID, secret)
	if err != nil {
		return "", false, err
	}
	if err := h.cfg.Store.StartTOTPEnrolment(ctx, storage.TOTPCredential{UserID: u.ID, Secret: sealed,
		CreatedAt: storage.At(h.now())}); err != nil {
		if errors.Is(err, storage.ErrConflict) {
			return "", false, nil
		}
		return "", false, err
	}
	return secret, true, nil
}

func (h *Handler) enrolView(w http.ResponseWriter, r *http.Request, secret string) (*ui.View, error) {
	v := h.pages.NewView(w, r, "totp.enrol.title")
	var groups []string
	for i := 0; i < len(secret); i += 4 {
		groups = append(groups, secret[i:min(i+4, len(secret))])
	}
	v.Data = enrolForm{Secret: strings.Join(groups, " "), QR: TOTPQRPath}
	return v, nil
}

// ShowTOTPEnrol is GET /account/totp: for a signed-in user without TOTP,
// a QR code and the secret to add to an authenticator app, and a field for
// the first code. Reloading within ten minutes shows the same secret.
func (h *Handler) ShowTOTPEnrol() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, ok := h.signedIn(w, r)
		if !ok {
			return
		}
		u, err := h.cfg.Store.User(r.Context(), s.UserID)
		if err != nil {
			h.pages.Fail(w, r, err)
			return
		}
		secret, ok, err := h.pendingSecret(r, u, true)
		if err != nil {
			h.pages.Fail(w, r, err)
			return
		}
		if !ok {
			h.pages.Message(w, r, http.StatusOK, "totp.enrolled.title", "totp.enrolled.body")
			return
		}
		v, _ := h.enrolView(w, r, secret)
		h.pages.Render(w, r, http.StatusOK, "totp_enrol", v)
	})
}

// TOTPQR is GET /account/totp/qr.png: the QR code of the signed-in user's
// pending enrolment, a PNG from this origin (the page CSP allows images
// from 'self' only).
func (h *Handler) TOTPQR() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, ok, err := h.Session(r)
		if err != nil || !ok {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		u, err := h.cfg.Store.User(r.Context(), s.UserID)
		if err != nil {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		secret, ok, err := h.pendingSecret(r, u, false)
		if err != nil || !ok {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		key, err := otp.NewKeyFromURL(h.otpauthURL(u.Username, secret))
		if err != nil {
			h.cfg.Log.ErrorContext(r.Context(), "totp qr code", "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		img, err := key.Image(240, 240)
		if err != nil {
			h.cfg.Log.ErrorContext(r.Context(), "totp qr code", "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		var buf bytes.Buffer
		png.Encode(&buf, img)
		w.Header().Set("Content-Type", "image/png")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
		w.Write(buf.Bytes())
	})
}

func (h *Handler) otpauthURL(username, secret string) string {
	q := fmt.Sprintf("secret=%s&issuer=%s&algorithm=SHA1&digits=6&period=%d",
		secret, url.PathEscape(h.cfg.Issuer), totpPeriod)
	return "otpauth://totp/" + url.PathEscape(h.cfg.Issuer) + ":" + url.PathEscape(username) + "?" + q
}

// SubmitTOTPEnrol is the form POST of /account/totp: a correct code from
// the app confirms the enrolment and shows the ten recovery codes, once.
func (h *Handler) SubmitTOTPEnrol() http.Handler {
	return h.pages.Protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, ok := h.signedIn(w, r)
		if !ok {
			return
		}
		ctx := r.Context()
		u, err := h.cfg.Store.User(ctx, s.UserID)
		if err != nil {
			h.pages.Fail(w, r, err)
			return
		}
		secret, ok, err := h.pendingSecret(r, u, false)
		if err != nil {
			h.pages.Fail(w, r, err)
			return
		}
		if !ok {
			redirect(w, r, TOTPEnrolPath, "")
			return
		}
		code, _ := ui.FormValue(r, fieldCode)
		step, match := matchStep(secret, normalizeCode(code), h.now())
		if !match {
			v, _ := h.enrolView(w, r, secret)
			v.Error, v.ErrorFor = v.T("totp.error.failed"), fieldCode
			h.pages.Render(w, r, http.StatusBadRequest, "totp_enrol", v)
			return
		}
		codes := make([]string, recoveryCodes)
		hashes := make([]string, recoveryCodes)
		for i := range codes {
			b := make([]byte, 10) // 80 bits
			rand.Read(b)
			c := strings.ToLower(b32.EncodeToString(b)) // 16 characters
			codes[i] = c[:4] + "-" + c[4:8] + "-" + c[8:12] + "-" + c[12:]
			hashes[i] = hashRecovery(codes[i])
		}
		if err := h.cfg.Store.ConfirmTOTP(ctx, u.ID, step, hashes, h.now()); err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				redirect(w, r, TOTPEnrolPath, "")
				return
			}
			h.pages.Fail(w, r, err)
			return
		}
		h.cfg.Audit.Record(ctx, audit.Event{Type: audit.MFAEnrolled, Actor: u.ID, Subject: u.ID, UserAgent: r.UserAgent()})
		v := h.pages.NewView(w, r, "totp.codes.title")
		v.Data = codesData{Codes: codes}
		h.pages.Render(w, r, http.StatusOK, "totp_codes", v)
	}))
}

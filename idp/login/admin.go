package login

import (
	"errors"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gorilla/mux"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage"
)

// The admin API's routes for a user's browser sign-in (docs/login.md).
// Each has admin.Handler's signature: the assembly wraps it with
// (*admin.API).Authorize, which authorizes the caller and writes the error
// as JSON; actor is the caller's sub, recorded as who acted.

func adminNotFound(what string) *web.Error {
	return &web.Error{Code: "not_found", Description: "no such " + what, Status: http.StatusNotFound}
}

// adminUser returns the user the route's {id} names, or the one 404.
func (h *Handler) adminUser(r *http.Request) (storage.User, error) {
	id := mux.Vars(r)["id"]
	if !routeID(id) {
		return storage.User{}, adminNotFound("user")
	}
	u, err := h.cfg.Store.User(r.Context(), id)
	if errors.Is(err, storage.ErrNotFound) {
		return u, adminNotFound("user")
	}
	return u, err
}

func routeID(id string) bool {
	return id != "" && len(id) <= 256 && utf8.ValidString(id) &&
		strings.IndexFunc(id, func(r rune) bool { return r < 0x20 || r == 0x7f }) < 0
}

// loginSessionView is a login session in the admin API: never its id
// (the hash of the cookie), only what it is.
type loginSessionView struct {
	AuthTime      time.Time `json:"auth_time"`
	AMR           []string  `json:"amr"`
	CreatedAt     time.Time `json:"created_at"`
	LastSeenAt    time.Time `json:"last_seen_at"`
	IdleExpiresAt time.Time `json:"idle_expires_at"`
	ExpiresAt     time.Time `json:"expires_at"`
}

// ListLoginSessions serves GET /admin/v1/users/{id}/login-sessions: the
// user's live browser sessions.
func (h *Handler) ListLoginSessions(w http.ResponseWriter, r *http.Request, _ string) error {
	u, err := h.adminUser(r)
	if err != nil {
		return err
	}
	ss, err := h.cfg.Store.LoginSessions(r.Context(), u.ID, h.now())
	if err != nil {
		return err
	}
	views := make([]loginSessionView, len(ss))
	for i, s := range ss {
		amr := []string(s.AMR)
		if amr == nil {
			amr = []string{}
		}
		views[i] = loginSessionView{AuthTime: s.AuthTime.Time, AMR: amr, CreatedAt: s.CreatedAt.Time,
			LastSeenAt: s.LastSeenAt.Time, IdleExpiresAt: s.IdleExpiresAt.Time, ExpiresAt: s.ExpiresAt.Time}
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"login_sessions": views})
	return nil
}

// RevokeLoginSessions serves DELETE /admin/v1/users/{id}/login-sessions:
// it ends every browser session of the user and says how many.
func (h *Handler) RevokeLoginSessions(w http.ResponseWriter, r *http.Request, actor string) error {
	u, err := h.adminUser(r)
	if err != nil {
		return err
	}
	n, err := h.cfg.Store.RevokeUserLoginSessions(r.Context(), u.ID, h.now())
	if err != nil {
		return err
	}
	if n > 0 {
		h.cfg.Audit.Record(r.Context(), audit.Event{Type: audit.SessionEnded, Actor: actor, Subject: u.ID,
			Reason: "admin", UserAgent: r.UserAgent()})
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"id": u.ID, "revoked": n})
	return nil
}

type consentView struct {
	ClientID  string    `json:"client_id"`
	Scope     string    `json:"scope"`
	GrantedAt time.Time `json:"granted_at"`
}

// ListConsents serves GET /admin/v1/users/{id}/consents.
func (h *Handler) ListConsents(w http.ResponseWriter, r *http.Request, _ string) error {
	u, err := h.adminUser(r)
	if err != nil {
		return err
	}
	cs, err := h.cfg.Store.Consents(r.Context(), u.ID)
	if err != nil {
		return err
	}
	views := make([]consentView, len(cs))
	for i, c := range cs {
		views[i] = consentView{ClientID: c.ClientID, Scope: strings.Join(c.Scope, " "), GrantedAt: c.GrantedAt.Time}
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"consents": views})
	return nil
}

// RevokeConsent serves DELETE /admin/v1/users/{id}/consents/{client_id}:
// the client must ask the user again. 204; 404 when there was none.
func (h *Handler) RevokeConsent(w http.ResponseWriter, r *http.Request, actor string) error {
	u, err := h.adminUser(r)
	if err != nil {
		return err
	}
	cid := mux.Vars(r)["client_id"]
	if !routeID(cid) {
		return adminNotFound("consent")
	}
	if err := h.cfg.Store.RevokeConsent(r.Context(), u.ID, cid); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return adminNotFound("consent")
		}
		return err
	}
	h.cfg.Audit.Record(r.Context(), audit.Event{Type: audit.ConsentRevoked, Actor: actor, Subject: u.ID, ClientID: cid,
		UserAgent: r.UserAgent()})
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ResetTOTP serves DELETE /admin/v1/users/{id}/totp: the user's TOTP and
// recovery codes are removed (a lost phone), and their browser sessions
// end. 204; 404 when the user had none.
func (h *Handler) ResetTOTP(w http.ResponseWriter, r *http.Request, actor string) error {
	u, err := h.adminUser(r)
	if err != nil {
		return err
	}
	had, err := h.cfg.Store.DeleteTOTP(r.Context(), u.ID)
	if err != nil {
		return err
	}
	if !had {
		return adminNotFound("totp credential")
	}
	if _, err := h.cfg.Store.RevokeUserLoginSessions(r.Context(), u.ID, h.now()); err != nil {
		return err
	}
	h.cfg.Audit.Record(r.Context(), audit.Event{Type: audit.MFAReset, Actor: actor, Subject: u.ID, UserAgent: r.UserAgent()})
	w.WriteHeader(http.StatusNoContent)
	return nil
}

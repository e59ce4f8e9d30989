package admin

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/keys"
	"github.com/keyward/keyward/storage"
)

// Audit serves GET /admin/v1/audit?user=&type=&client=&since=&before_id=&limit=:
// events newest first. user is the subject (a user id, client id or kid);
// since is an RFC 3339 time; before_id pages on from the last id returned.
// An unknown type or a bad time is 400.
func (a *API) Audit(w http.ResponseWriter, r *http.Request, _ string) error {
	q, err := query(r, "user", "type", "client", "since", "before_id", "limit")
	if err != nil {
		return err
	}
	f := storage.AuditFilter{Subject: q.Get("user"), Type: q.Get("type"), ClientID: q.Get("client")}
	if f.Type != "" && !audit.IsType(f.Type) {
		return web.BadRequest("type is not a known event type")
	}
	if v := q.Get("since"); v != "" {
		if f.Since, err = time.Parse(time.RFC3339, v); err != nil {
			return web.BadRequest("since must be an RFC 3339 time, as 2026-01-02T15:04:05Z")
		}
	}
	if v := q.Get("before_id"); v != "" {
		if f.BeforeID, err = strconv.ParseInt(v, 10, 64); err != nil || f.BeforeID < 1 {
			return web.BadRequest("before_id must be a positive integer")
		}
	}
	if f.Limit, err = intParam(q, "limit", storage.DefaultAuditLimit, 1, storage.MaxAuditLimit); err != nil {
		return err
	}
	a.audit.Flush() // this replica's queued rows are listed too
	evs, err := a.store.AuditEvents(r.Context(), f)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"events": audit.Views(evs)})
	return nil
}

// keyRotator returns the configured KeyRotator, or the 404 of a server
// without one.
func (a *API) keyRotator() (KeyRotator, error) {
	if a.keys == nil {
		return nil, &web.Error{Code: "not_found", Description: "key management is not enabled on this server", Status: http.StatusNotFound}
	}
	return a.keys, nil
}

// ListKeys serves GET /admin/v1/keys: the loaded key set, oldest first.
func (a *API) ListKeys(w http.ResponseWriter, r *http.Request, _ string) error {
	kr, err := a.keyRotator()
	if err != nil {
		return err
	}
	if _, err := query(r); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"keys": kr.Keys()})
	return nil
}

// keyRotate is the optional body of POST /admin/v1/keys/rotate.
type keyRotate struct {
	Force bool `json:"force"`
}

// RotateKey serves POST /admin/v1/keys/rotate, as `keyward keys
// rotate` does: 200 when the next key signs now; 202 when it may not sign
// yet because cached JWKS documents may not know it, with the rotation
// scheduled for the earliest safe moment ("scheduled", "at"), which the
// servers carry out. {"force":true} rotates now regardless.
func (a *API) RotateKey(w http.ResponseWriter, r *http.Request, actor string) error {
	kr, err := a.keyRotator()
	if err != nil {
		return err
	}
	var b keyRotate
	if err := decodeJSON(r, []string{"force"}, &b, true); err != nil {
		return err
	}
	rot, err := kr.Rotate(r.Context(), b.Force)
	if err != nil {
		return err
	}
	at := rot.At.UTC().Truncate(time.Millisecond)
	body := map[string]any{"retired": rot.Retired, "active": rot.Activated, "next": rot.Next, "forced": rot.Forced,
		"scheduled": rot.Scheduled, "at": at}
	if rot.Scheduled {
		a.record(r, actor, audit.Event{Type: audit.KeyRotationScheduled, Subject: rot.Activated, Reason: "at " + at.Format(time.RFC3339)})
		web.WriteJSON(w, http.StatusAccepted, body)
		return nil
	}
	reason := "retired " + rot.Retired
	if rot.Forced {
		reason = "forced; " + reason
	}
	a.record(r, actor, audit.Event{Type: audit.KeyRotated, Subject: rot.Activated, Reason: reason})
	web.WriteJSON(w, http.StatusOK, body)
	return nil
}

// RevokeKey serves POST /admin/v1/keys/{kid}/revoke: emergency
// removal from the JWKS, as `keyward keys revoke` does. An unknown kid is
// 404.
func (a *API) RevokeKey(w http.ResponseWriter, r *http.Request, actor string) error {
	kr, err := a.keyRotator()
	if err != nil {
		return err
	}
	if err := noBody(r); err != nil {
		return err
	}
	kid, err := pathID(r, "kid", "key")
	if err != nil {
		return err
	}
	rev, err := kr.Revoke(r.Context(), kid)
	if errors.Is(err, keys.ErrUnknownKey) {
		return notFound("key")
	}
	if err != nil {
		return err
	}
	a.record(r, actor, audit.Event{Type: audit.KeyRevoked, Subject: rev.KID, Reason: "was " + rev.State})
	web.WriteJSON(w, http.StatusOK, map[string]any{"revoked": rev.KID, "state": rev.State, "active": rev.Active, "next": rev.Next})
	return nil
}

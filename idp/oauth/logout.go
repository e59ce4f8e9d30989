package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"

	"github.com/go-jose/go-jose/v4"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage"
)

// hintAlgorithms are the algorithms Keyward's keys sign with; each hint's
// alg must also be the one its key is published for.
var hintAlgorithms = []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA}

// hintClaims are what logout reads of an id_token_hint.
type hintClaims struct {
	Issuer   string `json:"iss"`
	Subject  string `json:"sub"`
	Audience string `json:"aud"`
}

// idTokenHint checks that raw is an ID token this server signed (RS256,
// ES256 or EdDSA, the alg its published key is bound to, typ JWT, our iss) and returns its claims. Expiry does not
// matter: OIDC RP-Initiated Logout §2 accepts an expired hint.
func (s *Provider) idTokenHint(ctx context.Context, raw string) (hintClaims, bool) {
	if raw == "" || len(raw) > 8192 {
		return hintClaims{}, false
	}
	jws, err := jose.ParseSigned(raw, hintAlgorithms)
	if err != nil || len(jws.Signatures) != 1 {
		return hintClaims{}, false
	}
	hdr := jws.Signatures[0].Header
	if typ, _ := hdr.ExtraHeaders[jose.HeaderType].(string); typ != typIDToken {
		return hintClaims{}, false
	}
	set, err := s.publishedKeys(ctx)
	if err != nil {
		return hintClaims{}, false
	}
	keys := set.Key(hdr.KeyID)
	if len(keys) != 1 || keys[0].Algorithm != hdr.Algorithm {
		return hintClaims{}, false
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		return hintClaims{}, false
	}
	var c hintClaims
	if json.Unmarshal(payload, &c) != nil || c.Issuer != s.cfg.Issuer || c.Subject == "" || c.Audience == "" {
		return hintClaims{}, false
	}
	return c, true
}

// Logout serves GET and POST /oauth2/logout, the end_session_endpoint (OIDC
// RP-Initiated Logout 1.0). A valid id_token_hint whose subject is the
// browser's user ends the session at once; the browser then goes to the
// hint's client's post_logout_redirect_uri when it is registered for that
// client (with state), else to the signed-out page. Without a usable hint,
// the logout page asks the user to confirm (a CSRF-protected form), so a
// third-party link cannot sign anyone out.
func (s *Provider) Logout(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	web.NoStore(w)
	p, err := authParams(r)
	if err != nil {
		http.Redirect(w, r, LogoutPagePath, http.StatusFound)
		return
	}
	hint, ok := s.idTokenHint(ctx, p["id_token_hint"])
	if !ok || (p["client_id"] != "" && p["client_id"] != hint.Audience) {
		http.Redirect(w, r, LogoutPagePath, http.StatusFound)
		return
	}
	sess, has, err := s.cfg.Interaction.Session(r)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	if has && sess.UserID != hint.Subject {
		http.Redirect(w, r, LogoutPagePath, http.StatusFound)
		return
	}
	if has {
		// EndSession records the audit event of the session it ends.
		if _, err := s.cfg.Interaction.EndSession(w, r); err != nil {
			s.serverError(w, r, err)
			return
		}
		s.log.InfoContext(ctx, "rp-initiated logout", "client_id", hint.Audience, "sub", hint.Subject)
	}
	target := LogoutDonePath
	if pl := p["post_logout_redirect_uri"]; pl != "" {
		c, err := s.cfg.Store.Client(ctx, hint.Audience)
		switch {
		case err != nil && !errors.Is(err, storage.ErrNotFound):
			s.serverError(w, r, err)
			return
		case err == nil && !c.Disabled && c.PostLogoutRedirectURIs.Has(pl):
			if u, perr := url.Parse(pl); perr == nil {
				if st := p["state"]; st != "" && len(st) <= maxStateBytes {
					q := u.Query()
					q.Set("state", st)
					u.RawQuery = q.Encode()
				}
				target = u.String()
			}
		}
	}
	w.Header().Set("Location", target)
	w.WriteHeader(http.StatusFound)
}

package admin

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage"
)

// client finds the client named by the route, or the one 404.
func (a *API) client(r *http.Request) (storage.Client, error) {
	id, err := pathID(r, "id", "client")
	if err != nil {
		return storage.Client{}, err
	}
	c, err := a.store.Client(r.Context(), id)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.Client{}, notFound("client")
	}
	return c, err
}

// ListClients serves GET /admin/v1/clients, ordered by id.
func (a *API) ListClients(w http.ResponseWriter, r *http.Request, _ string) error {
	if _, err := query(r); err != nil {
		return err
	}
	cs, err := a.store.Clients(r.Context())
	if err != nil {
		return err
	}
	views := make([]manage.ClientView, len(cs))
	for i, c := range cs {
		views[i] = manage.ViewClient(c, "")
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"clients": views})
	return nil
}

// GetClient serves GET /admin/v1/clients/{id}.
func (a *API) GetClient(w http.ResponseWriter, r *http.Request, _ string) error {
	c, err := a.client(r)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, manage.ViewClient(c, ""))
	return nil
}

// clientPatch is the body of PATCH /admin/v1/clients/{id}. A list given
// replaces the registered one; [] empties it.
type clientPatch struct {
	Disabled   *bool     `json:"disabled"`
	Name       *string   `json:"name"`
	GrantTypes *[]string `json:"grant_types"`
	Scopes     *[]string `json:"scopes"`
	Audiences  *[]string `json:"audiences"`
	// IntrospectAudiences replaces the resource-server role.
	IntrospectAudiences *[]string `json:"introspect_audiences"`
	// The authorization endpoint's registration (issue 15).
	RedirectURIs           *[]string `json:"redirect_uris"`
	PostLogoutRedirectURIs *[]string `json:"post_logout_redirect_uris"`
	FirstParty             *bool     `json:"first_party"`
}

var clientPatchFields = []string{"disabled", "name", "grant_types", "scopes", "audiences", "introspect_audiences",
	"redirect_uris", "post_logout_redirect_uris", "first_party"}

// uniq drops repeats, keeping order. Unlike the CLI's lists, an element is
// one value: "a b" is refused by CheckClient rather than split.
func uniq(xs []string) storage.List {
	var out storage.List
	for _, x := range xs {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

// clientChanges names what changed from before to after, for the audit
// reason. Granting the password grant or the admin scope is named as such
// (TE-14, LG-03), first, so it survives the reason's length limit.
func clientChanges(before, after storage.Client) []string {
	var out []string
	if !before.GrantTypes.Has(manage.GrantPassword) && after.GrantTypes.Has(manage.GrantPassword) {
		out = append(out, "password_grant_enabled")
	} else if !slices.Equal(before.GrantTypes, after.GrantTypes) {
		out = append(out, "grant_types")
	}
	if !before.Scopes.Has(manage.ScopeAdmin) && after.Scopes.Has(manage.ScopeAdmin) {
		out = append(out, "admin_scope_granted")
	} else if !slices.Equal(before.Scopes, after.Scopes) {
		out = append(out, "scopes")
	}
	if before.Disabled != after.Disabled {
		out = append(out, map[bool]string{true: "disabled", false: "enabled"}[after.Disabled])
	}
	if before.Name != after.Name {
		out = append(out, "name")
	}
	if !slices.Equal(before.Audiences, after.Audiences) {
		out = append(out, "audiences")
	}
	if !slices.Equal(before.IntrospectAudiences, after.IntrospectAudiences) {
		out = append(out, "introspect_audiences")
	}
	if !slices.Equal(before.RedirectURIs, after.RedirectURIs) {
		out = append(out, "redirect_uris")
	}
	if !slices.Equal(before.PostLogoutRedirectURIs, after.PostLogoutRedirectURIs) {
		out = append(out, "post_logout_redirect_uris")
	}
	if before.FirstParty != after.FirstParty {
		out = append(out, "first_party")
	}
	return out
}

// PatchClient serves PATCH /admin/v1/clients/{id}. The result is
// checked by CheckClient as on creation (400 when it breaks a rule, and
// nothing changes). Disabling revokes the client's sessions for good:
// enabling it again does not revive them (CA-09).
func (a *API) PatchClient(w http.ResponseWriter, r *http.Request, actor string) error {
	ctx := r.Context()
	c, err := a.client(r)
	if err != nil {
		return err
	}
	var p clientPatch
	if err := decodeJSON(r, clientPatchFields, &p, false); err != nil {
		return err
	}
	if p == (clientPatch{}) {
		return web.BadRequest("give at least one of " + strings.Join(clientPatchFields, ", "))
	}
	by := audit.Event{Actor: actor, ClientID: c.ID, UserAgent: r.UserAgent()}
	c, _, err = a.ops.UpdateClient(ctx, by, c.ID, func(c *storage.Client) ([]string, error) {
		before := *c
		if p.Disabled != nil {
			c.Disabled = *p.Disabled
		}
		if p.Name != nil {
			c.Name = *p.Name
		}
		if p.GrantTypes != nil {
			c.GrantTypes = uniq(*p.GrantTypes)
		}
		if p.Scopes != nil {
			c.Scopes = uniq(*p.Scopes)
		}
		if p.Audiences != nil {
			c.Audiences = uniq(*p.Audiences)
		}
		if p.IntrospectAudiences != nil {
			c.IntrospectAudiences = uniq(*p.IntrospectAudiences)
		}
		if p.RedirectURIs != nil {
			c.RedirectURIs = uniq(*p.RedirectURIs)
		}
		if p.PostLogoutRedirectURIs != nil {
			c.PostLogoutRedirectURIs = uniq(*p.PostLogoutRedirectURIs)
		}
		if p.FirstParty != nil {
			c.FirstParty = *p.FirstParty
		}
		// The changes are named once the operation's CheckClient has
		// filled in the defaults, which change nothing a patch can name.
		return clientChanges(before, *c), nil
	})
	var se *manage.SessionsError
	var inv *manage.InvalidError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("client %s disabled, sessions not revoked: %w", c.ID, se.Err)
	case errors.As(err, &inv):
		return web.BadRequest(inv.Error())
	case errors.Is(err, storage.ErrNotFound):
		return notFound("client")
	case err != nil:
		return err
	}
	web.WriteJSON(w, http.StatusOK, manage.ViewClient(c, ""))
	return nil
}

// clientCreate is the body of POST /admin/v1/clients.
type clientCreate struct {
	ClientID   string   `json:"client_id"`
	Name       string   `json:"name"`
	Public     bool     `json:"public"`
	AuthMethod string   `json:"token_endpoint_auth_method"`
	GrantTypes []string `json:"grant_types"`
	Scopes     []string `json:"scopes"`
	Audiences  []string `json:"audiences"`
	// IntrospectAudiences is the resource-server role.
	IntrospectAudiences []string `json:"introspect_audiences"`
	// The authorization endpoint's registration (issue 15).
	RedirectURIs           []string `json:"redirect_uris"`
	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris"`
	FirstParty             bool     `json:"first_party"`
}

var clientCreateFields = []string{"client_id", "name", "public", "token_endpoint_auth_method", "grant_types", "scopes", "audiences",
	"introspect_audiences", "redirect_uris", "post_logout_redirect_uris", "first_party"}

// CreateClient serves POST /admin/v1/clients: it registers a client
// as `keyward clients create` does and answers 201 with the generated
// secret of a confidential client, shown this once and stored only hashed.
// A taken client_id is 409.
func (a *API) CreateClient(w http.ResponseWriter, r *http.Request, actor string) error {
	var b clientCreate
	if err := decodeJSON(r, clientCreateFields, &b, false); err != nil {
		return err
	}
	c, secret, err := manage.NewClient(manage.ClientSpec{ID: b.ClientID, Name: b.Name, Public: b.Public, AuthMethod: b.AuthMethod})
	if err != nil {
		return web.BadRequest(err.Error())
	}
	c.GrantTypes, c.Scopes, c.Audiences = uniq(b.GrantTypes), uniq(b.Scopes), uniq(b.Audiences)
	c.IntrospectAudiences = uniq(b.IntrospectAudiences)
	c.RedirectURIs, c.PostLogoutRedirectURIs, c.FirstParty = uniq(b.RedirectURIs), uniq(b.PostLogoutRedirectURIs), b.FirstParty
	if err := manage.CheckClient(&c); err != nil {
		return web.BadRequest(err.Error())
	}
	reason := strings.Join(clientChanges(storage.Client{}, c), " ")
	err = a.ops.CreateClient(r.Context(), audit.Event{Actor: actor, ClientID: c.ID, UserAgent: r.UserAgent()}, &c, reason)
	if errors.Is(err, storage.ErrConflict) {
		return &web.Error{Code: web.ErrInvalidRequest, Description: "the client_id is taken", Status: http.StatusConflict}
	}
	if err != nil {
		return err
	}
	v := manage.ViewClient(c, secret)
	w.Header().Set("Location", strings.TrimSuffix(a.issuer, "/")+"/admin/v1/clients/"+url.PathEscape(c.ID))
	web.WriteJSON(w, http.StatusCreated, v)
	return nil
}

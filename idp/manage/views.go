package manage

import (
	"time"

	"github.com/keyward/keyward/storage"
)

// UserView is what Keyward shows of a user, in the admin API and the CLI:
// never the password hash.
type UserView struct {
	ID                string    `json:"id"`
	Username          string    `json:"username"`
	Email             string    `json:"email"`
	EmailVerified     bool      `json:"email_verified"`
	EmailPending      string    `json:"email_pending,omitempty"` // a new address awaiting verification
	Disabled          bool      `json:"disabled"`
	CreatedAt         time.Time `json:"created_at"`
	UpdatedAt         time.Time `json:"updated_at"`
	PasswordChangedAt time.Time `json:"password_changed_at"`
}

// ViewUser is the UserView of u.
func ViewUser(u storage.User) UserView {
	return UserView{u.ID, u.Username, u.Email, u.EmailVerified, u.EmailPending, u.Disabled,
		u.CreatedAt.UTC(), u.UpdatedAt.UTC(), u.PasswordChangedAt.UTC()}
}

// ClientView is what Keyward shows of a client, in the admin API and the
// CLI: never its secret or the secret's hash (AD-06). ClientSecret is set
// only in the answer that creates or rotates the secret, the one time it is
// shown.
type ClientView struct {
	ClientID     string   `json:"client_id"`
	ClientSecret string   `json:"client_secret,omitempty"`
	Name         string   `json:"name"`
	Public       bool     `json:"public"`
	AuthMethod   string   `json:"token_endpoint_auth_method"`
	GrantTypes   []string `json:"grant_types"`
	Scopes       []string `json:"scopes"`
	Audiences    []string `json:"audiences"`
	// IntrospectAudiences is the resource-server role: the audiences whose
	// access tokens the client may introspect.
	IntrospectAudiences []string `json:"introspect_audiences"`
	// RedirectURIs and PostLogoutRedirectURIs are the authorization
	// endpoint's and RP-initiated logout's registered addresses; FirstParty
	// clients skip consent.
	RedirectURIs           []string  `json:"redirect_uris"`
	PostLogoutRedirectURIs []string  `json:"post_logout_redirect_uris"`
	FirstParty             bool      `json:"first_party"`
	Disabled               bool      `json:"disabled"`
	CreatedAt              time.Time `json:"created_at"`
	UpdatedAt              time.Time `json:"updated_at"`
}

// ViewClient is the ClientView of c, showing secret when it is not empty.
func ViewClient(c storage.Client, secret string) ClientView {
	nonNil := func(l storage.List) []string {
		if l == nil {
			return []string{}
		}
		return l
	}
	return ClientView{ClientID: c.ID, ClientSecret: secret, Name: c.Name, Public: c.Public, AuthMethod: c.AuthMethod,
		GrantTypes: nonNil(c.GrantTypes), Scopes: nonNil(c.Scopes), Audiences: nonNil(c.Audiences),
		IntrospectAudiences: nonNil(c.IntrospectAudiences), RedirectURIs: nonNil(c.RedirectURIs),
		PostLogoutRedirectURIs: nonNil(c.PostLogoutRedirectURIs), FirstParty: c.FirstParty,
		Disabled: c.Disabled, CreatedAt: c.CreatedAt.UTC(), UpdatedAt: c.UpdatedAt.UTC()}
}

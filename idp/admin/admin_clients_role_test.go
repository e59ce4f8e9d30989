package admin_test

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/idptest"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage/storagetest"
)

// TestAdminClientIntrospectRole: the admin API creates, shows, changes and
// audits the resource-server role (introspect_audiences), and CheckClient
// holds it to the rules of any client field.
func TestAdminClientIntrospectRole(t *testing.T) {
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := idptest.NewAdmin(t, b)
		ops := e.OpsToken()
		roleOf := func(t *testing.T, r idptest.Response) []string {
			t.Helper()
			var v struct {
				Role *[]string `json:"introspect_audiences"`
			}
			if err := json.Unmarshal(r.Body, &v); err != nil || v.Role == nil {
				t.Fatalf("no introspect_audiences in %s", r.Body)
			}
			return *v.Role
		}

		r := e.Call("POST", "/admin/v1/clients", ops, `{"client_id":"orders-api","introspect_audiences":["api","api"]}`)
		idptest.Want(t, r, 201, "")
		e.Bodies = e.Bodies[:len(e.Bodies)-1] // the answer that shows the secret
		e.Secrets["orders-api"] = r.Str("client_secret")
		if got := roleOf(t, r); !slices.Equal(got, []string{"api"}) {
			t.Errorf("created with introspect_audiences %q", got)
		}
		if got := roleOf(t, e.Call("GET", "/admin/v1/clients/C1", ops, "")); len(got) != 0 {
			t.Errorf("C1 has introspect_audiences %q, want []", got)
		}

		// The new resource server introspects another client's token for
		// its audience; CC, registered for rs1 only as a caller, does not.
		at := e.Login("scope", "read", "audience", "https://rs1.test").Str("access_token")
		introspect := func(caller string) any {
			return e.Do(idptest.Request{Path: "/oauth2/introspect", Auth: e.Basic(caller), Body: "token=" + url.QueryEscape(at)}).JSON["active"]
		}
		if introspect("orders-api") != false || introspect("CC") != false {
			t.Fatal("a client without the role for https://rs1.test introspected its token")
		}
		r = e.Call("PATCH", "/admin/v1/clients/orders-api", ops, `{"introspect_audiences":["api","https://rs1.test"]}`)
		idptest.Want(t, r, 200, "")
		if got := roleOf(t, r); !slices.Equal(got, []string{"api", "https://rs1.test"}) {
			t.Errorf("patched introspect_audiences %q", got)
		}
		e.WantAudit(t, audit.ClientUpdated, 1, "orders-api", "introspect_audiences")
		if introspect("orders-api") != true {
			t.Error("granted the role for https://rs1.test, still inactive")
		}
		idptest.Want(t, e.Call("PATCH", "/admin/v1/clients/orders-api", ops, `{"introspect_audiences":[]}`), 200, "")
		if introspect("orders-api") != false {
			t.Error("role emptied, still active")
		}

		// Refused like any other bad field; nothing changes.
		for _, tt := range []struct{ name, method, path, body string }{
			{"space in an audience", "PATCH", "/admin/v1/clients/orders-api", `{"introspect_audiences":["a b"]}`},
			{"quote in an audience", "POST", "/admin/v1/clients", `{"client_id":"q","introspect_audiences":["a\"b"]}`},
			{"public client", "POST", "/admin/v1/clients", `{"client_id":"spa","public":true,"grant_types":["refresh_token"],"introspect_audiences":["api"]}`},
			{"not a list", "PATCH", "/admin/v1/clients/orders-api", `{"introspect_audiences":"api"}`},
		} {
			t.Run(tt.name, func(t *testing.T) {
				idptest.Want(t, e.Call(tt.method, tt.path, ops, tt.body), 400, web.ErrInvalidRequest)
			})
		}
		if c, _ := e.DB.Client(t.Context(), "orders-api"); len(c.IntrospectAudiences) != 0 {
			t.Errorf("a refused patch changed the role: %q", c.IntrospectAudiences)
		}
		e.CheckNoSecrets(t)
	})
}

// TestAdminClientIDRule: POST /admin/v1/clients refuses, as 400 JSON
// naming the rule, any client id that HTTP Basic clients which skip
// RFC 6749 §2.3.1's form-encoding could not send (NewClient's
// CheckNewClientID, the rule `keyward clients create` follows too).
func TestAdminClientIDRule(t *testing.T) {
	e := idptest.NewAdmin(t, storagetest.Backends[0])
	ops := e.OpsToken()
	for _, id := range []string{"a+b", "a:b", "a%20b", "a b", "a/b", "é", "a@b", strings.Repeat("x", 129), ""} {
		t.Run(id, func(t *testing.T) {
			body, _ := json.Marshal(map[string]any{"client_id": id, "grant_types": []string{"client_credentials"}})
			r := e.Call("POST", "/admin/v1/clients", ops, string(body))
			idptest.Want(t, r, 400, web.ErrInvalidRequest)
			if d := r.Str("error_description"); !strings.Contains(d, "client id") {
				t.Errorf("error_description %q does not name the rule", d)
			}
			if _, err := e.DB.Client(t.Context(), id); err == nil {
				t.Errorf("client %q stored", id)
			}
		})
	}
	for _, id := range []string{"svc", "Orders-API_v2.1~x", strings.Repeat("x", 128)} {
		t.Run(id, func(t *testing.T) {
			body, _ := json.Marshal(map[string]any{"client_id": id, "grant_types": []string{"client_credentials"}})
			r := e.Call("POST", "/admin/v1/clients", ops, string(body))
			idptest.Want(t, r, 201, "")
			e.Bodies = e.Bodies[:len(e.Bodies)-1]
			// Sent unencoded in Basic, as requests and Authlib do.
			tok := e.Do(idptest.Request{Body: "grant_type=client_credentials", Auth: basicRaw(id, r.Str("client_secret"))})
			if tok.Status != 200 {
				t.Errorf("unencoded Basic: %d %s", tok.Status, tok.Body)
			}
		})
	}
}

// basicRaw is HTTP Basic without RFC 6749 §2.3.1's form-encoding, as
// requests-oauthlib, Authlib and curl -u send it.
func basicRaw(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))
}

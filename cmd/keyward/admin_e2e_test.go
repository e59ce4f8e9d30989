package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestAdminAPIThroughServe follows docs/admin.md against a real serve
// process: an ops client with only the keyward:admin scope gets a token
// and reads users and keys, and a rotation through the API is audited.
func TestAdminAPIThroughServe(t *testing.T) {
	dir := t.TempDir()
	dsn := "sqlite:" + dir + "/keyward.db"
	ops := decode[map[string]any](t, mustRun(t, dsn, "", "clients", "create", "--id", "ops", "--grant", "client_credentials",
		"--scope", "keyward:admin", "--output", "json"))
	mustRun(t, dsn, "correct horse battery staple\n", "users", "create", "--username", "alice", "--password-stdin")
	p := startProcess(t, nil, "--database", dsn, "--key-encryption-key-file", writeKEK(t, dir))

	req, _ := http.NewRequest(http.MethodPost, p.URL+"/oauth2/token", strings.NewReader(url.Values{
		"grant_type": {"client_credentials"}, "scope": {"keyward:admin"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("ops", ops["client_secret"].(string))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(res.Body).Decode(&tok)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || tok.AccessToken == "" {
		t.Fatalf("admin token: %d", res.StatusCode)
	}
	call := func(method, path string) (int, []byte) {
		req, _ := http.NewRequest(method, p.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var b json.RawMessage
		json.NewDecoder(res.Body).Decode(&b)
		return res.StatusCode, b
	}
	if code, body := call(http.MethodGet, "/admin/v1/users"); code != http.StatusOK || !strings.Contains(string(body), `"alice"`) || strings.Contains(string(body), "argon2") {
		t.Fatalf("GET users: %d %s", code, body)
	}
	if code, body := call(http.MethodPost, "/admin/v1/keys/rotate"); code != http.StatusAccepted || !strings.Contains(string(body), `"scheduled":true`) {
		t.Fatalf("rotate before the next key was published long enough: %d %s, want it scheduled", code, body)
	}
	if code, body := call(http.MethodGet, "/admin/v1/keys"); code != http.StatusOK || !strings.Contains(string(body), `"active"`) {
		t.Fatalf("GET keys: %d %s", code, body)
	}
	res, err = http.Get(p.URL + "/admin/v1/users")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("admin API without a token: %d", res.StatusCode)
	}
}

package main

import (
	"encoding/base64"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/testsupport"
	"github.com/keyward/keyward/keys"
)

// keyward runs the real command tree with args and returns what it printed
// and logged.
func keyward(t *testing.T, args ...string) (out, logs string, err error) {
	t.Helper()
	cmd := newRootCmd()
	var o, l testsupport.SyncBuffer
	cmd.SetOut(&o)
	cmd.SetErr(&l)
	cmd.SetIn(strings.NewReader(""))
	cmd.SetArgs(args)
	err = cmd.ExecuteContext(t.Context())
	return o.String(), l.String(), err
}

// TestConfigFilePrecedence: for a scalar, a list and a switch, each layer
// wins over those below it: flag > KEYWARD_* variable > file > default,
// with the file named by --config or by KEYWARD_CONFIG.
func TestConfigFilePrecedence(t *testing.T) {
	file := "access-token-ttl: 20m\ntrusted-proxies: [10.0.0.0/8, 192.0.2.7]\nregistration: true\n"
	env := map[string]string{
		"KEYWARD_ACCESS_TOKEN_TTL": "10m",
		"KEYWARD_TRUSTED_PROXIES":  "172.16.0.0/12",
		"KEYWARD_REGISTRATION":     "false",
	}
	flags := []string{"--access-token-ttl", "5m", "--trusted-proxies", "198.51.100.0/24", "--registration"}
	type want struct {
		ttl          time.Duration
		proxies      []string
		registration bool
	}
	byFile := want{20 * time.Minute, []string{"10.0.0.0/8", "192.0.2.7/32"}, true}
	byEnv := want{10 * time.Minute, []string{"172.16.0.0/12"}, false}
	byFlag := want{5 * time.Minute, []string{"198.51.100.0/24"}, true}
	tests := []struct {
		name   string
		file   string // "" for none
		viaEnv bool   // name the file in KEYWARD_CONFIG instead of --config
		env    map[string]string
		args   []string
		want   want
	}{
		{"default", "", false, nil, nil, want{15 * time.Minute, nil, false}},
		{"file over default", file, false, nil, nil, byFile},
		{"file named by KEYWARD_CONFIG", file, true, nil, nil, byFile},
		{"variable over file", file, false, env, nil, byEnv},
		{"flag over variable and file", file, false, env, flags, byFlag},
		{"flag over variable and KEYWARD_CONFIG's file", file, true, env, flags, byFlag},
		{"flag over file", file, false, nil, flags, byFlag},
		{"empty file", "# nothing yet\n", false, nil, nil, want{15 * time.Minute, nil, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Chdir(t.TempDir())
			env := map[string]string{}
			for k, v := range tt.env {
				env[k] = v
			}
			args := tt.args
			if tt.file != "" {
				path := writeFile(t, "keyward.yaml", tt.file)
				if tt.viaEnv {
					env["KEYWARD_CONFIG"] = path
				} else {
					args = append([]string{"--config", path}, args...)
				}
			}
			c, err := serveConfigOf(t, env, args...)
			if err != nil {
				t.Fatal(err)
			}
			var proxies []string
			for _, p := range c.server.TrustedProxies {
				proxies = append(proxies, p.String())
			}
			got := want{c.server.AccessTokenTTL, proxies, c.server.Registration}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestConfigFileFlagOverVariable: --config wins over KEYWARD_CONFIG, as
// any flag over its variable; the other file is not even read.
func TestConfigFileFlagOverVariable(t *testing.T) {
	t.Chdir(t.TempDir())
	flagFile := writeFile(t, "flag.yaml", "addr: 127.0.0.1:7001\n")
	envFile := writeFile(t, "env.yaml", "no-such-key: 1\n")
	c, err := serveConfigOf(t, map[string]string{"KEYWARD_CONFIG": envFile}, "--config", flagFile)
	if err != nil {
		t.Fatal(err)
	}
	if c.addr != "127.0.0.1:7001" {
		t.Errorf("addr %s, want the --config file's", c.addr)
	}
}

// TestConfigFileValues: each kind of value a file may hold lands typed,
// shared flags and serve's alike, and a file may carry the key-encryption
// key that the command line may not.
func TestConfigFileValues(t *testing.T) {
	t.Chdir(t.TempDir())
	kek := keys.NewKEK()
	path := writeFile(t, "keyward.yaml", `
issuer: https://id.example.test
trusted-proxies:
  - 10.0.0.0/8
password-grant-forbidden-scopes: [api:write]
key-size: 3072                # integer
introspect-revoke-rate: 2.5   # number
shutdown-timeout: 3s
no-migrate: true
password-min-length: 20       # a shared flag
key-encryption-key: `+base64.StdEncoding.EncodeToString(kek)+"\n")
	c, err := serveConfigOf(t, nil, "--config", path)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"issuer", c.server.Issuer, "https://id.example.test"},
		{"proxies", c.server.TrustedProxies, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
		{"tls", c.tls.mode, tlsForwarded},
		{"forbidden scopes", c.server.PasswordForbiddenScopes, []string{"api:write"}},
		{"key size", c.keyPolicy.KeySize, 3072},
		{"rate", c.server.Throttle.CallerRate, 2.5},
		{"shutdown timeout", c.shutdownTimeout, 3 * time.Second},
		{"migrate", c.migrate, false},
		{"min length", c.server.Policy.MinLength, 20},
		{"kek", c.kek.key, kek},
	}
	for _, ck := range checks {
		if !reflect.DeepEqual(ck.got, ck.want) {
			t.Errorf("%s = %v, want %v", ck.name, ck.got, ck.want)
		}
	}
}

// TestConfigFileRefused: a key no command has, a value of the wrong type,
// and a file that is no mapping are refused, naming the file, the line and
// the key, and never quoting a secret.
func TestConfigFileRefused(t *testing.T) {
	kek64 := base64.StdEncoding.EncodeToString(keys.NewKEK())
	tests := []struct {
		name    string
		content string
		env     map[string]string
		wantErr string // PATH stands for the file's path
	}{
		{"unknown key", "addr: 127.0.0.1:8080\nisuer: https://id.example.test\n", nil, `PATH:2: unknown key "isuer": no keyward command has such a flag (did you mean issuer?)`},
		{"unknown key far from any", "zzz: 1\n", nil, `PATH:1: unknown key "zzz": no keyward command has such a flag` + "\n"},
		{"key with dashes", "--issuer: https://id.example.test\n", nil, `PATH:1: unknown key "--issuer": no keyward command has such a flag (write issuer, without the dashes)`},
		{"help is no key", "help: true\n", nil, `PATH:1: unknown key "help"`},
		{"file names a file", "config: other.yaml\n", nil, `PATH:1: key "config": a configuration file cannot name another`},
		{"key twice", "addr: a:1\naddr: b:2\n", nil, `PATH:2: key "addr" is given twice (first on line 1)`},
		{"duration without a unit", "access-token-ttl: 15\n", nil, `PATH:1: access-token-ttl: "15" is not a valid duration: time: missing unit in duration "15"`},
		{"list for one value", "addr: [a, b]\n", nil, "PATH:1: addr: must be one string value, not a list or a mapping"},
		{"one value for a list", "trusted-proxies: 10.0.0.0/8\n", nil, "PATH:1: trusted-proxies: must be a YAML list, such as [a, b]"},
		{"list of lists", "trusted-proxies: [[10.0.0.0/8]]\n", nil, "PATH:1: trusted-proxies: must be a list of plain values"},
		{"yes for a switch", "registration: yes\n", nil, "PATH:1: registration: must be true or false"},
		{"quoted switch", `registration: "true"` + "\n", nil, "PATH:1: registration: must be true or false"},
		{"word for a number", "key-size: big\n", nil, `PATH:1: key-size: "big" is not a valid integer`},
		{"bounded number", "login-free-failures: 100\n", nil, `PATH:1: login-free-failures: "100" is not a valid integer: 100 is not between 1 and 99`},
		{"no value", "issuer:\n", nil, "PATH:1: issuer: has no value (give a string, or leave the key out)"},
		{"secret of the wrong kind", "key-encryption-key: [" + kek64 + "]\n", nil, "PATH:1: key-encryption-key: must be one string value"},
		{"not a mapping", "- addr\n", nil, "PATH:1: a configuration file is a mapping of flag names to values"},
		{"two documents", "addr: a:1\n---\naddr: b:2\n", nil, "PATH:2: a configuration file holds one YAML document, not several"},
		{"not YAML", "addr: [\n", nil, "--config PATH: yaml: line 1"},
		{"checked after the file", "access-token-ttl: 2h\n", nil, "--access-token-ttl must be between 30s and 1h"},
		{"key not base64", "key-encryption-key: " + kek64[:20] + "!\n", nil, "key-encryption-key in PATH: key-encryption key is not valid base64"},
		{"key in the file and a key file", "key-encryption-key: " + kek64 + "\n", map[string]string{"KEYWARD_KEY_ENCRYPTION_KEY_FILE": "kek"}, "set only one of key-encryption-key in PATH and --key-encryption-key-file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Chdir(t.TempDir())
			path := writeFile(t, "keyward.yaml", tt.content)
			c, err := serveConfigOf(t, tt.env, "--config", path)
			want := strings.ReplaceAll(tt.wantErr, "PATH", path)
			if err == nil || !strings.Contains(err.Error()+"\n", want) { // \n: the end of the message
				t.Fatalf("err = %v, want one containing %q", err, want)
			}
			if c != nil {
				t.Error("serve ran after a refused file")
			}
			if strings.Contains(err.Error(), kek64[:20]) {
				t.Error("the error repeats the key-encryption key")
			}
		})
	}

	t.Run("missing file", func(t *testing.T) {
		_, err := serveConfigOf(t, nil, "--config", filepath.Join(t.TempDir(), "none.yaml"))
		if err == nil || !strings.Contains(err.Error(), "--config: open ") {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestConfigFileServesOperatorCommands: one file holds serve's keys and
// the shared ones; users list takes the database from it and skips the
// keys it has no flag for, but a key no command has is refused there too.
func TestConfigFileServesOperatorCommands(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	db := filepath.Join(dir, "from-file.db")
	path := writeFile(t, "keyward.yaml", `
database: sqlite:`+db+`
issuer: https://id.example.test
addr: 0.0.0.0:8080
trusted-proxies: [10.0.0.0/8]
registration: true
access-token-ttl: 10m
`)
	out, _, err := keyward(t, "users", "list", "-o", "json", "--config", path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) != "[]" {
		t.Errorf("users list printed %q", out)
	}
	if _, err := os.Stat(db); err != nil {
		t.Errorf("users list did not use the file's database: %v", err)
	}

	bad := writeFile(t, "bad.yaml", "database: sqlite:"+db+"\nissuer: https://id.example.test\nisuer: typo\n")
	_, _, err = keyward(t, "users", "list", "--config", bad)
	if err == nil || !strings.Contains(err.Error(), bad+`:3: unknown key "isuer"`) {
		t.Fatalf("err = %v, want the unknown key refused", err)
	}
}

// TestConfigFileSecretWarning: keyward warns when a file holding a secret
// is open to other users, and only then.
func TestConfigFileSecretWarning(t *testing.T) {
	kek64 := base64.StdEncoding.EncodeToString(keys.NewKEK())
	tests := []struct {
		name     string
		content  string
		mode     os.FileMode
		wantWarn string // "" for none
	}{
		{"key readable by others", "key-encryption-key: " + kek64 + "\n", 0o644, "the configuration file holding key-encryption-key is open to other users"},
		{"database password readable by the group", "database: postgres://kw:pw@127.0.0.1:1/kw\n", 0o640, "the configuration file holding database is open"},
		{"key kept private", "key-encryption-key: " + kek64 + "\n", 0o600, ""},
		{"no secret", "database: postgres://kw@127.0.0.1:1/kw\nissuer: https://id.example.test\n", 0o644, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Chdir(t.TempDir())
			path := writeFile(t, "keyward.yaml", tt.content)
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			_, logs, err := keyward(t, "config", "print", "--config", path)
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantWarn == "" && strings.Contains(logs, "configuration file") {
				t.Errorf("unwanted warning: %s", logs)
			}
			if tt.wantWarn != "" && !strings.Contains(logs, tt.wantWarn) {
				t.Errorf("logs %q, want a warning %q", logs, tt.wantWarn)
			}
			if strings.Contains(logs, kek64) || strings.Contains(logs, ":pw@") {
				t.Error("the warning repeats a secret")
			}
		})
	}
}

// TestConfigFileRefusesOptions: an operator command's own option, such as
// keys rotate's --force, is refused in a file, where it would act on every
// run of that command.
func TestConfigFileRefusesOptions(t *testing.T) {
	path := writeFile(t, "keyward.yaml", "database: sqlite:x.db\nforce: true\n")
	root := newRootCmd()
	root.SetOut(io.Discard)
	root.SetErr(io.Discard)
	root.SetArgs([]string{"version", "--config", path})
	err := root.ExecuteContext(t.Context())
	want := path + `:2: key "force" is an option of one run of keyward keys rotate, for its command line, not a setting a file may hold`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want one containing %q", err, want)
	}
}

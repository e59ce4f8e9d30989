package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// The deployment files at the top of the repository, checked against the
// binary's real commands and flags: no container engine runs in CI, so a
// misspelt flag would otherwise surface only when an operator starts it.
const (
	composePath    = "../../docker-compose.yml"
	caddyfilePath  = "../../deploy/Caddyfile"
	dockerfilePath = "../../Dockerfile"
)

// composeFile is the part of docker-compose.yml the checks read.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Secrets  map[string]struct {
		File string `yaml:"file"`
	} `yaml:"secrets"`
	Networks map[string]struct {
		IPAM struct {
			Config []struct {
				Subnet string `yaml:"subnet"`
			} `yaml:"config"`
		} `yaml:"ipam"`
	} `yaml:"networks"`
}

type composeService struct {
	Build *struct {
		Context string `yaml:"context"`
		Target  string `yaml:"target"`
	} `yaml:"build"`
	Image       string            `yaml:"image"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Secrets     []string          `yaml:"secrets"`
	Ports       []string          `yaml:"ports"`
	Expose      []string          `yaml:"expose"`
	Healthcheck *struct {
		Test    []string `yaml:"test"`
		Disable bool     `yaml:"disable"`
	} `yaml:"healthcheck"`
	DependsOn map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Networks        yaml.Node `yaml:"networks"` // a list, or a map with addresses
	StopGracePeriod string    `yaml:"stop_grace_period"`
}

// TestComposeFile checks docker-compose.yml, deploy/Caddyfile and the
// Dockerfile together (checkDeployment).
func TestComposeFile(t *testing.T) {
	compose, caddy, docker := readDeployment(t)
	for _, err := range checkDeployment(compose, caddy, docker) {
		t.Error(err)
	}
}

// TestComposeChecksCatchMistakes plants one mistake at a time in copies of
// the files and wants checkDeployment to name it: the checks have power.
func TestComposeChecksCatchMistakes(t *testing.T) {
	compose, caddy, docker := readDeployment(t)
	tests := []struct {
		name     string
		file     *string // which copy the mistake goes into
		old, new string
		wantErr  string
	}{
		{"misspelt serve flag", &compose, "--drain-delay=5s", "--drain-dealy=5s", "drain-dealy"},
		{"bad flag value", &compose, "--shutdown-timeout=20s", "--shutdown-timeout=20", "shutdown-timeout"},
		{"unknown subcommand", &compose, `command: ["migrate"]`, `command: ["migrat"]`, "migrat"},
		{"misspelt environment variable", &compose, "KEYWARD_LOG_LEVEL:", "KEYWARD_LOG_LEVE:", "KEYWARD_LOG_LEVE"},
		{"health check without the subcommand", &compose, `"/keyward", "healthcheck"`, `"/keyward", "health"`, "healthcheck"},
		{"secret not passed", &compose, "    - kek\n    - pepper\n", "    - kek\n", "pepper"},
		{"secret file flag off its mount", &compose, "--password-pepper-file=/run/secrets/pepper", "--password-pepper-file=/run/secrets/peper", "password-pepper-file"},
		{"proxy not trusted", &compose, "--trusted-proxies=172.28.0.10/32", "--trusted-proxies=172.28.0.11/32", "trusted-proxies"},
		{"http issuer", &compose, "--issuer=https://localhost:8443", "--issuer=http://localhost:8443", "issuer"},
		{"replica without build", &compose, "    target: keyward\n", "    target: keyward-api\n", "target"},
		{"no drain delay", &compose, "      - --drain-delay=5s\n", "", "drain-delay"},
		{"replica published", &compose, "  expose:\n    - \"8080\"\n", "  ports:\n    - \"8080:8080\"\n", "port"},
		{"upstream misnamed", &caddy, "keyward-2:8080", "keyward-3:8080", "keyward-2"},
		{"upstream health check gone", &caddy, "health_uri /readyz", "health_uri /healthz", "health_uri"},
		{"image listens elsewhere", &docker, "KEYWARD_ADDR=0.0.0.0:8080", "KEYWARD_ADDR=0.0.0.0:8081", "8081"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[*string]string{&compose: compose, &caddy: caddy, &docker: docker}
			if !strings.Contains(*tt.file, tt.old) {
				t.Fatalf("the file has no %q to change", tt.old)
			}
			files[tt.file] = strings.Replace(*tt.file, tt.old, tt.new, 1)
			errs := checkDeployment(files[&compose], files[&caddy], files[&docker])
			if !slices.ContainsFunc(errs, func(err error) bool { return strings.Contains(err.Error(), tt.wantErr) }) {
				t.Fatalf("no error mentioning %q, got %v", tt.wantErr, errs)
			}
		})
	}
}

func readDeployment(t *testing.T) (compose, caddy, docker string) {
	t.Helper()
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	return read(composePath), read(caddyfilePath), read(dockerfilePath)
}

// checkDeployment returns every inconsistency between the compose file,
// the Caddyfile, the Dockerfile and the keyward command tree:
//   - each Keyward service (built from the Dockerfile's keyward target)
//     has an image name, runs a real subcommand whose every --flag parses,
//     and every KEYWARD_* variable names a flag of that subcommand;
//   - the serve replicas publish no port (only the proxy reaches them) but
//     expose the image's listening port, check their health with
//     "keyward healthcheck" on /readyz, take the key-encryption key and the
//     pepper from compose secrets through the -file flags, trust the
//     proxy's fixed address, have an https issuer, a drain delay and a
//     stop grace period longer than drain and shutdown, and start after the
//     one-shot migration;
//   - the Caddyfile load-balances exactly those replicas with health checks
//     on /readyz, and the proxy publishes the issuer's port.
func checkDeployment(compose, caddy, docker string) (errs []error) {
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	var f composeFile
	if err := yaml.Unmarshal([]byte(compose), &f); err != nil {
		return []error{fmt.Errorf("docker-compose.yml: %w", err)}
	}

	imageAddr := dockerfileEnv(docker, "KEYWARD_ADDR")
	_, imagePort, err := net.SplitHostPort(imageAddr)
	if err != nil {
		fail("Dockerfile: ENV KEYWARD_ADDR=%q is not host:port", imageAddr)
	}
	if !regexp.MustCompile(`(?m)^FROM .* AS keyward$`).MatchString(docker) || !strings.Contains(docker, `HEALTHCHECK `) ||
		!strings.Contains(docker, `CMD ["/keyward", "healthcheck"]`) {
		fail("Dockerfile: no keyward target with HEALTHCHECK CMD [\"/keyward\", \"healthcheck\"]")
	}

	proxyName, proxyIP := "", netip.Addr{}
	for name, s := range f.Services {
		if ip := serviceIPv4(s); ip.IsValid() && strings.HasPrefix(s.Image, "caddy:") {
			proxyName, proxyIP = name, ip
		}
	}
	var replicas []string
	for name, s := range f.Services {
		if s.Build != nil && s.Build.Context == "." && s.Build.Target != "keyward" && strings.HasPrefix(name, "keyward") {
			fail("%s: build target %q, want keyward", name, s.Build.Target)
		}
		if s.Build == nil || s.Build.Target != "keyward" {
			continue
		}
		if s.Image == "" || s.Build.Context != "." {
			fail("%s: build from the top-level Dockerfile (context .) and name the image", name)
		}
		cmd, flags := checkCommand(name, s, fail)
		if cmd == nil {
			continue
		}
		if cmd.Name() != "serve" {
			if s.Healthcheck == nil || !s.Healthcheck.Disable {
				fail("%s: a one-shot %s must turn off the image's health check", name, cmd.Name())
			}
			continue
		}
		replicas = append(replicas, name)
		if len(s.Ports) > 0 {
			fail("%s: a replica publishes ports %v; only the proxy may", name, s.Ports)
		}
		if !slices.Contains(s.Expose, imagePort) {
			fail("%s: expose %v lacks the image's port %s (Dockerfile KEYWARD_ADDR)", name, s.Expose, imagePort)
		}
		checkHealthcheck(name, s, imagePort, fail)
		for flag, secret := range map[string]string{"key-encryption-key-file": "kek", "password-pepper-file": "pepper"} {
			v := flags[flag]
			if !slices.Contains(s.Secrets, secret) || v != "/run/secrets/"+secret {
				fail("%s: --%s is %q, want /run/secrets/%s with the secret %s listed", name, flag, v, secret, secret)
			}
			if file := f.Secrets[secret].File; !strings.HasPrefix(file, "./deploy/secrets/") {
				fail("secrets: %s has file %q, want one under ./deploy/secrets/ (deploy/init-secrets.sh)", secret, file)
			}
		}
		if u, err := url.Parse(flags["issuer"]); err != nil || u.Scheme != "https" {
			fail("%s: --issuer %q is not https", name, flags["issuer"])
		}
		if d, _ := time.ParseDuration(flags["drain-delay"]); d <= 0 {
			fail("%s: no --drain-delay: the proxy would still send requests to a closing replica", name)
		} else if grace, _ := time.ParseDuration(s.StopGracePeriod); grace <= d+parseDuration(flags["shutdown-timeout"]) {
			fail("%s: stop_grace_period %q is not longer than --drain-delay plus --shutdown-timeout", name, s.StopGracePeriod)
		}
		if s.DependsOn["migrate"].Condition != "service_completed_successfully" || flags["no-migrate"] != "true" {
			fail("%s: replicas start after the one-shot migrate service (service_completed_successfully) with --no-migrate", name)
		}
		checkTrusted(name, flags["trusted-proxies"], proxyIP, f, fail)
	}
	if len(replicas) < 2 {
		fail("docker-compose.yml: %d serve replicas, want 2 or more", len(replicas))
	}
	if !proxyIP.IsValid() {
		fail("docker-compose.yml: no caddy service with a fixed ipv4_address")
	} else {
		port := "8443"
		if !slices.ContainsFunc(f.Services[proxyName].Ports, func(p string) bool { return strings.HasSuffix(p, ":"+port) }) {
			fail("%s: does not publish the issuer's port %s", proxyName, port)
		}
	}
	checkCaddyfile(caddy, replicas, imagePort, fail)
	return errs
}

// checkCommand parses a Keyward service's command and KEYWARD_* variables
// with the real command tree; it returns the subcommand and its flags'
// values (as parsed, after the variables), or nil after a failure.
func checkCommand(name string, s composeService, fail func(string, ...any)) (*cobra.Command, map[string]string) {
	root := newRootCmd()
	if len(s.Command) == 0 {
		fail("%s: no command", name)
		return nil, nil
	}
	cmd, rest, err := root.Find(s.Command)
	if err != nil || cmd == root {
		fail("%s: %q is not a keyward subcommand", name, s.Command[0])
		return nil, nil
	}
	if err := cmd.ParseFlags(rest); err != nil {
		fail("%s: command %v: %v", name, s.Command, err)
		return nil, nil
	}
	if args := cmd.Flags().Args(); len(args) > 0 {
		fail("%s: %s takes no arguments, got %v", name, cmd.Name(), args)
	}
	for env, v := range s.Environment {
		if !strings.HasPrefix(env, "KEYWARD_") {
			continue
		}
		fl := cmd.Flags().Lookup(strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(env, "KEYWARD_"), "_", "-")))
		if fl == nil || envName(fl.Name) != env {
			fail("%s: environment %s is not a flag of keyward %s", name, env, cmd.Name())
			continue
		}
		if !fl.Changed && !strings.Contains(v, "${") {
			if err := fl.Value.Set(v); err != nil {
				fail("%s: %s=%q: %v", name, env, v, err)
			}
		}
	}
	flags := map[string]string{}
	cmd.Flags().VisitAll(func(fl *pflag.Flag) {
		v := fl.Value.String()
		if sv, ok := fl.Value.(pflag.SliceValue); ok {
			v = strings.Join(sv.GetSlice(), ",")
		}
		flags[fl.Name] = v
	})
	return cmd, flags
}

// checkHealthcheck wants the service's health check to be keyward
// healthcheck, with flags that parse, on the image's port and /readyz.
func checkHealthcheck(name string, s composeService, port string, fail func(string, ...any)) {
	if s.Healthcheck == nil || len(s.Healthcheck.Test) < 3 || s.Healthcheck.Test[0] != "CMD" ||
		s.Healthcheck.Test[1] != "/keyward" || s.Healthcheck.Test[2] != "healthcheck" {
		fail("%s: the health check is not [CMD, /keyward, healthcheck, ...]", name)
		return
	}
	cmd, rest, err := newRootCmd().Find(s.Healthcheck.Test[2:])
	if err != nil || cmd.Name() != "healthcheck" {
		fail("%s: the health check's subcommand is not healthcheck", name)
		return
	}
	if err := cmd.ParseFlags(rest); err != nil {
		fail("%s: health check %v: %v", name, s.Healthcheck.Test, err)
		return
	}
	u, err := url.Parse(cmd.Flags().Lookup("url").Value.String())
	if err != nil || u.Port() != port || u.Path != "/readyz" {
		fail("%s: the health check asks %v, want /readyz on port %s", name, u, port)
	}
}

// checkTrusted wants --trusted-proxies to contain the proxy's fixed
// address, inside the subnet of a network declared with one.
func checkTrusted(name, list string, proxy netip.Addr, f composeFile, fail func(string, ...any)) {
	ok := false
	for _, s := range strings.Split(list, ",") {
		if p, err := netip.ParsePrefix(strings.TrimSpace(s)); err == nil && proxy.IsValid() && p.Contains(proxy) {
			ok = true
		}
	}
	if !ok {
		fail("%s: --trusted-proxies %q does not contain the proxy's fixed address %v", name, list, proxy)
	}
	for _, n := range f.Networks {
		for _, c := range n.IPAM.Config {
			if p, err := netip.ParsePrefix(c.Subnet); err == nil && p.Contains(proxy) {
				return
			}
		}
	}
	fail("%s: the proxy's address %v is in no network's fixed subnet", name, proxy)
}

// checkCaddyfile wants the issuer's site to reverse-proxy exactly the
// replicas on the image's port, with active health checks on /readyz.
func checkCaddyfile(caddy string, replicas []string, port string, fail func(string, ...any)) {
	m := regexp.MustCompile(`(?m)^\s*reverse_proxy ((?:\S+:\d+ ?)+) \{`).FindStringSubmatch(caddy)
	if m == nil {
		fail("Caddyfile: no reverse_proxy block over the replicas")
		return
	}
	upstreams := strings.Fields(m[1])
	var want []string
	for _, r := range replicas {
		want = append(want, r+":"+port)
	}
	slices.Sort(upstreams)
	slices.Sort(want)
	if !slices.Equal(upstreams, want) {
		fail("Caddyfile: upstreams %v, want the replicas %v", upstreams, want)
	}
	for _, line := range []string{"health_uri /readyz", "tls internal", "localhost:8443 {"} {
		if !strings.Contains(caddy, line) {
			fail("Caddyfile: no %q (health_uri /readyz, tls internal, site localhost:8443)", line)
		}
	}
}

// serviceIPv4 is the fixed ipv4_address a service has on any network.
func serviceIPv4(s composeService) netip.Addr {
	var nets map[string]struct {
		IPv4 string `yaml:"ipv4_address"`
	}
	if s.Networks.Kind != yaml.MappingNode || s.Networks.Decode(&nets) != nil {
		return netip.Addr{}
	}
	for _, n := range nets {
		if a, err := netip.ParseAddr(n.IPv4); err == nil {
			return a
		}
	}
	return netip.Addr{}
}

// dockerfileEnv is the value of an ENV NAME=value line of the Dockerfile.
func dockerfileEnv(docker, name string) string {
	m := regexp.MustCompile(`(?m)^ENV ` + name + `=(\S+)`).FindStringSubmatch(docker)
	if m == nil {
		return ""
	}
	return m[1]
}

func parseDuration(s string) time.Duration {
	d, _ := time.ParseDuration(s)
	return d
}

// TestComposeFilesExist keeps the paths above honest when files move.
func TestComposeFilesExist(t *testing.T) {
	for _, p := range []string{composePath, caddyfilePath, dockerfilePath, "../../deploy/init-secrets.sh", "../../.dockerignore"} {
		if _, err := os.Stat(filepath.Clean(p)); errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is missing", p)
		}
	}
}

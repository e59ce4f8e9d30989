package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// regenerateDocs is the one command that rewrites docs/configuration.md;
// the file's first lines and TestConfigurationDoc's failure quote it.
const regenerateDocs = "go run ./cmd/keyward config docs > docs/configuration.md"

// exampleConfig is the example file of docs/configuration.md;
// TestConfigurationExample feeds it to serve.
const exampleConfig = `# keyward.yaml: keyward serve --config keyward.yaml
addr: 0.0.0.0:8080
issuer: https://id.example.com
trusted-proxies: [10.0.0.0/8]          # the TLS-terminating proxy
database: postgres://keyward@db.internal:5432/keyward
key-encryption-key-file: /run/secrets/keyward-kek
password-pepper-file: /run/secrets/keyward-pepper
access-token-ttl: 10m
registration: false
log-level: info
`

// configDocs is docs/configuration.md, generated from the flag
// definitions of root's commands.
func configDocs(root *cobra.Command) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# Configuration reference\n\n")
	p("<!-- Generated from the flag definitions: do not edit. Regenerate with\n     %s\n     (TestConfigurationDoc fails when this file and the flags differ.) -->\n\n", regenerateDocs)
	p("Every flag of every `keyward` command can also be set by an environment variable and by a\n" +
		"configuration file, so one binary serves a developer's shell, a systemd unit and a container.\n\n")

	p("## Precedence\n\n")
	p("For each flag, the first of these that gives it a value wins:\n\n")
	p("1. the command line: `--access-token-ttl 10m`;\n")
	p("2. its environment variable, `KEYWARD_` and the flag's name in capitals with dashes as underscores:\n" +
		"   `KEYWARD_ACCESS_TOKEN_TTL=10m`; a list is comma-separated (`KEYWARD_TRUSTED_PROXIES=10.0.0.0/8,192.0.2.7`);\n")
	p("3. the configuration file named by `--config FILE` or `KEYWARD_CONFIG`;\n")
	p("4. the default, in the tables below.\n\n")

	p("## The configuration file\n\n")
	p("A YAML mapping whose keys are flag names (`addr`, not `--addr`). Lists are YAML lists,\n" +
		"durations Go durations (`90s`, `15m`, `720h`), switches `true` or `false`, numbers plain:\n\n")
	p("```yaml\n%s```\n\n", exampleConfig)
	p("- The file is read once, when the command starts. Values are taken as written (no `${VAR}`\n" +
		"  expansion): a secret goes in its variable, a `…-file` flag, or a file only its owner reads.\n")
	p("- A key that is no flag of any `keyward` command is an error naming the key, the file and the line.\n" +
		"  The keys are the settings: the shared flags and `serve`'s. A key the running command lacks\n" +
		"  is skipped, so one file serves `serve` and the operator commands: `keyward users list\n" +
		"  --config keyward.yaml` takes its `database` and ignores `issuer`. An operator command's\n" +
		"  own options (`force`, `limit`, `password-stdin`, ...; marked *command line only* below)\n" +
		"  act on one run and are refused in a file, where they would act on every run.\n")
	p("- A value of the wrong type (a list for a single value, `yes` for a switch, `15` for a duration)\n" +
		"  is an error naming the key, the file and the line.\n")
	p("- `config` cannot appear in the file: a file does not name another.\n\n")
	p("`keyward config print [--config FILE]` prints the configuration `keyward serve` would run with,\n"+
		"given the same flags, variables and file: YAML that can be fed back with `--config`, each value\n"+
		"commented with where it came from (`flag`, `env`, `file` or `default`); `-o json` prints JSON\n"+
		"(which is YAML too). Every secret is printed as `%s`.\n\n", redacted)

	p("## Secrets\n\n")
	p("These keys hold secrets. `keyward config print` redacts them, and keyward warns at start when\n" +
		"a configuration file holding one is open to other users than its owner (`chmod 600` it).\n" +
		"File flags (`…-file`) name files and are not secrets themselves.\n\n")
	p("| key | secret |\n|---|---|\n")
	secrets := map[string]*pflag.Flag{}
	eachCommand(root, func(c *cobra.Command) {
		commandFlags(c, func(f *pflag.Flag) {
			if secretKind(f) != "" {
				secrets[f.Name] = f
			}
		})
	})
	for _, name := range sortedKeys(secrets) {
		switch secretKind(secrets[name]) {
		case secretValue:
			p("| `%s` | the value itself; refused on the command line, which every local user can read: set `%s` or give it in the file |\n", name, envName(name))
		case secretURL:
			p("| `%s` | a password in the URL (`user:password@`, or a `password` query parameter) |\n", name)
		}
	}
	p("\n")

	settings := fileKeys(root)
	p("## Keys\n\n")
	p("Each command's own flags; a command also takes those of the commands above it, and every\n" +
		"command takes the shared ones.\n")
	eachCommand(root, func(c *cobra.Command) {
		if c.Hidden {
			return
		}
		var fs []*pflag.Flag
		commandFlags(c, func(f *pflag.Flag) { fs = append(fs, f) })
		if of := c.Annotations[flagsOfAnnotation]; of != "" {
			p("\n### %s\n\nTakes the flags of `keyward %s`, to show the configuration they make.\n", c.CommandPath(), of)
			return
		}
		if len(fs) == 0 {
			return
		}
		sort.Slice(fs, func(i, j int) bool { return fs[i].Name < fs[j].Name })
		title := c.CommandPath()
		if c == root {
			title = "Shared by every command"
		}
		p("\n### %s\n\n", title)
		p("| key | variable | type | default | description |\n|---|---|---|---|---|\n")
		for _, f := range fs {
			usage := f.Usage
			switch secretKind(f) {
			case secretValue:
				usage = "**Secret.** " + usage
			case secretURL:
				usage = "**Secret password in the URL.** " + usage
			}
			switch _, setting := settings[f.Name]; {
			case f.Name == configFlag:
				usage += " (command line or variable only)"
			case !setting:
				usage += " (*command line only*)"
			}
			p("| `%s` | `%s` | %s | %s | %s |\n", f.Name, envName(f.Name), valueType(f), docDefault(f), cellText(usage))
		}
	})
	return b.String()
}

// docDefault is f's default as the tables show it: empty when there is none.
func docDefault(f *pflag.Flag) string {
	switch f.DefValue {
	case "", "[]":
		return ""
	}
	return "`" + f.DefValue + "`"
}

// cellText makes s safe in a Markdown table cell.
func cellText(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

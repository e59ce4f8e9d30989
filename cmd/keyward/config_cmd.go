package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// flagsOfAnnotation marks a command that defines another command's flags
// only to show what they make (config print takes serve's):
// docs/configuration.md lists them once, under that command.
const flagsOfAnnotation = "keyward/flags-of"

func newConfigCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Show the configuration that flags, KEYWARD_* variables and the --config file make"}
	print := &cobra.Command{
		Use:   "print [--config FILE]",
		Short: "Print serve's effective configuration as YAML (-o json: JSON), secrets redacted",
		Long: "Print the configuration keyward serve would run with, given the same flags, KEYWARD_* variables and --config file: " +
			"YAML that can be fed back with --config (or JSON with -o json), each value commented with where it came from " +
			"(flag, env, file or default). Secrets are " + redacted + ": the key-encryption key, and passwords in URLs (--database, --smtp-url).",
		Args:        cobra.NoArgs,
		Annotations: map[string]string{flagsOfAnnotation: "serve"},
	}
	bindServeFlags(print.Flags()) // filled by the same layers as serve's
	print.RunE = func(cmd *cobra.Command, _ []string) error {
		return a.printConfig(cmd.OutOrStdout(), cmd.Flags())
	}
	docs := &cobra.Command{
		Use:    "docs",
		Short:  "Write docs/configuration.md, generated from the flag definitions",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := io.WriteString(cmd.OutOrStdout(), configDocs(cmd.Root()))
			return err
		},
	}
	cmd.AddCommand(print, docs)
	return cmd
}

// printedFlag is one key of config print: its value, typed and redacted,
// and where it came from.
type printedFlag struct {
	key    string
	value  any
	source string
	unset  bool // at a default the flag cannot be given (it follows another flag): printed as a comment
}

// effectiveConfig lists fl's flags as config print shows them, in name
// order: every flag but --help, --config and --output (which only shape
// the printing).
func (a *app) effectiveConfig(fl *pflag.FlagSet) []printedFlag {
	var out []printedFlag
	fl.VisitAll(func(f *pflag.Flag) {
		switch f.Name {
		case "help", configFlag, "output":
			return
		}
		p := printedFlag{key: f.Name, source: a.source(f)}
		p.unset = p.source == sourceDefault && f.Value.String() != f.DefValue
		if v, secret := redact(secretKind(f), f.Value.String()); secret {
			p.value = v
		} else {
			p.value = typedValue(f)
		}
		out = append(out, p)
	})
	return out
}

// printConfig writes fl's effective configuration: YAML with a comment
// saying each value's source, or a JSON object with -o json. Both can be
// fed back as a configuration file once the redacted secrets are put back.
func (a *app) printConfig(w io.Writer, fl *pflag.FlagSet) error {
	cfg := a.effectiveConfig(fl)
	if a.output == "json" {
		m := map[string]any{}
		for _, p := range cfg {
			if !p.unset {
				m[p.key] = p.value
			}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false) // a DSN's & stays readable
		return enc.Encode(m)
	}
	var b strings.Builder
	b.WriteString("# The effective configuration of keyward serve, from flags, KEYWARD_* variables, the --config file and defaults.\n")
	b.WriteString("# Secrets are " + redacted + ": put them back before feeding this file to --config.\n")
	lines := make([]string, len(cfg))
	width := 0
	for i, p := range cfg {
		if p.unset {
			lines[i] = "# " + p.key + ":"
		} else {
			lines[i] = p.key + ": " + yamlValue(p.value)
		}
		width = max(width, len(lines[i]))
	}
	for i, p := range cfg {
		fmt.Fprintf(&b, "%-*s  # %s\n", width, lines[i], p.source)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// yamlValue is v as a YAML value on one line: lists in flow style, numbers
// plain, strings quoted where YAML would read them otherwise.
func yamlValue(v any) string {
	var n yaml.Node
	if num, ok := v.(json.Number); ok {
		tag := "!!float"
		if _, err := strconv.ParseInt(string(num), 10, 64); err == nil {
			tag = "!!int"
		}
		n = yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: string(num)}
	} else if err := n.Encode(v); err != nil {
		panic(err) // strings, bools and string lists always encode
	}
	if n.Kind == yaml.SequenceNode {
		n.Style = yaml.FlowStyle
	}
	b, err := yaml.Marshal(&n)
	if err != nil {
		panic(err)
	}
	return strings.TrimSuffix(string(b), "\n")
}

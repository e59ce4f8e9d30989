package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// The configuration file (--config, KEYWARD_CONFIG; docs/configuration.md)
// is the lowest layer above the defaults: a YAML mapping whose keys are
// flag names. Precedence is flag > KEYWARD_* variable > file > default:
// bindEnv fills the flags the command line left unset, then
// configFile.apply fills those neither set. One file serves serve and the
// operator commands: a key that is a flag of some keyward command but not
// of the one running is skipped; a key that is a flag of none is an error.

// configFlag is the flag naming the configuration file; its variable is
// KEYWARD_CONFIG. A file cannot name another.
const configFlag = "config"

// secretAnnotation marks a flag that holds a secret, with its kind. The
// marks are the one list of secrets: refuseSecretFlags, the configuration
// file's permission warning, config print's redaction and
// docs/configuration.md all read them.
const secretAnnotation = "keyward/secret"

// Kinds of secret flag.
const (
	// secretValue: the value is the secret (the key-encryption key). It is
	// refused on the command line and redacted whole.
	secretValue = "value"
	// secretURL: a URL that may carry a password (user:password@, or a
	// password query parameter); the password is redacted.
	secretURL = "url-password"
)

// redacted replaces a secret in config print's output.
const redacted = "REDACTED"

// markSecret marks the flag name of fl as holding a secret of kind.
func markSecret(fl *pflag.FlagSet, name, kind string) {
	if err := fl.SetAnnotation(name, secretAnnotation, []string{kind}); err != nil {
		panic(err) // a flag defined a line above; a typo is a programming error
	}
}

// secretKind is the kind of secret f holds, or "" for none.
func secretKind(f *pflag.Flag) string {
	if k := f.Annotations[secretAnnotation]; len(k) == 1 {
		return k[0]
	}
	return ""
}

// redact returns v, the value of a flag of secret kind, with its secret
// replaced, and whether it held one.
func redact(kind, v string) (string, bool) {
	switch {
	case v == "" || kind == "":
		return v, false
	case kind == secretValue:
		return redacted, true
	}
	u, err := url.Parse(v)
	if err != nil {
		return redacted, true // not a URL we can take apart: hide all of it
	}
	found := false
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), redacted)
		found = true
	}
	if q := u.Query(); len(q) > 0 {
		for k := range q {
			if strings.Contains(strings.ToLower(k), "pass") {
				q.Set(k, redacted)
				found = true
			}
		}
		if found {
			u.RawQuery = q.Encode()
		}
	}
	if !found {
		return v, false
	}
	return u.String(), true
}

// eachCommand calls fn for root and every command under it, except
// cobra's own help and completion commands.
func eachCommand(root *cobra.Command, fn func(*cobra.Command)) {
	fn(root)
	for _, c := range root.Commands() {
		if c.Name() == "help" || c.Name() == "completion" {
			continue
		}
		eachCommand(c, fn)
	}
}

// commandFlags calls fn for each flag a command defines itself (its local
// and persistent ones, not those it inherits), in name order, leaving out
// cobra's --help.
func commandFlags(c *cobra.Command, fn func(*pflag.Flag)) {
	seen := map[string]bool{"help": true}
	visit := func(f *pflag.Flag) {
		if !seen[f.Name] {
			seen[f.Name] = true
			fn(f)
		}
	}
	c.PersistentFlags().VisitAll(visit)
	c.LocalNonPersistentFlags().VisitAll(visit)
}

// fileKeys are the keys a configuration file may hold: the settings, that
// is the shared flags and serve's (the operator commands that share a
// setting, such as the users commands' mail flags or the keys commands' key
// policy, define it under the same name), each with one of its definitions,
// but --config. The other commands' own flags (--force, --limit,
// --password-stdin, ...) are options of one invocation: in a file shared by
// every command they would act where nobody asked, so a file refuses them.
func fileKeys(root *cobra.Command) map[string]*pflag.Flag {
	keys := map[string]*pflag.Flag{}
	add := func(f *pflag.Flag) {
		if _, ok := keys[f.Name]; !ok && f.Name != configFlag {
			keys[f.Name] = f
		}
	}
	commandFlags(root, add)
	for _, c := range root.Commands() {
		if c.Name() == "serve" {
			commandFlags(c, add)
		}
	}
	return keys
}

// optionOf names a command that has flag name although no file may set it
// (fileKeys), or "".
func optionOf(root *cobra.Command, name string) string {
	var of string
	eachCommand(root, func(c *cobra.Command) {
		if of == "" && name != "help" && c.LocalFlags().Lookup(name) != nil {
			of = c.CommandPath()
		}
	})
	return of
}

// configFile is a configuration file as read: each key's value node, in
// the file's order.
type configFile struct {
	path    string
	entries []configEntry
}

type configEntry struct {
	key   string
	line  int
	value *yaml.Node
}

// readConfigFile reads and parses path and checks its keys against known
// (fileKeys): every error names the file and the line.
func readConfigFile(path string, known map[string]*pflag.Flag, optionOf func(name string) string) (*configFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	var doc, more yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	cf := &configFile{path: path}
	switch err := dec.Decode(&doc); {
	case errors.Is(err, io.EOF): // empty
		return cf, nil
	case err != nil:
		return nil, fmt.Errorf("--config %s: %w", path, err)
	}
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s:%d: a configuration file holds one YAML document, not several", path, more.Line)
	}
	if len(doc.Content) == 0 { // only comments
		return cf, nil
	}
	m := doc.Content[0]
	if m.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: a configuration file is a mapping of flag names to values, such as addr: 127.0.0.1:8080", path, m.Line)
	}
	var errs []error
	first := map[string]int{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if v.Kind == yaml.AliasNode {
			v = v.Alias
		}
		key := k.Value
		switch _, isFlag := known[key]; {
		case k.Kind != yaml.ScalarNode:
			errs = append(errs, fmt.Errorf("%s:%d: a key must be a flag name", path, k.Line))
			continue
		case key == configFlag:
			errs = append(errs, fmt.Errorf("%s:%d: key %q: a configuration file cannot name another", path, k.Line, key))
			continue
		case !isFlag && optionOf(key) != "":
			errs = append(errs, fmt.Errorf("%s:%d: key %q is an option of one run of %s, for its command line, not a setting a file may hold", path, k.Line, key, optionOf(key)))
			continue
		case !isFlag:
			errs = append(errs, fmt.Errorf("%s:%d: unknown key %q: no keyward command has such a flag%s", path, k.Line, key, suggestKey(key, known)))
			continue
		case first[key] != 0:
			errs = append(errs, fmt.Errorf("%s:%d: key %q is given twice (first on line %d)", path, k.Line, key, first[key]))
			continue
		}
		first[key] = k.Line
		cf.entries = append(cf.entries, configEntry{key: key, line: k.Line, value: v})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return cf, nil
}

// suggestKey hints at the key meant by an unknown one: the same without
// leading dashes, or a flag name at most two edits away.
func suggestKey(key string, known map[string]*pflag.Flag) string {
	if k := strings.TrimLeft(key, "-"); k != key {
		if _, ok := known[k]; ok {
			return fmt.Sprintf(" (write %s, without the dashes)", k)
		}
	}
	best, bestDist := "", 3
	for name := range known {
		if d := editDistance(key, name); d < bestDist || (d == bestDist && name < best) {
			best, bestDist = name, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			sub := prev[j-1]
			if a[i-1] != b[j-1] {
				sub++
			}
			cur[j] = min(sub, prev[j]+1, cur[j-1]+1)
		}
		prev = cur
	}
	return prev[len(b)]
}

// apply sets each flag of fl that the file names and that neither the
// command line nor its KEYWARD_* variable set, and calls set with its name.
// Keys that are no flag of fl belong to other commands and are skipped. A
// wrong-typed value is an error naming the file, line and key.
func (cf *configFile) apply(fl *pflag.FlagSet, set func(name string)) error {
	var errs []error
	for _, e := range cf.entries {
		f := fl.Lookup(e.key)
		if f == nil || f.Changed {
			continue
		}
		if _, ok := os.LookupEnv(envName(f.Name)); ok {
			continue
		}
		if err := setFromNode(f, e.value); err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %s: %w", cf.path, e.line, e.key, err))
			continue
		}
		set(f.Name)
	}
	return errors.Join(errs...)
}

// setFromNode sets f from a YAML value: a list for a list flag, true or
// false for a switch, and otherwise one plain value read as the flag reads
// its argument (durations as Go durations, such as 15m). Its errors never
// quote a secret.
func setFromNode(f *pflag.Flag, v *yaml.Node) error {
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		if v.Kind != yaml.SequenceNode {
			return errors.New("must be a YAML list, such as [a, b]")
		}
		items := make([]string, 0, len(v.Content))
		for _, it := range v.Content {
			if it.Kind != yaml.ScalarNode {
				return errors.New("must be a list of plain values")
			}
			items = append(items, it.Value)
		}
		return sv.Replace(items)
	}
	switch {
	case v.Kind != yaml.ScalarNode:
		return fmt.Errorf("must be one %s value, not a list or a mapping", valueType(f))
	case v.Tag == "!!null":
		return fmt.Errorf("has no value (give a %s, or leave the key out)", valueType(f))
	case f.Value.Type() == "bool" && v.Tag != "!!bool":
		return errors.New("must be true or false")
	}
	if err := f.Value.Set(v.Value); err != nil {
		if secretKind(f) != "" {
			return fmt.Errorf("not a valid %s", valueType(f)) // the reason might quote the secret
		}
		return fmt.Errorf("%q is not a valid %s: %w", v.Value, valueType(f), err)
	}
	return nil
}

// secretKeys are the keys of the file that hold a secret: a secretValue
// flag with a value, or a secretURL one with a password.
func (cf *configFile) secretKeys(known map[string]*pflag.Flag) []string {
	var out []string
	for _, e := range cf.entries {
		kind := secretKind(known[e.key])
		if kind == "" || e.value.Kind != yaml.ScalarNode {
			continue
		}
		if _, secret := redact(kind, e.value.Value); secret {
			out = append(out, e.key)
		}
	}
	return out
}

// loadConfig reads the configuration file, if --config or KEYWARD_CONFIG
// names one, and fills cmd's flags from it; it returns the file, or nil.
func (a *app) loadConfig(cmd *cobra.Command) (*configFile, map[string]*pflag.Flag, error) {
	if a.configPath == "" {
		return nil, nil, nil
	}
	known := fileKeys(cmd.Root())
	cf, err := readConfigFile(a.configPath, known, func(name string) string { return optionOf(cmd.Root(), name) })
	if err != nil {
		return nil, nil, err
	}
	err = cf.apply(cmd.Flags(), func(name string) { a.sources[name] = sourceFile })
	if err != nil {
		return nil, nil, err
	}
	return cf, known, nil
}

// Where a flag's value came from, as config print shows it.
const (
	sourceFlag    = "flag"
	sourceEnv     = "env"
	sourceFile    = "file"
	sourceDefault = "default"
)

// source says where f's value came from.
func (a *app) source(f *pflag.Flag) string {
	if f.Changed {
		return sourceFlag
	}
	if s, ok := a.sources[f.Name]; ok {
		return s
	}
	return sourceDefault
}

// origin names where a flag the command line cannot carry (a secretValue)
// got its value, for errors: its variable, or the configuration file.
func (a *app) origin(name string) string {
	if a.sources[name] == sourceFile {
		return name + " in " + a.configPath
	}
	return envName(name)
}

// valueType names the kind of value f takes, as docs/configuration.md and
// the file's errors say it.
func valueType(f *pflag.Flag) string {
	switch t := f.Value.Type(); t {
	case "stringSlice", "stringArray":
		return "list"
	case "int", "uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64":
		return "integer"
	case "float", "float32", "float64":
		return "number"
	default:
		return t // string, bool, duration
	}
}

// typedValue is f's value as YAML and JSON carry it: a list, a bool, a
// number or a string (durations too, as 15m0s).
func typedValue(f *pflag.Flag) any {
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		return append([]string{}, sv.GetSlice()...) // [] rather than null when empty
	}
	s := f.Value.String()
	switch valueType(f) {
	case "bool":
		return s == "true"
	case "integer", "number":
		return json.Number(s)
	}
	return s
}

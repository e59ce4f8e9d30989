package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/keyward/keyward/idp/password"
	"github.com/keyward/keyward/storage"
)

// Configuration: this file and serve_config.go are the one place where flags
// and KEYWARD_* variables become typed, checked values. The flags every
// command shares live here (app); serve's own in serve_config.go; the
// key-encryption key's in kek.go, the signing-key policy's in keys.go and the
// brute-force limits' in throttle_flags.go. Each check runs once, before a
// command opens anything: the shared flags in the root's PersistentPreRunE
// (app.check), serve's in serveFlags.config.

// minArgonMemory is the least argon2id memory accepted, in KiB (OWASP's
// m=19 MiB, t=2, p=1 row).
const minArgonMemory = 19456

// app holds the flags every command shares, as checked by check, and the
// helpers built on them.
type app struct {
	database     string
	databaseWait time.Duration
	output       string
	logFormat    string
	logLevel     string
	minLength    int
	blocklist    string
	argon        password.Params
	pepperFile   string
	ceilingText  string    // --password-hash-ceiling, as password.ParseCeiling reads it
	userMail     mailFlags // the mail flags of the users commands, serve's own (users_mail.go)
	configPath   string    // --config, KEYWARD_CONFIG: the configuration file (config_file.go)

	// sources says which flags the environment or the configuration file
	// set (sourceEnv, sourceFile), for config print.
	sources map[string]string

	// Set by check from the flags above.
	level   slog.Level
	ceiling password.Ceiling
}

// newApp returns the root command, with the flags every command shares, and
// the app they fill. Before any subcommand runs, the root refuses secrets on
// the command line, fills unset flags from the environment and then from
// the configuration file, and checks the shared flags.
func newApp() (*app, *cobra.Command) {
	a := &app{argon: password.DefaultParams(), sources: map[string]string{}}
	root := &cobra.Command{
		Use:           "keyward",
		Short:         "Keyward: an OAuth 2.0 / OpenID Connect identity provider",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := refuseSecretFlags(cmd); err != nil {
				return err
			}
			if err := bindEnv(cmd, func(name string) { a.sources[name] = sourceEnv }); err != nil {
				return err
			}
			cf, known, err := a.loadConfig(cmd)
			if err != nil {
				return err
			}
			if err := a.check(); err != nil {
				return err
			}
			if cf != nil {
				if secrets := cf.secretKeys(known); len(secrets) > 0 {
					warnShared(a.logger(cmd.ErrOrStderr()), "the configuration file holding "+strings.Join(secrets, ", "), cf.path)
				}
			}
			return nil
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&a.configPath, configFlag, "", "read flag values from this YAML file, whose keys are flag names (docs/configuration.md); the command line and KEYWARD_* variables win over it")
	pf.StringVar(&a.database, "database", "sqlite:keyward.db", "database: sqlite:PATH or postgres://user@host:5432/dbname")
	markSecret(pf, "database", secretURL)
	pf.DurationVar(&a.databaseWait, "database-wait", 30*time.Second, "how long to retry an unreachable database before giving up")
	pf.StringVarP(&a.output, "output", "o", "table", "output format: table or json")
	pf.StringVar(&a.logFormat, "log-format", "json", "log format: json or text")
	pf.StringVar(&a.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	pf.IntVar(&a.minLength, "password-min-length", password.DefaultMinLength, "shortest password accepted, in characters (8 or more)")
	pf.StringVar(&a.blocklist, "password-blocklist", "", "file of extra blocked passwords, one a line")
	pf.Uint32Var(&a.argon.Memory, "argon2-memory", a.argon.Memory, "argon2id memory per hash, KiB")
	pf.Uint32Var(&a.argon.Time, "argon2-time", a.argon.Time, "argon2id passes")
	pf.Uint8Var(&a.argon.Threads, "argon2-threads", a.argon.Threads, "argon2id lanes")
	pf.StringVar(&a.ceilingText, "password-hash-ceiling", password.DefaultCeiling().String(), "costliest stored password hash checked (argon2id m·t, bcrypt cost); every failed login lasts as long as a check at it, and costlier hashes are refused (TE-21)")
	pf.StringVar(&a.pepperFile, "password-pepper-file", "", "file holding the password pepper, an HMAC key of 32 or more random bytes (raw or base64) kept apart from the database; every command that hashes or checks passwords needs the same one")
	return a, root
}

// check checks the shared flags and keeps what it parsed (level, ceiling).
func (a *app) check() error {
	if a.output != "table" && a.output != "json" {
		return fmt.Errorf("--output must be table or json, not %q", a.output)
	}
	if a.logFormat != "json" && a.logFormat != "text" {
		return fmt.Errorf("--log-format must be json or text, not %q", a.logFormat)
	}
	if err := a.level.UnmarshalText([]byte(a.logLevel)); err != nil {
		return fmt.Errorf("--log-level must be debug, info, warn or error, not %q", a.logLevel)
	}
	if a.minLength < password.LowestMinLength {
		return fmt.Errorf("--password-min-length must be at least %d", password.LowestMinLength)
	}
	if a.argon.Memory < minArgonMemory || a.argon.Time < 2 || a.argon.Threads != 1 {
		return fmt.Errorf("--argon2-memory must be at least %d KiB, --argon2-time at least 2 and --argon2-threads 1 (OWASP, PW-01)", minArgonMemory)
	}
	if _, _, err := storage.ParseDSN(a.database); err != nil {
		return fmt.Errorf("--database: %w", err)
	}
	c, err := password.ParseCeiling(a.ceilingText)
	if err != nil {
		return fmt.Errorf("--password-hash-ceiling: %w", err)
	}
	a.ceiling = c
	return nil
}

// hasher builds the password hasher from the --argon2-* flags,
// --password-hash-ceiling and, with --password-pepper-file, the pepper
// (PW-04); opts come after those.
func (a *app) hasher(opts ...password.Option) (*password.Hasher, error) {
	base := []password.Option{password.WithCeiling(a.ceiling)}
	if a.pepperFile != "" {
		key, err := readPepperFile(a.pepperFile)
		if err != nil {
			return nil, fmt.Errorf("--password-pepper-file: %w", err)
		}
		base = append([]password.Option{password.WithPepper(key)}, base...)
		clear(key) // WithPepper keeps its own copy
	}
	h, err := password.NewHasher(a.argon, append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("--argon2-*: %w", err)
	}
	return h, nil
}

// policy builds the password policy from --password-min-length and the
// common blocklist, plus --password-blocklist.
func (a *app) policy() (*password.Policy, error) {
	lists := []*password.Blocklist{password.Common()}
	if a.blocklist != "" {
		f, err := os.Open(a.blocklist)
		if err != nil {
			return nil, fmt.Errorf("--password-blocklist: %w", err)
		}
		defer f.Close()
		b, err := password.LoadBlocklist(f)
		if err != nil {
			return nil, fmt.Errorf("--password-blocklist: %w", err)
		}
		lists = append(lists, b)
	}
	p, err := password.NewPolicy(a.minLength, lists...)
	if err != nil {
		return nil, fmt.Errorf("--password-min-length: %w", err)
	}
	return p, nil
}

// refuseSecretFlags refuses a flag that is a secret itself (marked
// secretValue) given on the command line, which is readable by every local
// user (ps, /proc/PID/cmdline), naming its environment variable instead and
// never echoing the value. Its variable (bindEnv), the configuration file or
// a file flag are accepted.
func refuseSecretFlags(cmd *cobra.Command) error {
	var err error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if err == nil && f.Changed && secretKind(f) == secretValue {
			err = fmt.Errorf("--%s is refused: on the command line the key is readable by every local user (ps, /proc/PID/cmdline); set %s in the environment, %s in the --config file, or use --%s-file",
				f.Name, envName(f.Name), f.Name, f.Name)
		}
	})
	return err
}

// envName is the environment variable of a flag: KEYWARD_<FLAG>, with
// dashes as underscores.
func envName(flag string) string {
	return "KEYWARD_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// bindEnv sets every flag the user did not give from KEYWARD_<FLAG>, with
// dashes as underscores: --issuer from KEYWARD_ISSUER, and calls set with
// its name. A flag on the command line wins over its variable.
func bindEnv(cmd *cobra.Command, set func(name string)) error {
	var errs []error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		env := envName(f.Name)
		v, ok := os.LookupEnv(env)
		if !ok || f.Changed {
			return
		}
		if sv, isSlice := f.Value.(pflag.SliceValue); isSlice {
			if err := sv.Replace(splitList(v)); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", env, err))
				return
			}
			set(f.Name)
			return
		}
		if err := f.Value.Set(v); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q is not a valid --%s: %w", env, v, f.Name, err))
			return
		}
		set(f.Name)
	})
	return errors.Join(errs...)
}

func splitList(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ',' })
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/password"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage"
)

// minArgonMemory is the least argon2id memory accepted, in KiB (OWASP's
// m=19 MiB, t=2, p=1 row).
const minArgonMemory = 19456

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// app holds the flags every command shares and the helpers built on them.
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
	ceiling      string // --password-hash-ceiling, as password.ParseCeiling reads it
}

func newRootCmd() *cobra.Command {
	a := &app{argon: password.DefaultParams()}
	root := &cobra.Command{
		Use:           "keyward",
		Short:         "Keyward: an OAuth 2.0 / OpenID Connect identity provider",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := refuseSecretFlags(cmd); err != nil {
				return err
			}
			if err := bindEnv(cmd); err != nil {
				return err
			}
			return a.check()
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&a.database, "database", "sqlite:keyward.db", "database: sqlite:PATH or postgres://user@host:5432/dbname")
	pf.DurationVar(&a.databaseWait, "database-wait", 30*time.Second, "how long to retry an unreachable database before giving up")
	pf.StringVarP(&a.output, "output", "o", "table", "output format: table or json")
	pf.StringVar(&a.logFormat, "log-format", "json", "log format: json or text")
	pf.StringVar(&a.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	pf.IntVar(&a.minLength, "password-min-length", password.DefaultMinLength, "shortest password accepted, in characters (8 or more)")
	pf.StringVar(&a.blocklist, "password-blocklist", "", "file of extra blocked passwords, one a line")
	pf.Uint32Var(&a.argon.Memory, "argon2-memory", a.argon.Memory, "argon2id memory per hash, KiB")
	pf.Uint32Var(&a.argon.Time, "argon2-time", a.argon.Time, "argon2id passes")
	pf.Uint8Var(&a.argon.Threads, "argon2-threads", a.argon.Threads, "argon2id lanes")
	pf.StringVar(&a.ceiling, "password-hash-ceiling", password.DefaultCeiling().String(), "costliest stored password hash checked (argon2id m·t, bcrypt cost); every failed login lasts as long as a check at it, and costlier hashes are refused (TE-21)")
	pf.StringVar(&a.pepperFile, "password-pepper-file", "", "file holding the password pepper, an HMAC key of 32 or more random bytes (raw or base64) kept apart from the database; every command that hashes or checks passwords needs the same one")

	root.AddCommand(newVersionCmd(), newMigrateCmd(a), newServeCmd(a), newUsersCmd(a), newClientsCmd(a), newAuditCmd(a), newKeysCmd(a))
	return root
}

func (a *app) check() error {
	if a.output != "table" && a.output != "json" {
		return fmt.Errorf("--output must be table or json, not %q", a.output)
	}
	if a.logFormat != "json" && a.logFormat != "text" {
		return fmt.Errorf("--log-format must be json or text, not %q", a.logFormat)
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(a.logLevel)); err != nil {
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
	if _, err := password.ParseCeiling(a.ceiling); err != nil {
		return fmt.Errorf("--password-hash-ceiling: %w", err)
	}
	return nil
}

// secretFlags hold a secret itself, so a command line must not carry them:
// it is readable by every local user (ps, /proc/PID/cmdline). Only their
// environment variable is accepted (bindEnv), or a file flag.
var secretFlags = []string{"key-encryption-key"}

// refuseSecretFlags refuses a secretFlags flag given on the command line,
// naming its environment variable instead and never echoing the value.
func refuseSecretFlags(cmd *cobra.Command) error {
	for _, name := range secretFlags {
		if f := cmd.Flags().Lookup(name); f != nil && f.Changed {
			return fmt.Errorf("--%s is refused: on the command line the key is readable by every local user (ps, /proc/PID/cmdline); set %s in the environment or use --%s-file",
				name, envName(name), name)
		}
	}
	return nil
}

// envName is the environment variable of a flag: KEYWARD_<FLAG>, with
// dashes as underscores.
func envName(flag string) string {
	return "KEYWARD_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// bindEnv sets every flag the user did not give from KEYWARD_<FLAG>, with
// dashes as underscores: --issuer from KEYWARD_ISSUER.
func bindEnv(cmd *cobra.Command) error {
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
			}
			return
		}
		if err := f.Value.Set(v); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q is not a valid --%s: %w", env, v, f.Name, err))
		}
	})
	return errors.Join(errs...)
}

func splitList(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ',' })
}

// logger builds the process logger; records carry request ids from ctx.
func (a *app) logger(w io.Writer) *slog.Logger {
	var lvl slog.Level
	lvl.UnmarshalText([]byte(a.logLevel))
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler = slog.NewJSONHandler(w, opts)
	if a.logFormat == "text" {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(web.LogHandler(h))
}

// openDB opens the database, retrying an unreachable one with backoff for
// --database-wait.
func (a *app) openDB(ctx context.Context) (*storage.DB, error) {
	deadline := time.Now().Add(a.databaseWait)
	delay := 250 * time.Millisecond
	for {
		db, err := storage.Open(ctx, a.database)
		if err == nil {
			return db, nil
		}
		if _, _, perr := storage.ParseDSN(a.database); perr != nil || time.Now().Add(delay).After(deadline) {
			return nil, fmt.Errorf("database unreachable after %s (--database-wait): %w", a.databaseWait, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// openMigrated opens the database and brings its schema up to date; the
// operator commands use it so they work on a fresh database.
func (a *app) openMigrated(ctx context.Context) (*storage.DB, error) {
	db, err := a.openDB(ctx)
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// hasher builds the password hasher from the --argon2-* flags,
// --password-hash-ceiling and, with --password-pepper-file, the pepper
// (PW-04); opts come after those.
func (a *app) hasher(opts ...password.Option) (*password.Hasher, error) {
	if a.pepperFile != "" {
		key, err := readPepperFile(a.pepperFile)
		if err != nil {
			return nil, fmt.Errorf("--password-pepper-file: %w", err)
		}
		opts = append([]password.Option{password.WithPepper(key)}, opts...)
		clear(key) // WithPepper keeps its own copy
	}
	if c, err := password.ParseCeiling(a.ceiling); err == nil { // check() has vetted it
		opts = append([]password.Option{password.WithCeiling(c)}, opts...)
	}
	h, err := password.NewHasher(a.argon, opts...)
	if err != nil {
		return nil, fmt.Errorf("--argon2-*: %w", err)
	}
	return h, nil
}

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

// print writes v as indented JSON, or calls table with a tab writer.
func (a *app) print(w io.Writer, v any, table func(tw *tabwriter.Writer)) error {
	if a.output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), "keyward", version)
			return nil
		},
	}
}

func newMigrateCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Bring the database schema up to date",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			db, err := a.openMigrated(ctx)
			if err != nil {
				return err
			}
			defer db.Close()
			cur, _, err := db.MigrationVersion(ctx)
			if err != nil {
				return err
			}
			return a.print(cmd.OutOrStdout(), map[string]any{"dialect": db.Dialect(), "version": cur}, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "schema up to date (%s, version %d)\n", db.Dialect(), cur)
			})
		},
	}
}

// readSecret reads a password from r: everything up to a final newline.
func readSecret(r io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, 64<<10))
	if err != nil {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if s == "" {
		return "", errors.New("no password on stdin")
	}
	return s, nil
}

// cliActor is the actor of every event the CLI records.
const cliActor = "cli"

// audit records an operator's action from the CLI in the audit trail.
func (a *app) audit(cmd *cobra.Command, db *storage.DB, typ audit.Type, subject, reason string) {
	a.auditor(cmd, db).Record(cmd.Context(), audit.Event{
		Type: typ, Outcome: audit.OutcomeSuccess, Actor: cliActor, Subject: subject, Reason: reason,
	})
}

// auditor is the audit trail of one command: rows go to db, log records
// to the command's standard error.
func (a *app) auditor(cmd *cobra.Command, db *storage.DB) *audit.Auditor {
	return audit.New(db, a.logger(cmd.ErrOrStderr()), time.Now, 0)
}

// recordCmd is a command on one stored record named by its one argument:
// it opens the database, finds the record, and hands both to run.
func recordCmd[T any](a *app, use, short string, find func(context.Context, *storage.DB, string) (T, error),
	run func(cmd *cobra.Command, db *storage.DB, rec T) error) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			db, err := a.openMigrated(ctx)
			if err != nil {
				return err
			}
			defer db.Close()
			rec, err := find(ctx, db, args[0])
			if err != nil {
				return err
			}
			return run(cmd, db, rec)
		},
	}
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// newRootCmd is the command tree. The flags every command shares, and their
// checks, are in config.go.
func newRootCmd() *cobra.Command {
	a, root := newApp()
	root.AddCommand(newVersionCmd(), newMigrateCmd(a), newServeCmd(a), newUsersCmd(a), newClientsCmd(a), newAuditCmd(a), newKeysCmd(a), newMailCmd(a), newConfigCmd(a))
	root.AddCommand(newHealthcheckCmd())
	return root
}

// logger builds the process logger; records carry request ids from ctx.
func (a *app) logger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: a.level} // check() parsed --log-level
	var h slog.Handler = slog.NewJSONHandler(w, opts)
	if a.logFormat == "text" {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(web.LogHandler(h))
}

// openDB opens the database, retrying an unreachable one with backoff for
// --database-wait.
func (a *app) openDB(ctx context.Context, opts ...storage.Option) (*storage.DB, error) {
	deadline := time.Now().Add(a.databaseWait)
	delay := 250 * time.Millisecond
	for {
		db, err := storage.Open(ctx, a.database, opts...)
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

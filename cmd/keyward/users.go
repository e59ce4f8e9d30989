package main

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/guard"
	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/storage"
)

func newUsersCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "users", Short: "Manage user accounts"}
	cmd.AddCommand(newUsersCreateCmd(a), newUsersListCmd(a), newUsersGetCmd(a), newUsersSetPasswordCmd(a),
		newUsersSetDisabledCmd(a, "disable", true), newUsersSetDisabledCmd(a, "enable", false), newUsersDeleteCmd(a), newUsersUnlockCmd(a),
		newUsersSendResetCmd(a), newUsersSetEmailCmd(a), newUsersImportCmd(a))
	// send-reset, set-email and set-password mail as serve does (users_mail.go).
	a.userMail.register(cmd.PersistentFlags())
	return cmd
}

func newUsersCreateCmd(a *app) *cobra.Command {
	var username, email string
	var stdin, verified bool
	cmd := &cobra.Command{
		Use:   "create --username NAME [--email ADDR] --password-stdin",
		Short: "Create a user; the password is read from standard input",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if !stdin {
				return errors.New("give the password on standard input with --password-stdin (never on the command line)")
			}
			name, err := manage.NormalizeNewUsername(username)
			if err != nil {
				return fmt.Errorf("--username: %w", err)
			}
			addr, err := manage.NormalizeEmail(email)
			if err != nil {
				return fmt.Errorf("--email: %w", err)
			}
			pw, err := readSecret(cmd.InOrStdin())
			if err != nil {
				return err
			}
			hash, err := a.checkAndHash(ctx, pw, name, addr)
			if err != nil {
				return err
			}
			db, err := a.openMigrated(ctx)
			if err != nil {
				return err
			}
			defer db.Close()
			u := storage.User{Username: name, Email: addr, EmailVerified: verified, PasswordHash: hash}
			if err := a.ops(cmd, db).CreateUser(ctx, cliBy, &u); err != nil {
				if errors.Is(err, storage.ErrLookalike) {
					return fmt.Errorf("username %q looks like an existing username (confusable characters, UTS #39); choose another", name)
				}
				if errors.Is(err, storage.ErrConflict) {
					return fmt.Errorf("username %q is taken", name)
				}
				return err
			}
			return a.printUsers(cmd, manage.ViewUser(u), []storage.User{u})
		},
	}
	f := cmd.Flags()
	f.StringVar(&username, "username", "", "username (1 to 64 characters, unique regardless of case)")
	f.StringVar(&email, "email", "", "email address")
	f.BoolVar(&verified, "email-verified", false, "mark the email address as verified")
	f.BoolVar(&stdin, "password-stdin", false, "read the password from standard input")
	cmd.MarkFlagRequired("username")
	return cmd
}

// checkAndHash applies the password policy and hashes the password.
func (a *app) checkAndHash(ctx context.Context, pw, username, email string) (string, error) {
	pol, err := a.policy()
	if err != nil {
		return "", err
	}
	if err := pol.Check(pw, username, email); err != nil {
		return "", err
	}
	h, err := a.hasher()
	if err != nil {
		return "", err
	}
	return h.Hash(ctx, pw)
}

func (a *app) printUsers(cmd *cobra.Command, v any, us []storage.User) error {
	return a.print(cmd.OutOrStdout(), v, func(tw *tabwriter.Writer) {
		fmt.Fprintln(tw, "ID\tUSERNAME\tEMAIL\tVERIFIED\tDISABLED\tCREATED")
		for _, u := range us {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t%t\t%s\n", u.ID, u.Username, cell(u.Email), u.EmailVerified, u.Disabled, u.CreatedAt.Format(time.RFC3339))
		}
	})
}

func newUsersListCmd(a *app) *cobra.Command {
	var limit, offset int
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List users",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			db, err := a.openMigrated(ctx)
			if err != nil {
				return err
			}
			defer db.Close()
			us, err := db.Users(ctx, offset, limit)
			if err != nil {
				return err
			}
			views := make([]manage.UserView, len(us))
			for i, u := range us {
				views[i] = manage.ViewUser(u)
			}
			return a.printUsers(cmd, views, us)
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 0, "show at most this many (0: all)")
	cmd.Flags().IntVar(&offset, "offset", 0, "skip this many")
	return cmd
}

// findUser looks a user up by id, then by username.
func findUser(ctx context.Context, db *storage.DB, ref string) (storage.User, error) {
	u, err := db.User(ctx, ref)
	if errors.Is(err, storage.ErrNotFound) {
		u, err = db.UserByUsername(ctx, ref)
	}
	if errors.Is(err, storage.ErrNotFound) {
		return u, fmt.Errorf("no user %q", ref)
	}
	return u, err
}

// userCmd is a command on one user named by id or username.
func userCmd(a *app, use, short string, run func(cmd *cobra.Command, db *storage.DB, u storage.User) error) *cobra.Command {
	return recordCmd(a, use+" ID|USERNAME", short, findUser, run)
}

func newUsersGetCmd(a *app) *cobra.Command {
	return userCmd(a, "get", "Show a user", func(cmd *cobra.Command, _ *storage.DB, u storage.User) error {
		return a.printUsers(cmd, manage.ViewUser(u), []storage.User{u})
	})
}

func newUsersSetPasswordCmd(a *app) *cobra.Command {
	var stdin bool
	cmd := userCmd(a, "set-password", "Set a user's password from standard input (revokes their sessions)",
		func(cmd *cobra.Command, db *storage.DB, u storage.User) error {
			if !stdin {
				return errors.New("give the password on standard input with --password-stdin (never on the command line)")
			}
			pw, err := readSecret(cmd.InOrStdin())
			if err != nil {
				return err
			}
			hash, err := a.checkAndHash(cmd.Context(), pw, u.Username, u.Email)
			if err != nil {
				return err
			}
			by := cliBy
			by.Reason = "set_by_operator"
			o, flush, err := a.mailOps(cmd, db, "", false, false) // the notice to a verified address
			if err != nil {
				return err
			}
			defer flush()
			u, n, err := o.SetPassword(cmd.Context(), by, u.ID, hash, nil)
			if err := a.sessionsEnded(cmd, u, storage.RevokePassword, n, err); err != nil {
				return err
			}
			return a.printUsers(cmd, manage.ViewUser(u), []storage.User{u})
		})
	cmd.Flags().BoolVar(&stdin, "password-stdin", false, "read the password from standard input")
	return cmd
}

// cliBy is the audit event of who acts in a CLI command.
var cliBy = audit.Event{Actor: cliActor}

// ops is the user and client operations of one command: on db, recording
// to its audit trail, unlocking through a throttle on db.
func (a *app) ops(cmd *cobra.Command, db *storage.DB) *manage.Ops {
	log := a.logger(cmd.ErrOrStderr())
	return manage.New(db, a.auditor(cmd, db), guard.NewThrottler(db, guard.Policy{}, time.Now, log, nil), time.Now)
}

// sessionsEnded words the outcome of an operation that ends u's sessions
// (DESIGN "Accounts and protection": a password change or reset, a lock or
// a deletion ends the user's sessions; manage records a token_revoked event
// about u with the reason when any was live). Refresh already refuses a
// disabled user's or a pre-change family, but only while the user stays
// disabled: without the revocation, "users enable" would bring every old
// session back. The user is already updated when the revocation fails; the
// error says so and running the command again revokes what is left.
func (a *app) sessionsEnded(cmd *cobra.Command, u storage.User, reason string, n int64, err error) error {
	var se *manage.SessionsError
	if errors.As(err, &se) {
		return fmt.Errorf("user %s updated, but their sessions were not revoked (run the command again): %w", u.Username, se.Err)
	}
	if err != nil {
		return err
	}
	if n > 0 {
		a.logger(cmd.ErrOrStderr()).Info("revoked refresh-token families", "sub", u.ID, "count", n, "reason", reason)
	}
	return nil
}

func newUsersSetDisabledCmd(a *app, verb string, disabled bool) *cobra.Command {
	short := "Enable a user"
	if disabled {
		short = "Disable a user: they can no longer sign in, and their sessions are revoked"
	}
	return userCmd(a, verb, short, func(cmd *cobra.Command, db *storage.DB, u storage.User) error {
		u, n, err := a.ops(cmd, db).SetUserDisabled(cmd.Context(), cliBy, u.ID, disabled)
		if err := a.sessionsEnded(cmd, u, storage.RevokeUserDisabled, n, err); err != nil {
			return err
		}
		return a.printUsers(cmd, manage.ViewUser(u), []storage.User{u})
	})
}

func newUsersDeleteCmd(a *app) *cobra.Command {
	return userCmd(a, "delete", "Delete a user and their sessions", func(cmd *cobra.Command, db *storage.DB, u storage.User) error {
		if err := a.ops(cmd, db).DeleteUser(cmd.Context(), cliBy, u.ID); err != nil {
			return err
		}
		return a.print(cmd.OutOrStdout(), map[string]any{"id": u.ID, "deleted": true}, func(tw *tabwriter.Writer) {
			fmt.Fprintf(tw, "deleted user %s (%s)\n", u.Username, u.ID)
		})
	})
}

func newUsersUnlockCmd(a *app) *cobra.Command {
	return userCmd(a, "unlock", "Clear a user's failed-login counts from every address", func(cmd *cobra.Command, db *storage.DB, u storage.User) error {
		if err := a.ops(cmd, db).Unlock(cmd.Context(), cliBy, u); err != nil {
			return err
		}
		return a.print(cmd.OutOrStdout(), map[string]any{"id": u.ID, "unlocked": true}, func(tw *tabwriter.Writer) {
			fmt.Fprintf(tw, "unlocked user %s (%s)\n", u.Username, u.ID)
		})
	})
}

package main

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/idp/password"
)

func newUsersImportCmd(a *app) *cobra.Command {
	var batch int
	var skipExisting bool
	cmd := &cobra.Command{
		Use:   "import FILE",
		Short: "Import users with their password hashes from a JSON Lines file (- for standard input)",
		Long: `Import users from FILE, one JSON object a line with the fields username, email,
email_verified, password_hash, disabled, created_at (RFC 3339) and optionally id (kept as
the subject id). Every line is checked first; bad lines are listed by number with the
reason, and then nothing is imported. The users are imported in one transaction, or with
--batch N in transactions of N users each, which a re-run with --skip-existing resumes.
Password hashes of Werkzeug, Django, bcrypt and argon2 are kept and replaced by argon2id
at each user's first login; a hash is never printed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if batch < 0 {
				return errors.New("--batch must be 0 (one transaction) or more")
			}
			var in io.Reader = cmd.InOrStdin()
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
			}
			h, err := a.hasher()
			if err != nil {
				return err
			}
			users, lines, err := manage.ParseImport(in, h, 0)
			var ie *manage.ImportError
			if errors.As(err, &ie) {
				if a.output == "json" {
					a.print(cmd.OutOrStdout(), map[string]any{"imported": 0, "bad_lines": ie.Lines, "more_bad_lines": ie.More}, nil)
				} else {
					for _, l := range ie.Lines {
						fmt.Fprintln(cmd.ErrOrStderr(), l.Error())
					}
					if ie.More > 0 {
						fmt.Fprintf(cmd.ErrOrStderr(), "... and %d more bad lines\n", ie.More)
					}
				}
				return fmt.Errorf("nothing imported: %w", err)
			}
			if err != nil {
				return err
			}
			db, err := a.openMigrated(ctx)
			if err != nil {
				return err
			}
			defer db.Close()
			opts := manage.ImportOptions{Batch: batch, SkipExisting: skipExisting}
			if isTerminal(cmd.ErrOrStderr()) {
				opts.Progress = func(done, total int) {
					fmt.Fprintf(cmd.ErrOrStderr(), "\rimported %d of %d users", done, total)
					if done == total {
						fmt.Fprintln(cmd.ErrOrStderr())
					}
				}
			}
			sum, err := a.ops(cmd, db).ImportUsers(ctx, cliBy, users, lines, password.Scheme, opts)
			if err != nil {
				return err
			}
			return a.print(cmd.OutOrStdout(), sum, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "imported %d users, skipped %d existing, from %d lines in %d transactions (%.1f s)\n",
					sum.Imported, sum.Skipped, sum.Lines, sum.Batches, sum.Seconds)
				for _, f := range slices.Sorted(maps.Keys(sum.Formats)) {
					fmt.Fprintf(tw, "  %s\t%d\n", f, sum.Formats[f])
				}
			})
		},
	}
	cmd.Flags().IntVar(&batch, "batch", 0, "import in atomic transactions of N users (0: all in one)")
	cmd.Flags().BoolVar(&skipExisting, "skip-existing", false, "skip users whose id or username exists (re-runs and resuming)")
	return cmd
}

// isTerminal reports whether w is a character device (a terminal), for progress lines.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

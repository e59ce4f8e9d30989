package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/storage"
)

func newAuditCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Read the audit trail"}
	var user, typ, client, since string
	var limit int
	list := &cobra.Command{
		Use:   "list [--user ID|USERNAME] [--type TYPE] [--since 24h|RFC3339]",
		Short: "List audit events, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			f := storage.AuditFilter{Type: typ, ClientID: client, Limit: limit}
			if typ != "" && !audit.IsType(typ) {
				names := make([]string, len(audit.Types))
				for i, t := range audit.Types {
					names[i] = string(t)
				}
				return fmt.Errorf("--type %q is not one of %s", typ, strings.Join(names, ", "))
			}
			if since != "" {
				t, err := parseSince(since, time.Now())
				if err != nil {
					return err
				}
				f.Since = t
			}
			if limit < 0 || limit > storage.MaxAuditLimit {
				return fmt.Errorf("--limit must be between 1 and %d", storage.MaxAuditLimit)
			}
			db, err := a.openMigrated(ctx)
			if err != nil {
				return err
			}
			defer db.Close()
			if user != "" {
				f.Subject = user
				if u, err := findUser(ctx, db, user); err == nil {
					f.Subject = u.ID
				}
			}
			evs, err := db.AuditEvents(ctx, f)
			if err != nil {
				return err
			}
			views := audit.Views(evs)
			return a.print(cmd.OutOrStdout(), views, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "AT\tTYPE\tOUTCOME\tACTOR\tSUBJECT\tCLIENT\tIP\tREASON")
				for _, v := range views {
					// The reason comes last: it is free text and may hold spaces.
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.At.UTC().Format(time.RFC3339), v.Type, v.Outcome,
						cell(v.Actor), cell(v.Subject), cell(v.ClientID), cell(v.IP), cell(v.Reason))
				}
			})
		},
	}
	fl := list.Flags()
	fl.StringVar(&user, "user", "", "only events about this user (id or username)")
	fl.StringVar(&typ, "type", "", "only events of this type, as login_failed")
	fl.StringVar(&client, "client", "", "only events of this client id")
	fl.StringVar(&since, "since", "", "only events since this long ago (24h) or this time (RFC 3339)")
	fl.IntVar(&limit, "limit", storage.DefaultAuditLimit, "at most this many events")
	cmd.AddCommand(list)
	return cmd
}

// parseSince reads a duration back from now, or an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--since %q is neither a duration such as 24h nor a time such as 2026-01-02T15:04:05Z", s)
}

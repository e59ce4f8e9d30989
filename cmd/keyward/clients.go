package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/storage"
)

func newClientsCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "clients", Short: "Manage OAuth clients"}
	cmd.AddCommand(newClientsCreateCmd(a), newClientsListCmd(a), newClientsGetCmd(a), newClientsDeleteCmd(a),
		newClientsRotateSecretCmd(a), newClientsSetDisabledCmd(a, "disable", true), newClientsSetDisabledCmd(a, "enable", false),
		newClientsSetIntrospectionCmd(a))
	return cmd
}

func (a *app) printClients(cmd *cobra.Command, v any, cs []storage.Client, secret string) error {
	return a.print(cmd.OutOrStdout(), v, func(tw *tabwriter.Writer) {
		fmt.Fprintln(tw, "CLIENT ID\tNAME\tTYPE\tGRANTS\tSCOPES\tAUDIENCES\tINTROSPECTS\tDISABLED")
		for _, c := range cs {
			typ := "confidential"
			if c.Public {
				typ = "public"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%t\n", c.ID, cell(c.Name), typ, cell(strings.Join(c.GrantTypes, ",")),
				cell(strings.Join(c.Scopes, ",")), cell(strings.Join(c.Audiences, ",")), cell(strings.Join(c.IntrospectAudiences, ",")), c.Disabled)
		}
		if secret != "" {
			fmt.Fprintf(tw, "\nclient secret (shown only now): %s\n", secret)
		}
	})
}

func newClientsCreateCmd(a *app) *cobra.Command {
	var spec manage.ClientSpec
	cmd := &cobra.Command{
		Use:   "create --id ID --grant GRANT [--scope SCOPES] [--audience AUD]",
		Short: "Register a client; a confidential client's secret is printed once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, secret, err := manage.NewClient(spec)
			if err != nil {
				return err
			}
			db, err := a.openMigrated(ctx)
			if err != nil {
				return err
			}
			defer db.Close()
			var reasons []string
			if c.GrantTypes.Has(manage.GrantPassword) {
				reasons = append(reasons, "password_grant_enabled") // the legacy grant is an explicit, audited choice (TE-14)
			}
			if len(c.IntrospectAudiences) > 0 {
				reasons = append(reasons, "introspect_audiences") // reads other clients' tokens: audited too
			}
			if err := a.ops(cmd, db).CreateClient(ctx, cliBy, &c, strings.Join(reasons, " ")); err != nil {
				if errors.Is(err, storage.ErrConflict) {
					return fmt.Errorf("client id %q is taken", c.ID)
				}
				return err
			}
			return a.printClients(cmd, manage.ViewClient(c, secret), []storage.Client{c}, secret)
		},
	}
	f := cmd.Flags()
	f.StringVar(&spec.ID, "id", "", "client id")
	f.StringVar(&spec.Name, "name", "", "display name")
	f.BoolVar(&spec.Public, "public", false, "a public client (no secret; authorization_code with PKCE and refresh_token grants only)")
	f.StringVar(&spec.AuthMethod, "auth-method", "", "client_secret_basic (default) or client_secret_post")
	f.StringArrayVar(&spec.Grants, "grant", nil, "allowed grant, repeatable: "+strings.Join(manage.Grants, ", "))
	f.StringArrayVar(&spec.Scopes, "scope", nil, "allowed scopes, space-separated, repeatable")
	f.StringArrayVar(&spec.Audiences, "audience", nil, "allowed audience (resource server), repeatable; the first is the default")
	f.StringArrayVar(&spec.IntrospectAudiences, "introspect-audience", nil,
		"make the client the resource server of this audience: it may introspect any access token for it; repeatable")
	f.StringArrayVar(&spec.RedirectURIs, "redirect-uri", nil,
		"redirect URI of the authorization endpoint, matched exactly (https, or http://127.0.0.1 or http://[::1] on any port); repeatable")
	f.StringArrayVar(&spec.PostLogoutRedirectURIs, "post-logout-redirect-uri", nil,
		"where RP-initiated logout may send the browser back to, matched exactly; repeatable")
	f.BoolVar(&spec.FirstParty, "first-party", false, "a first-party client: its users are not asked for consent")
	cmd.MarkFlagRequired("id")
	return cmd
}

func newClientsListCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List clients",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			db, err := a.openMigrated(ctx)
			if err != nil {
				return err
			}
			defer db.Close()
			cs, err := db.Clients(ctx)
			if err != nil {
				return err
			}
			views := make([]manage.ClientView, len(cs))
			for i, c := range cs {
				views[i] = manage.ViewClient(c, "")
			}
			return a.printClients(cmd, views, cs, "")
		},
	}
}

// clientCmd is a command on one client named by id.
func clientCmd(a *app, use, short string, run func(cmd *cobra.Command, db *storage.DB, c storage.Client) error) *cobra.Command {
	return recordCmd(a, use+" ID", short, findClient, run)
}

func findClient(ctx context.Context, db *storage.DB, id string) (storage.Client, error) {
	c, err := db.Client(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return c, fmt.Errorf("no client %q", id)
	}
	return c, err
}

func newClientsGetCmd(a *app) *cobra.Command {
	return clientCmd(a, "get", "Show a client (never its secret)", func(cmd *cobra.Command, _ *storage.DB, c storage.Client) error {
		return a.printClients(cmd, manage.ViewClient(c, ""), []storage.Client{c}, "")
	})
}

func newClientsDeleteCmd(a *app) *cobra.Command {
	return clientCmd(a, "delete", "Delete a client and its refresh tokens", func(cmd *cobra.Command, db *storage.DB, c storage.Client) error {
		if err := a.ops(cmd, db).DeleteClient(cmd.Context(), cliBy, c.ID); err != nil {
			return err
		}
		return a.print(cmd.OutOrStdout(), map[string]any{"client_id": c.ID, "deleted": true}, func(tw *tabwriter.Writer) {
			fmt.Fprintf(tw, "deleted client %s\n", c.ID)
		})
	})
}

func newClientsRotateSecretCmd(a *app) *cobra.Command {
	return clientCmd(a, "rotate-secret", "Replace a confidential client's secret; the old one stops working at once",
		func(cmd *cobra.Command, db *storage.DB, c storage.Client) error {
			c, secret, err := a.ops(cmd, db).RotateSecret(cmd.Context(), cliBy, c.ID)
			if err != nil {
				return err
			}
			return a.printClients(cmd, manage.ViewClient(c, secret), []storage.Client{c}, secret)
		})
}

func newClientsSetDisabledCmd(a *app, verb string, disabled bool) *cobra.Command {
	short := "Enable a client"
	if disabled {
		short = "Disable a client: it can no longer authenticate or use its refresh tokens"
	}
	return clientCmd(a, verb, short, func(cmd *cobra.Command, db *storage.DB, c storage.Client) error {
		// Disabling ends a compromised client's logins for good:
		// re-enabling it does not bring its refresh tokens back (CA-09).
		c, _, err := a.ops(cmd, db).SetClientDisabled(cmd.Context(), cliBy, c.ID, disabled)
		if se := (*manage.SessionsError)(nil); errors.As(err, &se) {
			return se.Err
		}
		if err != nil {
			return err
		}
		return a.printClients(cmd, manage.ViewClient(c, ""), []storage.Client{c}, "")
	})
}

func newClientsSetIntrospectionCmd(a *app) *cobra.Command {
	var auds []string
	var none bool
	cmd := clientCmd(a, "set-introspection",
		"Set the audiences whose access tokens a client may introspect (its resource-server role)",
		func(cmd *cobra.Command, db *storage.DB, c storage.Client) error {
			if len(auds) == 0 && !none {
				return errors.New("give --introspect-audience AUD (repeatable), or --none to take the role away")
			}
			if len(auds) > 0 && none {
				return errors.New("give --introspect-audience or --none, not both")
			}
			c, _, err := a.ops(cmd, db).UpdateClient(cmd.Context(), cliBy, c.ID, func(c *storage.Client) ([]string, error) {
				c.IntrospectAudiences = nil
				for _, a := range auds {
					for _, f := range strings.Fields(a) {
						if !c.IntrospectAudiences.Has(f) {
							c.IntrospectAudiences = append(c.IntrospectAudiences, f)
						}
					}
				}
				return []string{"introspect_audiences"}, nil
			})
			if se := (*manage.SessionsError)(nil); errors.As(err, &se) {
				return se.Err
			}
			if err != nil {
				return err
			}
			return a.printClients(cmd, manage.ViewClient(c, ""), []storage.Client{c}, "")
		})
	cmd.Flags().StringArrayVar(&auds, "introspect-audience", nil, "an audience the client may introspect tokens for, repeatable")
	cmd.Flags().BoolVar(&none, "none", false, "take the role away: the client may introspect only tokens issued to it")
	return cmd
}

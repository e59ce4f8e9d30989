package main

import (
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyward/keyward/idp"
	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/storage"
)

// The user commands that mail (issue 14): send-reset and set-email, and
// the notices of set-password. They go through manage.Ops, as the admin
// API's send-reset and PATCH do.

// cliMailer, when a test sets it, replaces the mail sender of one command
// and the function to call before the command exits. Otherwise the users
// commands build the sender serve would from their mail flags (--smtp-url,
// --mail-from, --mail-outbox, --mail-templates, or their KEYWARD_
// variables): the SMTP server, or the development outbox beside the
// database; flush waits (up to mailFlushTimeout) until the queued mail is
// handed over, since the CLI runs no long-lived queue.
var cliMailer func(cmd *cobra.Command) (sender manage.Mailer, flush func(), err error)

// mailFlushTimeout bounds how long a users command waits for its mail to
// be handed to the SMTP server before it exits.
const mailFlushTimeout = 30 * time.Second

// flagMailer is the default cliMailer: the sender of a's users mail flags.
func (a *app) flagMailer(cmd *cobra.Command) (manage.Mailer, func(), error) {
	setup, err := a.userMail.config(a.database, false)
	if err != nil {
		return nil, nil, err
	}
	s, err := setup.open(a.logger(cmd.ErrOrStderr()))
	if err != nil {
		return nil, nil, err
	}
	return s, func() { closeMail(cmd.Context(), s, mailFlushTimeout) }, nil
}

// publicURLFlag adds --public-url, the base of the links mailed, to cmd.
func publicURLFlag(cmd *cobra.Command, v *string) {
	cmd.Flags().StringVar(v, "public-url", "", "absolute base URL of the links mailed, as in https://id.example.com (the server's --public-url; required)")
}

// mailOps is a.ops with mail: the sender of cliMailer, links on publicURL
// (checked when links is set). flush must run before the command returns.
// Without a sender, required says whether that is an error (a command
// whose point is the mail).
func (a *app) mailOps(cmd *cobra.Command, db *storage.DB, publicURL string, links, required bool) (*manage.Ops, func(), error) {
	o := a.ops(cmd, db)
	flush := func() {}
	var sender manage.Mailer
	mailer := cliMailer
	if mailer == nil {
		mailer = a.flagMailer
	}
	sender, flush, err := mailer(cmd)
	if err != nil {
		return nil, nil, err
	}
	if sender == nil {
		if required {
			return nil, nil, errors.New("mail is not configured, so no link can be sent")
		}
		if links {
			a.logger(cmd.ErrOrStderr()).Warn("mail disabled: no verification link is sent")
		}
	} else if _, err := idp.ParseIssuer(publicURL); links && err != nil {
		return nil, nil, fmt.Errorf("--public-url: %w", err)
	}
	o.SetMail(manage.MailConfig{Sender: sender, PublicURL: publicURL, Log: a.logger(cmd.ErrOrStderr())})
	return o, flush, nil
}

func newUsersSendResetCmd(a *app) *cobra.Command {
	var publicURL string
	cmd := userCmd(a, "send-reset", "Mail a user a link to set a new password (their address must be verified)",
		func(cmd *cobra.Command, db *storage.DB, u storage.User) error {
			if u.Email == "" || !u.EmailVerified {
				return fmt.Errorf("user %s has no verified e-mail address to send a link to", u.Username)
			}
			o, flush, err := a.mailOps(cmd, db, publicURL, true, true)
			if err != nil {
				return err
			}
			defer flush()
			if err := o.SendReset(cmd.Context(), cliBy, u); err != nil {
				return err
			}
			return a.print(cmd.OutOrStdout(), map[string]any{"id": u.ID, "sent": true}, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "sent a password-reset link to the verified address of %s (%s)\n", u.Username, u.ID)
			})
		})
	publicURLFlag(cmd, &publicURL)
	return cmd
}

func newUsersSetEmailCmd(a *app) *cobra.Command {
	var publicURL string
	cmd := recordCmd(a, "set-email ID|USERNAME EMAIL", "Set a user's e-mail address; a verified one stays until the new one is verified",
		findUser, func(cmd *cobra.Command, db *storage.DB, u storage.User) error {
			addr, err := manage.NormalizeEmail(cmd.Flags().Arg(1))
			if err != nil {
				return err
			}
			o, flush, err := a.mailOps(cmd, db, publicURL, true, false)
			if err != nil {
				return err
			}
			defer flush()
			if u, err = o.SetEmail(cmd.Context(), cliBy, u.ID, addr); err != nil {
				return err
			}
			return a.printUsers(cmd, manage.ViewUser(u), []storage.User{u})
		})
	cmd.Args = cobra.ExactArgs(2)
	publicURLFlag(cmd, &publicURL)
	return cmd
}

package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyward/keyward/idp/mail"
)

// newMailCmd reads the development outbox, where serve writes account mail
// when no --smtp-url is set (docs/mail.md).
func newMailCmd(a *app) *cobra.Command {
	var outbox string
	cmd := &cobra.Command{Use: "mail", Short: "Read the development mail outbox"}
	cmd.PersistentFlags().StringVar(&outbox, "outbox", "",
		"the outbox directory (default: "+mail.OutboxDirName+" beside the --database SQLite file, as serve uses it)")
	dir := func() string {
		if outbox != "" {
			return outbox
		}
		return defaultOutbox(a.database)
	}
	cmd.AddCommand(newMailListCmd(a, dir), newMailShowCmd(a, dir))
	return cmd
}

func newMailListCmd(a *app, dir func() string) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the mails in the outbox, oldest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			list, err := listOutbox(dir())
			if err != nil {
				return err
			}
			return a.print(cmd.OutOrStdout(), list, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "N\tTIME\tTO\tSUBJECT\tFILE")
				for _, e := range list {
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", e.N, e.Time.UTC().Format(time.RFC3339), cell(e.To), cell(e.Subject), e.File)
				}
			})
		},
	}
}

func newMailShowCmd(a *app, dir func() string) *cobra.Command {
	var raw bool
	cmd := &cobra.Command{
		Use:   "show N|last|FILE",
		Short: "Print one mail of the outbox: its headers and text part (N as in mail list; last is the newest)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			file, err := outboxFile(dir(), args[0])
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if raw {
				f, err := os.Open(file)
				if err != nil {
					return err
				}
				defer f.Close()
				_, err = io.Copy(out, f)
				return err
			}
			m, err := mail.ReadOutbox(file)
			if err != nil {
				return err
			}
			return a.print(out, m, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "From:\t%s\nTo:\t%s\nDate:\t%s\nSubject:\t%s\nFile:\t%s\n", m.From, m.To, m.Time.UTC().Format(time.RFC3339), m.Subject, m.File)
				tw.Flush()
				fmt.Fprintf(out, "\n%s", m.Text)
			})
		},
	}
	cmd.Flags().BoolVar(&raw, "raw", false, "print the .eml file as it is (quoted-printable, both parts)")
	return cmd
}

// listOutbox lists dir, saying what a missing outbox likely means.
func listOutbox(dir string) ([]mail.OutboxEntry, error) {
	list, err := mail.ListOutbox(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no outbox at %s: serve has written no mail there yet (or give --outbox, or the --database serve uses)", dir)
	}
	return list, err
}

// outboxFile resolves show's argument: a number from mail list, last (the
// newest), a file in the outbox, or a path.
func outboxFile(dir, arg string) (string, error) {
	n, err := strconv.Atoi(arg)
	if err == nil || arg == "last" {
		list, err := listOutbox(dir)
		if err != nil {
			return "", err
		}
		if arg == "last" {
			n = len(list)
		}
		if n < 1 || n > len(list) {
			return "", fmt.Errorf("no mail %d in %s: it holds %d (keyward mail list)", n, dir, len(list))
		}
		return list[n-1].File, nil
	}
	if _, err := os.Stat(arg); err == nil {
		return arg, nil
	}
	if in := filepath.Join(dir, filepath.Base(arg)); fileExists(in) {
		return in, nil
	}
	return "", fmt.Errorf("no mail %s, neither a path nor a file in %s", arg, dir)
}

func fileExists(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

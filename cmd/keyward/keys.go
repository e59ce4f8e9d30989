package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/metrics"
	"github.com/keyward/keyward/keys"
	"github.com/keyward/keyward/storage"
)

// keyPolicyFlags set the rotation schedule; serve and keys rotate share them.
type keyPolicyFlags struct {
	rotationPeriod, jwksMaxAge, publishMargin time.Duration
	keySize                                   int
	algorithm                                 string
}

func (k *keyPolicyFlags) register(fl *pflag.FlagSet) {
	fl.DurationVar(&k.rotationPeriod, "key-rotation-period", keys.DefaultRotationPeriod, "how long a signing key stays active (1m or more)")
	fl.DurationVar(&k.jwksMaxAge, "jwks-max-age", keys.DefaultJWKSMaxAge, "Cache-Control max-age of the JWKS; a new key is published this long (plus the margin) before it signs")
	fl.DurationVar(&k.publishMargin, "key-publish-margin", keys.DefaultPublishMargin, "added to --jwks-max-age before a new key signs, and to the token lifetime before a retired key leaves the JWKS")
	fl.IntVar(&k.keySize, "key-size", keys.DefaultKeySize, "RSA signing key size: 2048, 3072 or 4096")
	fl.StringVar(&k.algorithm, "key-algorithm", keys.AlgRS256, "signing algorithm of new keys: RS256, ES256 (P-256) or EdDSA (Ed25519); "+
		"a change publishes a key of the new algorithm, which signs once the JWKS max-age plus margin has passed (docs/keys.md)")
}

// keyPolicy checks the flags and returns the policy, naming the flag at fault.
func (k *keyPolicyFlags) keyPolicy() (keys.Policy, error) {
	switch {
	case k.rotationPeriod < keys.MinRotationPeriod:
		return keys.Policy{}, fmt.Errorf("--key-rotation-period must be at least %v, got %v", keys.MinRotationPeriod, k.rotationPeriod)
	case k.jwksMaxAge <= 0:
		return keys.Policy{}, fmt.Errorf("--jwks-max-age must be positive, got %v", k.jwksMaxAge)
	case k.keySize != 2048 && k.keySize != 3072 && k.keySize != 4096:
		return keys.Policy{}, fmt.Errorf("--key-size must be 2048, 3072 or 4096, got %d", k.keySize)
	case !slices.Contains(keys.Algorithms, k.algorithm):
		return keys.Policy{}, fmt.Errorf("--key-algorithm must be one of %s, got %q", strings.Join(keys.Algorithms, ", "), k.algorithm)
	}
	p, err := keys.Policy{RotationPeriod: k.rotationPeriod, JWKSMaxAge: k.jwksMaxAge, PublishMargin: k.publishMargin,
		KeySize: k.keySize, Algorithm: k.algorithm}.WithDefaults()
	if err != nil {
		return keys.Policy{}, fmt.Errorf("--key-publish-margin: %w", err)
	}
	return p, nil
}

// keyAges feeds the key-age metric from the manager's current set.
func keyAges(km *keys.Manager) func() []metrics.KeyAge {
	return func() []metrics.KeyAge {
		var out []metrics.KeyAge
		for _, k := range km.Keys() {
			out = append(out, metrics.KeyAge{KID: k.KID, State: k.State, Age: time.Since(k.CreatedAt)})
		}
		return out
	}
}

func newKeysCmd(a *app) *cobra.Command {
	var kf kekFlags
	var pf keyPolicyFlags
	cmd := &cobra.Command{Use: "keys", Short: "Inspect, rotate and revoke signing keys"}
	kf.register(cmd.PersistentFlags())
	pf.register(cmd.PersistentFlags())
	// The servers record the max-age, margin and algorithm they publish
	// with; the CLI's flags only stand in while none has.
	for _, name := range []string{"jwks-max-age", "key-publish-margin", "key-algorithm"} {
		f := cmd.PersistentFlags().Lookup(name)
		f.Usage += " (used only while no keyward serve has recorded its own in the database)"
	}

	// rotator opens the database and a Rotator with the key-encryption key.
	rotator := func(cmd *cobra.Command) (*storage.DB, *keys.Rotator, error) {
		p, err := pf.keyPolicy()
		if err != nil {
			return nil, nil, err
		}
		db, err := a.openMigrated(cmd.Context())
		if err != nil {
			return nil, nil, err
		}
		kek, err := kf.load(a, a.logger(cmd.ErrOrStderr()))
		if err != nil {
			db.Close()
			return nil, nil, err
		}
		r, err := keys.NewRotator(db, kek, p, time.Now)
		if err != nil {
			db.Close()
			return nil, nil, err
		}
		return db, r, nil
	}

	list := &cobra.Command{
		Use:   "list",
		Short: "List the published signing keys",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, err := a.openMigrated(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			ks, err := keys.List(cmd.Context(), db)
			if err != nil {
				return err
			}
			views := ks
			return a.print(cmd.OutOrStdout(), views, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "KID\tALG\tSTATE\tCREATED\tACTIVATES\tRETIRES\tEXPIRES")
				for _, v := range views {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.KID, v.Alg, v.State, v.CreatedAt.Format(time.RFC3339),
						v.ActivatesAt.Format(time.RFC3339), v.RetiresAt.Format(time.RFC3339), v.ExpiresAt.Format(time.RFC3339))
				}
			})
		},
	}

	var force bool
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Promote the next key to active as soon as it is safe: now, or scheduled for the servers to carry out",
		Long: "Promote the next key to active and publish a new next key, as soon as every JWKS copy a\n" +
			"resource server may have cached holds the next key: at once if it has been published for the\n" +
			"servers' JWKS max-age plus margin (recorded in the database by keyward serve), else the rotation\n" +
			"is scheduled for that moment, printed, and carried out by the running servers.\n" +
			"--force rotates now regardless (resource servers may then meet an unknown kid and refetch).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, r, err := rotator(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			rot, err := r.Rotate(cmd.Context(), force)
			if err != nil {
				return fmt.Errorf("rotate: %w", err)
			}
			at := rot.At.UTC().Add(time.Second - 1).Truncate(time.Second) // never shown before the moment
			switch {
			case rot.Scheduled:
				a.audit(cmd, db, audit.KeyRotationScheduled, rot.Activated, "at "+at.Format(time.RFC3339))
			case rot.Retired == "":
				a.audit(cmd, db, audit.KeyRotated, rot.Activated, "no key was signing")
			case rot.Forced:
				a.audit(cmd, db, audit.KeyRotated, rot.Activated, "forced; retired "+rot.Retired)
			default:
				a.audit(cmd, db, audit.KeyRotated, rot.Activated, "retired "+rot.Retired)
			}
			return a.print(cmd.OutOrStdout(), map[string]any{"retired": rot.Retired, "active": rot.Activated, "next": rot.Next,
				"forced": rot.Forced, "scheduled": rot.Scheduled, "at": rot.At.UTC()},
				func(tw *tabwriter.Writer) {
					if rot.Scheduled {
						fmt.Fprintf(tw, "rotation scheduled for %s (in %s), when every cached JWKS holds the next key\n",
							at.Format(time.RFC3339), time.Until(rot.At).Round(time.Second))
						fmt.Fprintf(tw, "key %s signs until then, key %s from then; the running keyward servers carry it out\n", rot.Retired, rot.Activated)
						return
					}
					switch {
					case rot.Retired == "":
						fmt.Fprintf(tw, "no key was signing: active key is now %s; next key %s\n", rot.Activated, rot.Next)
					case rot.Forced:
						fmt.Fprintf(tw, "active key is now %s (was %s), forced before every cached JWKS holds it; next key %s\n", rot.Activated, rot.Retired, rot.Next)
					default:
						fmt.Fprintf(tw, "active key is now %s (was %s); next key %s\n", rot.Activated, rot.Retired, rot.Next)
					}
				})
		},
	}
	rotate.Flags().BoolVar(&force, "force", false, "rotate now, even if the next key has not been published for the JWKS max-age plus the margin")

	var revokeKID string
	revoke := &cobra.Command{
		Use:   "revoke KID | --kid=KID",
		Short: "Emergency: remove a key from the JWKS at once (a fresh key signs if it was active)",
		Long: "Emergency: remove a key from the JWKS at once (a fresh key signs if it was active).\n" +
			"A kid is base64url and may begin with '-': give such a kid as --kid=KID (or after --).",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			kid := revokeKID
			switch {
			case len(args) == 1 && kid != "":
				return errors.New("give the kid once: as an argument or as --kid")
			case len(args) == 1:
				kid = args[0]
			case kid == "":
				return errors.New("name the key to revoke: keyward keys revoke --kid=KID")
			}
			db, r, err := rotator(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			rev, err := r.Revoke(cmd.Context(), kid)
			if err != nil {
				return fmt.Errorf("revoke %s: %w", kid, err)
			}
			a.audit(cmd, db, audit.KeyRevoked, rev.KID, "was "+rev.State)
			return a.print(cmd.OutOrStdout(), map[string]any{"revoked": rev.KID, "state": rev.State, "active": rev.Active, "next": rev.Next},
				func(tw *tabwriter.Writer) {
					active := "active key " + rev.Active
					if rev.Activated != "" {
						active = "active key is now " + rev.Activated
					}
					fmt.Fprintf(tw, "revoked %s (was %s); %s, next key %s\n", rev.KID, rev.State, active, rev.Next)
				})
		},
	}

	revoke.Flags().StringVar(&revokeKID, "kid", "", "the key to revoke (a kid that begins with '-' must be given this way, as --kid=KID)")

	var newFile string
	rewrap := &cobra.Command{
		Use:   "rewrap --new-key-encryption-key-file FILE",
		Short: "Re-encrypt every signing key under a new key-encryption key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			newKEK, err := keys.ReadKEKFile(newFile)
			if err != nil {
				return fmt.Errorf("--new-key-encryption-key-file: %w", err)
			}
			db, err := a.openMigrated(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			old, err := kf.load(a, a.logger(cmd.ErrOrStderr()))
			if err != nil {
				return err
			}
			n, err := keys.Rewrap(cmd.Context(), db, old, newKEK)
			if err != nil {
				return err
			}
			return a.print(cmd.OutOrStdout(), map[string]any{"rewrapped": n}, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "re-encrypted %d keys; restart every replica with the new key-encryption key\n", n)
			})
		},
	}
	rewrap.Flags().StringVar(&newFile, "new-key-encryption-key-file", "", "file holding the new 32-byte key-encryption key")
	rewrap.MarkFlagRequired("new-key-encryption-key-file")

	cmd.AddCommand(list, rotate, revoke, rewrap)
	return cmd
}

package main

import (
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/keyward/keyward/idp"
	"github.com/keyward/keyward/keys"
	"github.com/keyward/keyward/storage"
)

// keyPolicyFlags set the rotation schedule; serve and keys rotate share them.
type keyPolicyFlags struct {
	rotationPeriod, jwksMaxAge, publishMargin time.Duration
	keySize                                   int
}

func (k *keyPolicyFlags) register(fl *pflag.FlagSet) {
	fl.DurationVar(&k.rotationPeriod, "key-rotation-period", keys.DefaultRotationPeriod, "how long a signing key stays active (1m or more)")
	fl.DurationVar(&k.jwksMaxAge, "jwks-max-age", keys.DefaultJWKSMaxAge, "Cache-Control max-age of the JWKS; a new key is published this long (plus the margin) before it signs")
	fl.DurationVar(&k.publishMargin, "key-publish-margin", keys.DefaultPublishMargin, "added to --jwks-max-age before a new key signs, and to the token lifetime before a retired key leaves the JWKS")
	fl.IntVar(&k.keySize, "key-size", keys.DefaultKeySize, "RSA signing key size: 2048, 3072 or 4096")
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
	}
	p, err := keys.Policy{RotationPeriod: k.rotationPeriod, JWKSMaxAge: k.jwksMaxAge, PublishMargin: k.publishMargin, KeySize: k.keySize}.WithDefaults()
	if err != nil {
		return keys.Policy{}, fmt.Errorf("--key-publish-margin: %w", err)
	}
	return p, nil
}

// keyAges feeds the key-age metric from the manager's current set.
func keyAges(km *keys.Manager) func() []idp.KeyAge {
	return func() []idp.KeyAge {
		var out []idp.KeyAge
		for _, k := range km.Keys() {
			out = append(out, idp.KeyAge{KID: k.KID, State: k.State, Age: time.Since(k.CreatedAt)})
		}
		return out
	}
}

type keyView struct {
	KID         string    `json:"kid"`
	State       string    `json:"state"`
	Alg         string    `json:"alg"`
	CreatedAt   time.Time `json:"created"`
	ActivatesAt time.Time `json:"activates"`
	RetiresAt   time.Time `json:"retires"`
	ExpiresAt   time.Time `json:"expires"`
}

func newKeysCmd(a *app) *cobra.Command {
	var kf kekFlags
	var pf keyPolicyFlags
	cmd := &cobra.Command{Use: "keys", Short: "Inspect, rotate and revoke signing keys"}
	kf.register(cmd.PersistentFlags())
	pf.register(cmd.PersistentFlags())

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
			views := make([]keyView, len(ks))
			for i, k := range ks {
				views[i] = keyView{k.KID, k.State, k.Alg, k.CreatedAt, k.ActivatesAt, k.RetiresAt, k.ExpiresAt}
			}
			return a.print(cmd.OutOrStdout(), views, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "KID\tSTATE\tCREATED\tACTIVATES\tRETIRES\tEXPIRES")
				for _, v := range views {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", v.KID, v.State, v.CreatedAt.Format(time.RFC3339),
						v.ActivatesAt.Format(time.RFC3339), v.RetiresAt.Format(time.RFC3339), v.ExpiresAt.Format(time.RFC3339))
				}
			})
		},
	}

	var force bool
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Promote the next key to active now and publish a new next key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, r, err := rotator(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			rot, err := r.Rotate(cmd.Context(), force)
			if err != nil {
				return fmt.Errorf("rotate: %w (--force rotates anyway; resource servers may then refetch the JWKS)", err)
			}
			a.audit(cmd, db, idp.EventKeyRotated, rot.Activated, "retired "+rot.Retired)
			return a.print(cmd.OutOrStdout(), map[string]any{"retired": rot.Retired, "active": rot.Activated, "next": rot.Next, "forced": rot.Forced},
				func(tw *tabwriter.Writer) {
					fmt.Fprintf(tw, "active key is now %s (was %s); next key %s\n", rot.Activated, rot.Retired, rot.Next)
				})
		},
	}
	rotate.Flags().BoolVar(&force, "force", false, "rotate even if the next key has not been published for --jwks-max-age plus the margin")

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
			a.audit(cmd, db, idp.EventKeyRevoked, rev.KID, "was "+rev.State)
			return a.print(cmd.OutOrStdout(), map[string]any{"revoked": rev.KID, "state": rev.State, "active": rev.Activated, "next": rev.Next},
				func(tw *tabwriter.Writer) {
					fmt.Fprintf(tw, "revoked %s (%s); active key %s, next key %s\n", rev.KID, rev.State, rev.Activated, rev.Next)
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

package main

import (
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/spf13/cobra"
)

// healthcheckTimeout bounds the whole probe, connection to last byte.
const healthcheckTimeout = 2 * time.Second

// newHealthcheckCmd is the container image's health check (it has no curl):
// it asks a running server's readiness probe and exits 0 on 200, 1
// otherwise. It opens nothing else.
func newHealthcheckCmd() *cobra.Command {
	var target string
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Exit 0 when a running server's /readyz answers 200 (the container health check)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := &http.Client{
				Timeout:       healthcheckTimeout,
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			}
			req, err := http.NewRequestWithContext(cmd.Context(), http.MethodGet, target, nil)
			if err != nil {
				return fmt.Errorf("healthcheck: --url: %w", err)
			}
			res, err := c.Do(req)
			if err != nil {
				return fmt.Errorf("healthcheck: %w", err)
			}
			defer res.Body.Close()
			io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
			if res.StatusCode != http.StatusOK {
				return fmt.Errorf("healthcheck: %s answered %s", target, res.Status)
			}
			fmt.Fprintln(cmd.OutOrStdout(), "ready")
			return nil
		},
	}
	cmd.Flags().StringVar(&target, "url", "http://127.0.0.1:8080/readyz", "the readiness probe to ask")
	return cmd
}

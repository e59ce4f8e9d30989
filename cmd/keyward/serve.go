package main

import "github.com/spf13/cobra"

func newServeCmd(a *app) *cobra.Command {
	return &cobra.Command{Use: "serve", Short: "Run the server"}
}

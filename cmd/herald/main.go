// Command herald runs herald's demo, publishes and tails messages,
// provisions topology, inspects and redrives dead letters, and starts local
// clouds for development.
//
//	herald demo                       the order flow on mem://
//	herald provision --url U --topic T --consumer C...
//	herald publish --url U --topic T --type OrderPlaced --data '{...}'
//	herald tail --url U --topic T --consumer C
//	herald dlq ls|peek|redrive|purge --url U --topic T --consumer C
//	herald emulate servicebus|aws|pubsub
//
// --url defaults to $HERALD_URL, else mem://. Cloud credentials come from
// each cloud's standard chain, never from flags.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// rootCmd is the herald command; each subcommand's file adds itself in init.
var rootCmd = &cobra.Command{
	Use:           "herald",
	Short:         "Event-driven messaging on AWS, Google Cloud and Azure",
	SilenceUsage:  true,
	SilenceErrors: true,
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := rootCmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "herald:", err)
		os.Exit(1)
	}
}

package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/seed06bc8277/herald"
	"github.com/seed06bc8277/herald/providers"
)

func init() {
	rootCmd.AddCommand(newProvisionCmd())
}

func newProvisionCmd() *cobra.Command {
	var t target
	var consumers []string
	var top providers.Topology
	cmd := &cobra.Command{
		Use:   "provision",
		Short: "Create a topic, its consumers and their dead-letter queues (idempotent)",
		Long: `Create the topic, one queue or subscription per consumer and each consumer's
dead-letter queue, by herald's naming convention:

  AWS            SNS topic T; SQS queue T-C subscribed with raw delivery;
                 SQS queue T-C-dlq as its redrive target
  Pub/Sub        topic T; subscription T-C; topic and subscription T-C-dlq
  Service Bus    topic T; subscription C; its $DeadLetterQueue

Running it again changes nothing that exists, so adding a consumer is
provisioning again with the longer list. The cloud's own delivery limit is
set above --max-attempts, so that herald dead-letters first, with the
reason.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(consumers) == 0 {
				return fmt.Errorf("%w: at least one --consumer is required", herald.ErrInvalid)
			}
			if top.Lease < 0 || top.MaxAttempts < 0 {
				return fmt.Errorf("%w: --lease and --max-attempts must not be negative",
					herald.ErrInvalid)
			}
			c, err := t.open(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			top.Topic, top.Consumers = t.topic, consumers
			if err := c.Provision(cmd.Context(), top); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "provisioned topic %s with consumer(s) %s\n",
				t.topic, strings.Join(consumers, ", "))
			return nil
		},
	}
	t.addFlags(cmd.Flags(), false)
	f := cmd.Flags()
	f.StringSliceVar(&consumers, "consumer", nil,
		"consumer name; repeat or separate with commas (at least one)")
	f.BoolVar(&top.Ordered, "ordered", false,
		"support ordering keys (FIFO topic and queues, Pub/Sub ordering, Service Bus sessions)")
	f.DurationVar(&top.Lease, "lease", 0,
		"default lease of a delivery (0: the provider's, 30s on most)")
	f.IntVar(&top.MaxAttempts, "max-attempts", 0,
		"herald's attempt limit the topology allows for (0: 5)")
	return cmd
}

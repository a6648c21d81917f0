package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/seed06bc8277/herald/localstack"
	"github.com/seed06bc8277/herald/localstack/servicebus"
	sbprov "github.com/seed06bc8277/herald/providers/servicebus"
)

func init() {
	cmd := &cobra.Command{
		Use:   "emulate",
		Short: "Run a local cloud for development until interrupted",
		Long: `Run a local stand-in for a cloud in this process until Ctrl-C, and print how
to reach it: herald's Service Bus emulator, fauxqs for SNS and SQS (needs
Node 20 and npm), or pstest for Pub/Sub. Everything lives in memory.`,
	}
	rootCmd.AddCommand(cmd)

	var listen, config string
	sb := &cobra.Command{
		Use:   "servicebus",
		Short: "Run herald's Azure Service Bus emulator (AMQP 1.0)",
		Long: `Run herald's Azure Service Bus emulator. Entities come from --config, a
Config.json in the schema of Microsoft's emulator, and from herald provision.
It prints the connection string clients use.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return emulateServiceBus(cmd.Context(), cmd.OutOrStdout(), listen, config)
		},
	}
	sb.Flags().StringVar(&listen, "listen", "127.0.0.1:0", "address to listen on (port 0: any free port)")
	sb.Flags().StringVar(&config, "config", "", "Config.json with the namespace's entities")
	cmd.AddCommand(sb)

	cmd.AddCommand(&cobra.Command{
		Use:   "aws",
		Short: "Run fauxqs, a local SNS and SQS",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := localstack.StartAWS(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			fmt.Fprintf(cmd.OutOrStdout(), "SNS and SQS at %s\n\n  export AWS_ENDPOINT_URL=%s\n"+
				"  export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test\n  herald demo --url '%s'\n",
				a.Endpoint, a.Endpoint, a.URL)
			return waitForInterrupt(cmd.Context(), cmd.OutOrStdout())
		},
	})

	cmd.AddCommand(&cobra.Command{
		Use:   "pubsub",
		Short: "Run pstest, a local Google Cloud Pub/Sub",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := localstack.StartPubSub(cmd.Context())
			if err != nil {
				return err
			}
			defer p.Close()
			fmt.Fprintf(cmd.OutOrStdout(), "Pub/Sub at %s, project %s\n\n  export PUBSUB_EMULATOR_HOST=%s\n"+
				"  herald demo --url '%s'\n", p.Host, p.Project, p.Host, p.URL)
			return waitForInterrupt(cmd.Context(), cmd.OutOrStdout())
		},
	})
}

func emulateServiceBus(ctx context.Context, out io.Writer, listen, config string) error {
	var cfg servicebus.Config
	if config != "" {
		var err error
		if cfg, err = servicebus.LoadConfig(config); err != nil {
			return err
		}
	}
	em, err := servicebus.New(cfg)
	if err != nil {
		return err
	}
	defer em.Close()
	if err := em.Listen(listen); err != nil {
		return err
	}

	// Beside AMQP, the emulator's administration over HTTP on loopback,
	// so that herald provision (and the demo) in other processes can
	// create entities.
	host, _, err := net.SplitHostPort(em.Addr())
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           sbprov.AdminHandler(&localstack.EmulatorAdmin{Emulator: em}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	url := fmt.Sprintf("azuresb://%s?admin=http://%s", em.Addr(), ln.Addr())
	fmt.Fprintf(out, "Service Bus emulator at %s (administration at http://%s)\n\n"+
		"  export HERALD_SERVICEBUS_CONNECTION_STRING='%s'\n"+
		"  herald demo --url '%s'\n", em.Addr(), ln.Addr(), em.ConnectionString(), url)
	return waitForInterrupt(ctx, out)
}

// waitForInterrupt blocks until the command's context ends (Ctrl-C).
func waitForInterrupt(ctx context.Context, out io.Writer) error {
	fmt.Fprintln(out, "\nRunning; Ctrl-C stops it.")
	<-ctx.Done()
	return nil
}

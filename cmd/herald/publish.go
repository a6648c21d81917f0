package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/seed06bc8277/herald"
)

func init() {
	rootCmd.AddCommand(newPublishCmd())
}

func newPublishCmd() *cobra.Command {
	var t target
	var m herald.Message
	var data, dataFile string
	var attrs []string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "publish",
		Short: "Publish one message to every consumer of a topic",
		Long: `Publish one message to every consumer of a topic. --id defaults to a new
UUIDv7; give a stable one to make a re-publish recognisable. --data-file -
reads the payload from standard input. It prints the message ID.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if data != "" && dataFile != "" {
				return fmt.Errorf("%w: give --data or --data-file, not both", herald.ErrInvalid)
			}
			m.Data = []byte(data)
			if dataFile != "" {
				b, err := readData(cmd.InOrStdin(), dataFile)
				if err != nil {
					return err
				}
				m.Data = b
			}
			for _, kv := range attrs {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return fmt.Errorf("%w: --attr %q: want name=value", herald.ErrInvalid, kv)
				}
				if m.Attributes == nil {
					m.Attributes = map[string]string{}
				}
				m.Attributes[k] = v
			}

			ctx := cmd.Context()
			c, err := t.open(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			pub, err := c.Publisher(ctx, t.topic, nil)
			if err != nil {
				return t.hint(err)
			}
			err = pub.Publish(ctx, &m)
			if cerr := pub.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(out, map[string]string{"id": m.ID, "topic": t.topic})
			}
			fmt.Fprintf(out, "published %s to %s\n", m.ID, t.topic)
			return nil
		},
	}
	t.addFlags(cmd.Flags(), false)
	f := cmd.Flags()
	f.StringVar(&m.Type, "type", "", "message type, such as OrderPlaced (required)")
	_ = cmd.MarkFlagRequired("type")
	f.StringVar(&m.ID, "id", "", "message ID, the idempotency key (default: a new UUIDv7)")
	f.StringVar(&data, "data", "", "payload")
	f.StringVar(&dataFile, "data-file", "", "read the payload from this file (- for standard input)")
	f.StringArrayVar(&attrs, "attr", nil, "attribute name=value (repeatable)")
	f.StringVar(&m.OrderingKey, "ordering-key", "", "ordering key: same key, handled in order")
	f.StringVar(&m.Subject, "subject", "", "subject within the source, such as an order ID")
	f.StringVar(&m.Source, "source", "", "source (default herald)")
	f.StringVar(&m.ContentType, "content-type", "",
		"media type of the payload, such as application/json")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

// maxDataFile bounds what --data-file reads: 16 MiB, above every
// provider's message limit, so that a wrong file fails fast.
const maxDataFile = 16 << 20

func readData(stdin io.Reader, path string) ([]byte, error) {
	r := stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("--data-file: %w", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxDataFile+1))
	if err != nil {
		return nil, fmt.Errorf("--data-file %s: %w", path, err)
	}
	if len(b) > maxDataFile {
		return nil, fmt.Errorf("%w: --data-file %s is over 16 MiB", herald.ErrTooLarge, path)
	}
	return b, nil
}

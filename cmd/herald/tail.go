package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/seed06bc8277/herald"
)

func init() {
	rootCmd.AddCommand(newTailCmd())
}

func newTailCmd() *cobra.Command {
	var t target
	var asJSON bool
	var max int
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "Print a consumer's messages as they arrive (consumes them)",
		Long: `Print each message of a consumer of a topic as it arrives, until interrupted
or until --max messages were printed.

tail runs as that consumer: it acks what it prints, so the consumer's other
replicas do not get those messages. Provision a consumer of its own to
watch a topic without taking messages from anyone (herald provision
--consumer tail). Messages are handled one at a time, in arrival order.
--json prints one JSON object a line.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if max < 0 {
				return fmt.Errorf("%w: --max %d is negative", herald.ErrInvalid, max)
			}
			c, err := t.open(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			p := &tailPrinter{out: cmd.OutOrStdout(), json: asJSON, max: max, stop: cancel}
			logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(),
				&slog.HandlerOptions{Level: slog.LevelWarn}))
			opts := &herald.ConsumerOptions{Concurrency: 1, Logger: logger}
			if max > 0 {
				opts.BatchSize = min(max, 64)
			}
			cons, err := c.Consumer(t.topic, t.consumer, p.handle, opts)
			if err != nil {
				return err
			}
			return t.hint(cons.Run(ctx))
		},
	}
	t.addFlags(cmd.Flags(), true)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object a line")
	cmd.Flags().IntVar(&max, "max", 0, "stop after this many messages (0: run until interrupted)")
	return cmd
}

// tailPrinter prints each message it handles.
type tailPrinter struct {
	out  io.Writer
	json bool
	max  int
	stop context.CancelFunc

	mu sync.Mutex
	n  int
}

// tailMessage is a message as tail --json prints it.
type tailMessage struct {
	ID          string            `json:"id"`
	Type        string            `json:"type"`
	Source      string            `json:"source,omitempty"`
	Time        time.Time         `json:"time"`
	Subject     string            `json:"subject,omitempty"`
	ContentType string            `json:"contentType,omitempty"`
	OrderingKey string            `json:"orderingKey,omitempty"`
	Attributes  map[string]string `json:"attributes,omitempty"`
	Attempt     int               `json:"attempt"`
	// Data is the payload when it is UTF-8; DataBase64 otherwise.
	Data       *string `json:"data,omitempty"`
	DataBase64 []byte  `json:"dataBase64,omitempty"`
}

func (p *tailPrinter) handle(_ context.Context, m *herald.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.max > 0 && p.n >= p.max {
		// Past --max: give it back (tail is stopping) rather than print it.
		return fmt.Errorf("tail: stopped after %d messages", p.max)
	}
	var err error
	if p.json {
		tm := tailMessage{ID: m.ID, Type: m.Type, Source: m.Source, Time: m.Time,
			Subject: m.Subject, ContentType: m.ContentType, OrderingKey: m.OrderingKey,
			Attributes: m.Attributes, Attempt: m.Attempt}
		if utf8.Valid(m.Data) {
			s := string(m.Data)
			tm.Data = &s
		} else {
			tm.DataBase64 = m.Data
		}
		var b []byte
		if b, err = json.Marshal(tm); err == nil {
			_, err = fmt.Fprintf(p.out, "%s\n", b)
		}
	} else {
		var line strings.Builder
		fmt.Fprintf(&line, "%s  %s  %s  attempt=%d", m.Time.UTC().Format(time.RFC3339Nano),
			m.Type, m.ID, m.Attempt)
		if m.OrderingKey != "" {
			fmt.Fprintf(&line, " key=%s", m.OrderingKey)
		}
		for _, k := range slices.Sorted(maps.Keys(m.Attributes)) {
			fmt.Fprintf(&line, " %s=%s", k, m.Attributes[k])
		}
		if utf8.Valid(m.Data) {
			fmt.Fprintf(&line, "  %s", strings.Join(strings.Fields(string(m.Data)), " "))
		} else {
			fmt.Fprintf(&line, "  (%d bytes, not UTF-8)", len(m.Data))
		}
		_, err = fmt.Fprintln(p.out, line.String())
	}
	if err != nil {
		return fmt.Errorf("tail: print %s: %w", m.ID, err)
	}
	p.n++
	if p.max > 0 && p.n >= p.max {
		p.stop()
	}
	return nil
}

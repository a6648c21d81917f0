package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/seed06bc8277/herald"
	"github.com/seed06bc8277/herald/dlq"
)

func init() {
	rootCmd.AddCommand(newDLQCmd())
}

// target is the --url, --topic and --consumer flags that most commands
// share.
type target struct {
	url, topic, consumer string
}

func (t *target) addFlags(f *pflag.FlagSet, consumer bool) {
	f.StringVar(&t.url, "url", "", "provider URL (default $HERALD_URL, else mem://)")
	f.StringVar(&t.topic, "topic", "", "topic name (required)")
	_ = cobra.MarkFlagRequired(f, "topic")
	if consumer {
		f.StringVar(&t.consumer, "consumer", "", "consumer name (required)")
		_ = cobra.MarkFlagRequired(f, "consumer")
	}
}

// open connects to the provider the --url flag names.
func (t *target) open(ctx context.Context) (*herald.Client, error) {
	return herald.Open(ctx, t.url)
}

// hint adds to a not-found error on mem:// that its topology lives in one
// process only.
func (t *target) hint(err error) error {
	u := t.url
	if u == "" {
		u = os.Getenv(herald.EnvURL)
	}
	if err == nil || !errors.Is(err, herald.ErrNotFound) ||
		(u != "" && !strings.HasPrefix(u, "mem:")) {
		return err
	}
	return fmt.Errorf("%w (mem:// lives in one process: a topic provisioned by another "+
		"herald command is gone; use a cloud URL)", err)
}

// isTerminal reports whether r or w is a terminal (a character device). A
// variable, so that tests can pretend.
var isTerminal = func(f any) bool {
	file, ok := f.(*os.File)
	if !ok {
		return false
	}
	st, err := file.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// dlqFlags are the flags of the dlq subcommands.
type dlqFlags struct {
	target
	json      bool
	reasons   []string
	types     []string
	ids       []string
	olderThan time.Duration
	newerThan time.Duration
	limit     int
	wait      time.Duration
}

func (o *dlqFlags) addFilterFlags(cmd *cobra.Command, limit int) {
	f := cmd.Flags()
	f.StringSliceVar(&o.reasons, "reason", nil,
		"only letters dead-lettered for these reasons (malformed, max-attempts, permanent, conflict)")
	f.StringSliceVar(&o.types, "type", nil, "only letters of these message types")
	f.StringSliceVar(&o.ids, "id", nil, "only letters with these message IDs")
	f.DurationVar(&o.olderThan, "older-than", 0, "only letters dead-lettered at least this long ago")
	f.DurationVar(&o.newerThan, "newer-than", 0, "only letters dead-lettered less than this long ago")
	f.IntVar(&o.limit, "limit", limit, "act on at most this many letters (0: all)")
}

func (o *dlqFlags) scan() dlq.ScanOptions {
	return dlq.ScanOptions{
		Filter: dlq.Filter{Reasons: o.reasons, Types: o.types, IDs: o.ids,
			OlderThan: o.olderThan, NewerThan: o.newerThan},
		Limit:       o.limit,
		ReceiveWait: o.wait,
	}
}

// queue opens the consumer's dead-letter queue; the caller closes both.
func (o *dlqFlags) queue(ctx context.Context) (*herald.Client, *dlq.Queue, error) {
	if o.limit < 0 {
		return nil, nil, fmt.Errorf("%w: --limit %d is negative", herald.ErrInvalid, o.limit)
	}
	c, err := o.open(ctx)
	if err != nil {
		return nil, nil, err
	}
	q, err := dlq.OpenClient(ctx, c, o.topic, o.consumer)
	if err != nil {
		c.Close()
		return nil, nil, o.hint(err)
	}
	return c, q, nil
}

func newDLQCmd() *cobra.Command {
	o := &dlqFlags{}
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "Inspect, redrive and purge a consumer's dead letters",
		Long: `Inspect, redrive and purge the dead letters of one consumer of a topic.

Reading a dead-letter queue leases its letters for the time of the scan;
letters not acted on are given back unchanged when it ends. Filters
(--reason, --type, --id, --older-than, --newer-than) combine: a letter
must pass all of them. mem:// lives in one process, so on mem:// these
commands see only what the same process made (they are for tests there).`,
	}
	pf := cmd.PersistentFlags()
	o.target.addFlags(pf, true)
	pf.BoolVar(&o.json, "json", false, "print JSON instead of a table")
	pf.DurationVar(&o.wait, "receive-wait", dlq.DefaultReceiveWait,
		"how long one receive waits for letters; two empty receives end a scan")
	cmd.AddCommand(newDLQListCmd(o), newDLQPeekCmd(o), newDLQRedriveCmd(o), newDLQPurgeCmd(o))
	return cmd
}

func newDLQListCmd(o *dlqFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List dead letters: ID, type, reason, last error, attempts, age, size",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, q, err := o.queue(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			defer q.Close()
			ls, err := q.List(cmd.Context(), o.scan())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if ls == nil {
				ls = []dlq.Letter{} // JSON [] rather than null
			}
			if o.json {
				return writeJSON(out, ls)
			}
			printLetters(out, ls, time.Now())
			return nil
		},
	}
	o.addFilterFlags(cmd, 0)
	return cmd
}

func newDLQPeekCmd(o *dlqFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "peek",
		Short: "Show dead letters in full, payload included (1 unless --limit)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, q, err := o.queue(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			defer q.Close()
			ls, err := q.Peek(cmd.Context(), o.scan())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if ls == nil {
				ls = []dlq.Letter{}
			}
			if o.json {
				return writeJSON(out, ls)
			}
			if len(ls) == 0 {
				fmt.Fprintln(out, "no dead letters match")
			}
			for i, l := range ls {
				if i > 0 {
					fmt.Fprintln(out)
				}
				printLetter(out, l)
			}
			return nil
		},
	}
	o.addFilterFlags(cmd, 1)
	return cmd
}

func newDLQRedriveCmd(o *dlqFlags) *cobra.Command {
	var dry bool
	var rate float64
	cmd := &cobra.Command{
		Use:   "redrive",
		Short: "Send dead letters back to the consumer that failed, and to no one else",
		Long: `Send the matching dead letters back to the consumer that failed (and to no
other consumer of the topic), keeping their IDs and attributes, then remove
them from the dead-letter queue. A letter is removed only after its message
was sent: an interrupted redrive loses nothing, and running it again sends
the rest (the consumer's idempotency store recognises anything sent twice).
It exits non-zero when any letter failed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, q, err := o.queue(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			defer q.Close()
			opts := dlq.RedriveOptions{ScanOptions: o.scan(), DryRun: dry, Rate: rate}
			bar := newProgress(ctx, cmd.ErrOrStderr(), q, "moved", o.limit)
			opts.Progress = bar.update
			rep, err := q.Redrive(ctx, opts)
			bar.done()
			return report(cmd.OutOrStdout(), o.json, "redrive", rep, err)
		},
	}
	cmd.Flags().BoolVar(&dry, "dry-run", false, "count what would move; send and remove nothing")
	cmd.Flags().Float64Var(&rate, "rate", 0, "send at most this many letters a second (0: no limit)")
	o.addFilterFlags(cmd, 0)
	return cmd
}

func newDLQPurgeCmd(o *dlqFlags) *cobra.Command {
	var dry, yes bool
	cmd := &cobra.Command{
		Use:   "purge",
		Short: "Remove dead letters for good (asks first unless --yes)",
		Long: `Remove the matching dead letters for good. It asks for confirmation on a
terminal; without a terminal it refuses unless --yes is given.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, q, err := o.queue(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			defer q.Close()
			if !dry && !yes {
				if err := confirmPurge(cmd, q, o); err != nil {
					return err
				}
			}
			opts := dlq.PurgeOptions{ScanOptions: o.scan(), DryRun: dry}
			bar := newProgress(ctx, cmd.ErrOrStderr(), q, "purged", o.limit)
			opts.Progress = bar.update
			rep, err := q.Purge(ctx, opts)
			bar.done()
			return report(cmd.OutOrStdout(), o.json, "purge", rep, err)
		},
	}
	cmd.Flags().BoolVar(&dry, "dry-run", false, "count what would be removed; remove nothing")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	o.addFilterFlags(cmd, 0)
	return cmd
}

// errNotConfirmed: purge was not confirmed.
var errNotConfirmed = errors.New("purge not confirmed: nothing removed")

// confirmPurge asks on the terminal; it refuses without one.
func confirmPurge(cmd *cobra.Command, q *dlq.Queue, o *dlqFlags) error {
	in := cmd.InOrStdin()
	if !isTerminal(in) {
		return fmt.Errorf("%w: refusing to purge without a terminal to confirm on; "+
			"pass --yes (or --dry-run to count first)", herald.ErrInvalid)
	}
	what := "every dead letter"
	if !o.scan().Filter.IsZero() || o.limit > 0 {
		what = "the matching dead letters"
	}
	n, err := q.Count(cmd.Context())
	about := ""
	if err == nil {
		about = fmt.Sprintf(" (the queue holds about %d)", n)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "Remove %s of %s/%s for good%s? Type yes: ",
		what, o.topic, o.consumer, about)
	line, _ := bufio.NewReader(in).ReadString('\n')
	if strings.TrimSpace(strings.ToLower(line)) != "yes" {
		return errNotConfirmed
	}
	return nil
}

// report prints a redrive's or purge's report and returns its error, or
// one saying how many letters failed.
func report(out io.Writer, asJSON bool, op string, rep dlq.Report, err error) error {
	if asJSON {
		if werr := writeJSON(out, rep); werr != nil {
			return werr
		}
	} else {
		verb, n := "moved", rep.Moved
		if op == "purge" {
			verb, n = "purged", rep.Purged
		}
		if rep.DryRun {
			verb = "would have " + verb
		}
		remaining := "unknown"
		if rep.Remaining >= 0 {
			remaining = fmt.Sprint(rep.Remaining)
		}
		fmt.Fprintf(out, "%s %d, skipped %d, failed %d; %s left in the queue (%v",
			verb, n, rep.Skipped, rep.Failed, remaining, rep.Elapsed.Round(time.Millisecond))
		if s := rep.Elapsed.Seconds(); n > 0 && s > 0 {
			fmt.Fprintf(out, ", %.0f letters/s", float64(n)/s)
		}
		fmt.Fprintln(out, ")")
		for _, f := range rep.Failures {
			fmt.Fprintf(out, "  failed %s: %s\n", f.ID, f.Error)
		}
	}
	if err != nil {
		return fmt.Errorf("%s stopped: %w", op, err)
	}
	if rep.Failed > 0 {
		return fmt.Errorf("%s: %d letter(s) failed and stay in the dead-letter queue", op, rep.Failed)
	}
	return nil
}

func writeJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printLetters prints the letters as a table.
func printLetters(out io.Writer, ls []dlq.Letter, now time.Time) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tTYPE\tREASON\tATTEMPTS\tCONSUMER\tDEAD-LETTERED\tSIZE\tLAST ERROR")
	for _, l := range ls {
		typ := l.Type
		if l.DecodeError != "" {
			typ = "(undecodable)"
		}
		errText := l.Error
		if l.DecodeError != "" {
			errText = l.DecodeError
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\t%d\t%s\n", cell(l.ID, 40), cell(typ, 30),
			cell(l.Reason, 14), l.Attempts, cell(l.Consumer, 20), ago(l.DeadLetteredAt, now),
			l.Size, cell(errText, 60))
	}
	w.Flush()
	fmt.Fprintf(out, "%d dead letter(s)\n", len(ls))
}

// printLetter prints one letter in full.
func printLetter(out io.Writer, l dlq.Letter) {
	w := tabwriter.NewWriter(out, 0, 4, 1, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "%s:\t%s\n", k, v)
		}
	}
	row("ID", l.ID)
	row("Type", l.Type)
	row("Source", l.Source)
	row("Subject", l.Subject)
	if !l.Time.IsZero() {
		row("Time", l.Time.Format(time.RFC3339Nano))
	}
	row("Content type", l.ContentType)
	row("Ordering key", l.OrderingKey)
	row("Reason", l.Reason)
	row("Last error", l.Error)
	row("Decode error", l.DecodeError)
	row("Attempts", fmt.Sprint(l.Attempts))
	row("Consumer", l.Consumer)
	if !l.DeadLetteredAt.IsZero() {
		row("Dead-lettered", l.DeadLetteredAt.Format(time.RFC3339Nano))
	}
	row("Provider ID", l.ProviderID)
	for k, v := range l.Attributes {
		row("Attribute "+k, v)
	}
	row("Size", fmt.Sprintf("%d bytes", l.Size))
	w.Flush()
	fmt.Fprintln(out, "Data:")
	if utf8.Valid(l.Data) {
		fmt.Fprintln(out, string(l.Data))
	} else {
		fmt.Fprintf(out, "(%d bytes, not UTF-8; use --json for base64)\n", len(l.Data))
	}
}

// cell cuts s to n runes and keeps it on one line.
func cell(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return "-"
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// ago says how long before now t was, to the second.
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t).Round(time.Second)
	if d < 0 {
		d = 0
	}
	return d.String() + " ago"
}

// progress draws a progress bar on a terminal; elsewhere it draws nothing.
type progress struct {
	w     io.Writer
	verb  string
	total int // 0 when unknown
	start time.Time
	last  time.Time
	shown bool
}

// newProgress returns a bar over the queue's count (or the limit, when
// smaller), drawn on w only when w is a terminal.
func newProgress(ctx context.Context, w io.Writer, q *dlq.Queue, verb string,
	limit int) *progress {
	if !isTerminal(w) {
		return nil
	}
	p := &progress{w: w, verb: verb, start: time.Now()}
	if n, err := q.Count(ctx); err == nil {
		p.total = n
	}
	if limit > 0 && (p.total == 0 || limit < p.total) {
		p.total = limit
	}
	return p
}

// update redraws the bar, at most ten times a second.
func (p *progress) update(r dlq.Report) {
	if p == nil {
		return
	}
	now := time.Now()
	if now.Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.last, p.shown = now, true
	n := r.Moved + r.Purged
	seen := n + r.Failed + r.Skipped
	const width = 30
	bar := strings.Repeat("?", width)
	if p.total > 0 {
		filled := min(width, seen*width/p.total)
		bar = strings.Repeat("#", filled) + strings.Repeat(".", width-filled)
	}
	rate := float64(n) / max(now.Sub(p.start).Seconds(), 1e-3)
	fmt.Fprintf(p.w, "\r[%s] %s %d of ~%d, skipped %d, failed %d, %.0f/s ",
		bar, p.verb, n, p.total, r.Skipped, r.Failed, rate)
}

// done clears the bar.
func (p *progress) done() {
	if p != nil && p.shown {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

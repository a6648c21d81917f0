package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	neturl "net/url"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/seed06bc8277/herald"
	"github.com/seed06bc8277/herald/dlq"
	"github.com/seed06bc8277/herald/examples/orderplaced"
	"github.com/seed06bc8277/herald/idempotency/sqlite"
	"github.com/seed06bc8277/herald/providers"
)

func init() {
	var o demoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the order flow: checkout publishes, three consumers react",
		Long: `Run the order flow end to end. Checkout publishes OrderPlaced events and
returns; email, warehouse and analytics consume them independently. The
mailer fails now and then, one order has no email address (a poison
message), some events are published twice and one legacy record is not an
event at all. The summary shows what each consumer did, the dead letters
with their reasons, and that no effect ran twice.

By default it runs in process (mem://) with an SQLite idempotency store in
a temporary directory; --url runs the same flow on another provider.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	cmd.Flags().StringVar(&o.url, "url", "", "provider URL (default $HERALD_URL, else mem://)")
	cmd.Flags().IntVar(&o.orders, "orders", 20, "orders to place")
	cmd.Flags().StringVar(&o.store, "store", "", "SQLite idempotency store file (default: a temporary file)")
	cmd.Flags().DurationVar(&o.timeout, "timeout", 2*time.Minute, "give up after this long")
	rootCmd.AddCommand(cmd)
}

type demoOptions struct {
	url     string
	orders  int
	store   string
	timeout time.Duration
}

// The demo's faults: the mailer fails the first attempt of every fourth
// order, order 7 has no email address, every fifth order is published
// twice, and one legacy record that is no event goes out on the topic.
const poisonOrder = 7

func runDemo(ctx context.Context, out io.Writer, o demoOptions) error {
	if o.orders < 1 {
		return fmt.Errorf("--orders must be at least 1")
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()

	client, err := herald.Open(ctx, o.url)
	if err != nil {
		return err
	}
	defer client.Close()
	store, storePath, err := openDemoStore(o.store)
	if err != nil {
		return err
	}
	defer store.Close()
	if o.store == "" {
		defer os.RemoveAll(filepath.Dir(storePath))
		storePath = "(a temporary file)"
	}

	// A fresh topic per run, so that a cloud's leftovers from an earlier
	// run never mix in.
	var b [3]byte
	_, _ = rand.Read(b[:])
	topic := "orders-demo-" + hex.EncodeToString(b[:])
	if err := orderplaced.Provision(ctx, client, topic); err != nil {
		return fmt.Errorf("provision: %w", err)
	}

	// The consumers start first, as services would already be running.
	mail := &flakyMailer{attempts: map[int]int{}}
	stock := &countingStock{reserved: map[int]int{}}
	revenue := &orderplaced.Revenue{}
	handlers := []struct {
		name string
		h    herald.Handler
	}{
		{orderplaced.Email, orderplaced.EmailHandler(mail)},
		{orderplaced.Warehouse, orderplaced.WarehouseHandler(stock)},
		{orderplaced.Analytics, revenue.Handler()},
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	runCtx, stopConsumers := context.WithCancel(ctx)
	defer stopConsumers()
	var wg sync.WaitGroup
	consumers := make([]*herald.Consumer, len(handlers))
	runErrs := make([]error, len(handlers))
	for i, hc := range handlers {
		c, err := client.Consumer(topic, hc.name, hc.h, &herald.ConsumerOptions{
			Store:   store,
			Backoff: herald.Backoff{Base: 100 * time.Millisecond, Max: time.Second},
			Lease:   5 * time.Second,
			Logger:  quiet,
		})
		if err != nil {
			return err
		}
		consumers[i] = c
		wg.Go(func() { runErrs[i] = c.Run(runCtx) })
	}

	// Checkout publishes and returns.
	published, twice, err := placeOrders(ctx, client, topic, o.orders)
	if err != nil {
		return err
	}

	// Wait until every consumer has settled every event.
	expected := int64(o.orders)
	for !demoSettled(consumers, expected, int64(twice)) {
		select {
		case <-ctx.Done():
			stopConsumers()
			wg.Wait()
			return fmt.Errorf("the flow did not settle within %v", o.timeout)
		case <-time.After(50 * time.Millisecond):
		}
	}
	stopConsumers()
	wg.Wait()
	for i, err := range runErrs {
		if err != nil {
			return fmt.Errorf("consumer %s: %w", handlers[i].name, err)
		}
	}

	letters, err := demoLetters(ctx, client, topic)
	if err != nil {
		return err
	}
	printDemo(out, client, o, storePath, published, twice, consumers, letters, stock, revenue)
	if n := stock.twice(); n > 0 {
		return fmt.Errorf("%d effects ran twice", n)
	}
	return nil
}

// placeOrders publishes the orders, every fifth one twice, and a legacy
// record that is not an event.
func placeOrders(ctx context.Context, client *herald.Client, topic string, n int) (int, int, error) {
	checkout, err := orderplaced.NewCheckout(ctx, client, topic)
	if err != nil {
		return 0, 0, err
	}
	defer checkout.Close()
	twice := 0
	for id := 1; id <= n; id++ {
		o := orderplaced.Order{
			ID: id, Customer: fmt.Sprintf("customer-%d", id), Email: fmt.Sprintf("c%d@example.com", id),
			SKU: "sku-" + fmt.Sprint(id%3), Quantity: 1 + id%2, Cents: int64(1000 + 250*id),
		}
		if id == poisonOrder {
			o.Email = ""
		}
		if err := checkout.PlaceOrder(ctx, o); err != nil {
			return 0, 0, err
		}
		if id%5 == 0 { // a retried request publishes the same event again
			if err := checkout.PlaceOrder(ctx, o); err != nil {
				return 0, 0, err
			}
			twice++
		}
	}
	raw, err := client.Provider().OpenTopic(ctx, topic)
	if err != nil {
		return 0, 0, err
	}
	defer raw.Close()
	err = raw.SendBatch(ctx, []*providers.Message{{ID: "legacy-1", Body: []byte("CSV,order,1,legacy")}})
	return n, twice, err
}

// demoSettled reports whether every consumer handled or dead-lettered
// every event, dead-lettered the legacy record and skipped the events
// published twice.
func demoSettled(cs []*herald.Consumer, events, twice int64) bool {
	for _, c := range cs {
		s := c.Stats()
		if s.Handled+s.DeadLettered < events+1 || s.Duplicates < twice {
			return false
		}
	}
	return true
}

func demoLetters(ctx context.Context, client *herald.Client, topic string) (map[string][]dlq.Letter, error) {
	out := map[string][]dlq.Letter{}
	for _, name := range []string{orderplaced.Email, orderplaced.Warehouse, orderplaced.Analytics} {
		q, err := dlq.OpenClient(ctx, client, topic, name)
		if err != nil {
			return nil, err
		}
		letters, err := q.List(ctx, dlq.ScanOptions{ReceiveWait: 200 * time.Millisecond})
		_ = q.Close()
		if err != nil {
			return nil, fmt.Errorf("dead letters of %s: %w", name, err)
		}
		out[name] = letters
	}
	return out, nil
}

func printDemo(out io.Writer, client *herald.Client, o demoOptions, storePath string, published, twice int,
	cs []*herald.Consumer, letters map[string][]dlq.Letter, stock *countingStock,
	revenue *orderplaced.Revenue) {
	url := o.url
	if url == "" {
		url = os.Getenv(herald.EnvURL)
	}
	if url == "" {
		url = herald.DefaultURL
	}
	fmt.Fprintf(out, "herald demo on %s, idempotency store: SQLite %s\n\n", redactURL(url), storePath)
	fmt.Fprintf(out, "checkout published %d OrderPlaced events (%d of them twice) and 1 legacy record\n\n",
		published, twice)

	fmt.Fprintf(out, "%-10s %8s %19s %8s %14s\n", "consumer", "handled", "duplicates skipped",
		"retries", "dead-lettered")
	for _, c := range cs {
		s := c.Stats()
		fmt.Fprintf(out, "%-10s %8d %19d %8d %14d\n", c.Name(), s.Handled, s.Duplicates, s.Retried,
			s.DeadLettered)
	}

	fmt.Fprintln(out, "\ndead letters")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for _, c := range cs {
		ls := letters[c.Name()]
		sort.Slice(ls, func(i, j int) bool { return ls[i].ID < ls[j].ID })
		for _, l := range ls {
			why, id := l.Error, l.ID
			if l.DecodeError != "" {
				why = l.DecodeError
			}
			if id == "" {
				id = "(" + l.ProviderID + ")" // not an envelope: the cloud's own ID
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\tattempt %d\t%s\n", c.Name(), id, l.Reason, l.Attempts, why)
		}
	}
	_ = tw.Flush()

	orders, cents := revenue.Totals()
	fmt.Fprintf(out, "\nwarehouse reserved stock for %d orders; analytics counted %d orders, %d.%02d in revenue\n",
		stock.orders(), orders, cents/100, cents%100)
	fmt.Fprintf(out, "effects that ran twice: %d\n", stock.twice())
}

// openDemoStore opens the SQLite store at path, or in a temporary
// directory when path is empty.
func openDemoStore(path string) (*sqlite.Store, string, error) {
	if path == "" {
		dir, err := os.MkdirTemp("", "herald-demo-")
		if err != nil {
			return nil, "", err
		}
		path = filepath.Join(dir, "idempotency.db")
	}
	s, err := sqlite.Open(path)
	return s, path, err
}

// flakyMailer fails the first attempt of every fourth order, as a mail
// server under load would.
type flakyMailer struct {
	mu       sync.Mutex
	attempts map[int]int
}

var errMailBusy = errors.New("mail server: 421 try again later")

func (m *flakyMailer) Send(ctx context.Context, to, subject string) error {
	var order int
	_, _ = fmt.Sscanf(subject, "Order %d", &order)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.attempts[order]++
	if order%4 == 1 && m.attempts[order] == 1 {
		return errMailBusy
	}
	return nil
}

// countingStock records each reservation, to show that none ran twice.
type countingStock struct {
	mu       sync.Mutex
	reserved map[int]int
}

func (s *countingStock) Reserve(ctx context.Context, order int, sku string, qty int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reserved[order]++
	return nil
}

func (s *countingStock) orders() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.reserved)
}

func (s *countingStock) twice() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.reserved {
		if c > 1 {
			n++
		}
	}
	return n
}

// redactURL hides any user information a URL carries by mistake.
func redactURL(raw string) string {
	u, err := neturl.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.User == nil {
		return raw
	}
	return u.Redacted()
}

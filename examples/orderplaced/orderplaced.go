// Package orderplaced is herald's order flow written as application code
// would write it. Checkout persists an order, publishes one OrderPlaced
// event and returns; email, warehouse and analytics each react on their own
// consumer, so a slow or broken one never blocks checkout or the others.
//
// The handlers take their side effects (a mailer, a stock service) as small
// interfaces, so that the same code runs in production, in tests and in the
// `herald demo` command, which wraps them with failures.
package orderplaced

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/seed06bc8277/herald"
	"github.com/seed06bc8277/herald/providers"
)

// Topic is the topic orders are published to.
const Topic = "orders"

// EventType is the type of the event checkout publishes.
const EventType = "OrderPlaced"

// The consumers of Topic.
const (
	Email     = "email"
	Warehouse = "warehouse"
	Analytics = "analytics"
)

// Order is the event's payload.
type Order struct {
	ID       int    `json:"id"`
	Customer string `json:"customer"`
	Email    string `json:"email"`
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
	Cents    int64  `json:"cents"`
}

// Provision creates the topic and its three consumers, idempotently.
func Provision(ctx context.Context, c *herald.Client, topic string) error {
	return c.Provision(ctx, providers.Topology{
		Topic: topic, Consumers: []string{Email, Warehouse, Analytics},
	})
}

// Checkout places orders: it would persist the order in its own database,
// then publish one OrderPlaced event and return without waiting for anyone.
type Checkout struct {
	pub *herald.Publisher
}

// NewCheckout returns a checkout publishing to topic.
func NewCheckout(ctx context.Context, c *herald.Client, topic string) (*Checkout, error) {
	pub, err := c.Publisher(ctx, topic, &herald.PublisherOptions{Source: "/checkout"})
	if err != nil {
		return nil, err
	}
	return &Checkout{pub: pub}, nil
}

// PlaceOrder publishes the order's OrderPlaced event. The message ID is
// derived from the order, so publishing the same order again (a retried
// request, say) is recognised by every consumer as the same event.
func (co *Checkout) PlaceOrder(ctx context.Context, o Order) error {
	data, err := json.Marshal(o)
	if err != nil {
		return err
	}
	return co.pub.Publish(ctx, &herald.Message{
		ID:          EventID(o.ID),
		Type:        EventType,
		Subject:     fmt.Sprint(o.ID),
		ContentType: "application/json",
		Data:        data,
	})
}

// Close releases the publisher.
func (co *Checkout) Close() error { return co.pub.Close() }

// EventID is the message ID of an order's OrderPlaced event.
func EventID(order int) string { return fmt.Sprintf("order-%d/placed", order) }

// decode reads the order from an event; a payload that is not an order can
// never succeed, so the error is permanent.
func decode(m *herald.Message) (Order, error) {
	var o Order
	if err := json.Unmarshal(m.Data, &o); err != nil {
		return o, herald.Permanent(fmt.Errorf("OrderPlaced %s: %w", m.ID, err))
	}
	return o, nil
}

// Mailer sends email.
type Mailer interface {
	Send(ctx context.Context, to, subject string) error
}

// EmailHandler sends the order confirmation. An order without an address
// can never be mailed: that error is permanent and the event is
// dead-lettered at once. A failing mailer is retried.
func EmailHandler(mail Mailer) herald.Handler {
	return func(ctx context.Context, m *herald.Message) error {
		o, err := decode(m)
		if err != nil {
			return err
		}
		if o.Email == "" {
			return herald.Permanent(fmt.Errorf("order %d has no email address", o.ID))
		}
		return mail.Send(ctx, o.Email, fmt.Sprintf("Order %d confirmed", o.ID))
	}
}

// Stock reserves items for an order.
type Stock interface {
	Reserve(ctx context.Context, order int, sku string, quantity int) error
}

// WarehouseHandler reserves the order's stock.
func WarehouseHandler(s Stock) herald.Handler {
	return func(ctx context.Context, m *herald.Message) error {
		o, err := decode(m)
		if err != nil {
			return err
		}
		return s.Reserve(ctx, o.ID, o.SKU, o.Quantity)
	}
}

// Revenue totals orders for analytics. It is safe for concurrent use.
type Revenue struct {
	mu     sync.Mutex
	orders int
	cents  int64
}

// Handler adds each order to the totals.
func (r *Revenue) Handler() herald.Handler {
	return func(ctx context.Context, m *herald.Message) error {
		o, err := decode(m)
		if err != nil {
			return err
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		r.orders++
		r.cents += o.Cents
		return nil
	}
}

// Totals returns the orders counted and their revenue in cents.
func (r *Revenue) Totals() (orders int, cents int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.orders, r.cents
}

package orderplaced_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/seed06bc8277/herald"
	"github.com/seed06bc8277/herald/examples/orderplaced"
)

type printMailer struct{}

func (printMailer) Send(ctx context.Context, to, subject string) error {
	fmt.Printf("mail to %s: %s\n", to, subject)
	return nil
}

type stock struct {
	mu       sync.Mutex
	reserved map[int]int
}

func (s *stock) Reserve(ctx context.Context, order int, sku string, qty int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reserved[order] += qty
	return nil
}

// The whole flow on the in-process provider: checkout publishes and
// returns; three consumers react independently.
func Example() {
	ctx := context.Background()
	client, _ := herald.Open(ctx, "mem://")
	defer client.Close()
	_ = orderplaced.Provision(ctx, client, orderplaced.Topic)

	checkout, _ := orderplaced.NewCheckout(ctx, client, orderplaced.Topic)
	defer checkout.Close()
	_ = checkout.PlaceOrder(ctx, orderplaced.Order{
		ID: 1001, Email: "ada@example.com", SKU: "book", Quantity: 2, Cents: 4200,
	})

	st := &stock{reserved: map[int]int{}}
	revenue := &orderplaced.Revenue{}
	handlers := map[string]herald.Handler{
		orderplaced.Email:     orderplaced.EmailHandler(printMailer{}),
		orderplaced.Warehouse: orderplaced.WarehouseHandler(st),
		orderplaced.Analytics: revenue.Handler(),
	}
	runCtx, stop := context.WithTimeout(ctx, 300*time.Millisecond)
	defer stop()
	var wg sync.WaitGroup
	for name, h := range handlers {
		c, _ := client.Consumer(orderplaced.Topic, name, h, nil)
		wg.Go(func() { _ = c.Run(runCtx) })
	}
	wg.Wait()
	orders, cents := revenue.Totals()
	fmt.Printf("reserved %d books; revenue %d orders, %d cents\n", st.reserved[1001], orders, cents)
	// Output:
	// mail to ada@example.com: Order 1001 confirmed
	// reserved 2 books; revenue 1 orders, 4200 cents
}

package dlq_test

import (
	"context"
	"testing"
	"time"

	"github.com/seed06bc8277/herald/dlq"
	"github.com/seed06bc8277/herald/providers"
)

// BenchmarkRedrive redrives 10,000 dead letters on mem:// per iteration
// and reports letters moved per second. Making the letters and draining
// the consumer's queue afterwards are not timed.
func BenchmarkRedrive(b *testing.B) {
	const n = 10_000
	e := newEnv(b)
	q := open(b, e, "email")
	ls := letters("o", "OrderPlaced", providers.ReasonMaxAttempts, n)
	b.ReportAllocs()
	var moved int
	var took time.Duration
	for b.Loop() {
		b.StopTimer()
		e.deadLetter(b, "email", ls...)
		e.drain(b, "warehouse")
		b.StartTimer()

		start := time.Now()
		rep, err := q.Redrive(context.Background(), dlq.RedriveOptions{})
		took += time.Since(start)
		if err != nil || rep.Moved != n {
			b.Fatalf("redrive: %+v, %v", rep, err)
		}
		moved += rep.Moved

		b.StopTimer()
		e.drain(b, "email")
		b.StartTimer()
	}
	b.ReportMetric(float64(moved)/took.Seconds(), "msgs/s")
}

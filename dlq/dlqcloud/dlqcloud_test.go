package dlqcloud

import (
	"context"
	"testing"
	"time"

	"github.com/seed06bc8277/herald/dlq"
	"github.com/seed06bc8277/herald/providers"
)

// TestDLQOnEveryCloud lists, filters, redrives and purges on each local
// cloud: the scan must end, see every letter once, and move letters to
// the failed consumer only.
func TestDLQOnEveryCloud(t *testing.T) {
	for _, cl := range clouds {
		t.Run(cl.name, func(t *testing.T) {
			e := newEnv(t, cl)
			e.deadLetter(t, "a", "OrderPlaced", 12)
			e.deadLetter(t, "b", "OrderPaid", 8)
			e.receiveAll(t, "warehouse", 20, time.Second)
			ctx := context.Background()
			q, err := dlq.OpenClient(ctx, e.client, e.topic, "email")
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()

			ls, err := q.List(ctx, dlq.ScanOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(ls) != 20 {
				t.Fatalf("listed %d letters, want 20", len(ls))
			}
			for _, l := range ls {
				if l.Reason != providers.ReasonPermanent || l.Consumer != "email" ||
					l.Error != "template missing" || l.DecodeError != "" {
					t.Errorf("letter %+v", l)
				}
			}

			opts := dlq.RedriveOptions{}
			opts.Filter.Types = []string{"OrderPaid"}
			rep, err := q.Redrive(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Moved != 8 || rep.Skipped != 12 || rep.Failed != 0 {
				t.Errorf("redrive of OrderPaid: %+v, want 8 moved, 12 skipped", rep)
			}
			got := e.receiveAll(t, "email", 8, time.Second)
			if len(got) != 8 {
				t.Errorf("email got %d distinct messages back, want 8: %v", len(got), got)
			}
			for id, n := range got {
				if id[0] != 'b' || n != 1 {
					t.Errorf("email got %s %d times", id, n)
				}
			}
			if n := len(e.receiveAll(t, "warehouse", 0, time.Second)); n != 0 {
				t.Errorf("warehouse got %d redriven messages, want 0", n)
			}

			rep, err = q.Purge(ctx, dlq.PurgeOptions{})
			if err != nil || rep.Purged != 12 {
				t.Errorf("purge: %+v, %v; want 12 purged", rep, err)
			}
			ls, err = q.List(ctx, dlq.ScanOptions{})
			if err != nil || len(ls) != 0 {
				t.Errorf("after purge: %d letters, %v", len(ls), err)
			}
		})
	}
}

// BenchmarkRedrive redrives 10,000 dead letters (HERALD_DLQ_BENCH_N) on
// each local cloud, once per iteration, and reports letters per second.
// Making the letters is not timed; run with -benchtime 1x.
func BenchmarkRedrive(b *testing.B) {
	for _, cl := range clouds {
		b.Run(cl.name, func(b *testing.B) {
			n := benchSize()
			e := newEnv(b, cl)
			b.ReportAllocs()
			var moved int
			var took time.Duration
			round := 0
			for b.Loop() {
				b.StopTimer()
				round++
				e.deadLetter(b, "r"+string(rune('a'+round)), "OrderPlaced", n)
				ctx := context.Background()
				q, err := dlq.OpenClient(ctx, e.client, e.topic, "email")
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()

				start := time.Now()
				rep, err := q.Redrive(ctx, dlq.RedriveOptions{})
				took += time.Since(start)
				if err != nil || rep.Moved != n {
					b.Fatalf("redrive: %+v, %v", rep, err)
				}
				moved += rep.Moved

				b.StopTimer()
				q.Close()
				if got := e.receiveAll(b, "email", n, time.Second); len(got) != n {
					b.Fatalf("email got %d of %d back", len(got), n)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(moved)/took.Seconds(), "msgs/s")
		})
	}
}

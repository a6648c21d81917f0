package integration_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seed06bc8277/herald"
	"github.com/seed06bc8277/herald/idempotency/postgres"
	"github.com/seed06bc8277/herald/localstack"
	"github.com/seed06bc8277/herald/providers"
	_ "github.com/seed06bc8277/herald/providers/gcppubsub"
)

// The worker's settings travel in the environment of its process.
const (
	envWorker  = "HERALD_MP_WORKER"
	envURL     = "HERALD_MP_URL"
	envTopic   = "HERALD_MP_TOPIC"
	envDSN     = "HERALD_MP_DSN"
	envTable   = "HERALD_MP_TABLE"
	envEffects = "HERALD_MP_EFFECTS"
)

// TestMain turns the test binary into a worker process when envWorker is
// set, so the test can start real OS processes of its own code.
func TestMain(m *testing.M) {
	if os.Getenv(envWorker) != "" {
		if err := worker(); err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// worker consumes the topic as consumer "fulfil" until SIGTERM. Its effect
// is a row in the effects table; a row that already existed is recorded as
// a violation: the same message's effect ran twice.
func worker() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	pool, err := pgxpool.New(ctx, os.Getenv(envDSN))
	if err != nil {
		return err
	}
	defer pool.Close()
	client, err := herald.Open(ctx, os.Getenv(envURL))
	if err != nil {
		return err
	}
	defer client.Close()
	store := postgres.New(pool, postgres.Options{Table: os.Getenv(envTable)})
	effects := os.Getenv(envEffects)
	pid := os.Getpid()
	c, err := client.Consumer(os.Getenv(envTopic), "fulfil", func(ctx context.Context, m *herald.Message) error {
		time.Sleep(time.Duration(len(m.ID)%5) * time.Millisecond) // spread the work
		tag, err := pool.Exec(ctx, "INSERT INTO "+effects+"(id, pid) VALUES ($1, $2) ON CONFLICT DO NOTHING",
			m.ID, pid)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			_, err = pool.Exec(ctx, "INSERT INTO "+effects+"_violations(id, pid) VALUES ($1, $2)", m.ID, pid)
		}
		return err
	}, &herald.ConsumerOptions{Concurrency: 4, Store: store, Lease: 2 * time.Second,
		HandlerTimeout: 10 * time.Second})
	if err != nil {
		return err
	}
	return c.Run(ctx)
}

// Three processes share one Pub/Sub subscription and one PostgreSQL store;
// every message is published twice. Each message's effect happens once.
func TestThreeProcessesShareOneConsumerExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pool, dsn := connectPostgres(t, ctx)
	ps, err := localstack.StartPubSub(ctx)
	if err != nil {
		localstack.Unavailable(t, "google", err)
	}
	defer ps.Close()

	var b [4]byte
	_, _ = rand.Read(b[:])
	suffix := hex.EncodeToString(b[:])
	topic, table, effects := "mp-"+suffix, "herald_mp_"+suffix, "mp_effects_"+suffix
	for _, stmt := range []string{
		"CREATE TABLE " + effects + " (id text PRIMARY KEY, pid int NOT NULL)",
		"CREATE TABLE " + effects + "_violations (id text NOT NULL, pid int NOT NULL)",
	} {
		if _, err := pool.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, tbl := range []string{effects, effects + "_violations", table} {
			_, _ = pool.Exec(context.Background(), "DROP TABLE IF EXISTS "+tbl)
		}
	})
	if err := postgres.New(pool, postgres.Options{Table: table}).Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	client, err := herald.Open(ctx, ps.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	err = client.Provision(ctx, providers.Topology{Topic: topic, Consumers: []string{"fulfil"},
		Lease: 2 * time.Second, MaxAttempts: 5})
	if err != nil {
		t.Fatal(err)
	}

	// Three workers compete for the subscription.
	env := append(os.Environ(), envWorker+"=1", envURL+"="+ps.URL, envTopic+"="+topic,
		envDSN+"="+dsn, envTable+"="+table, envEffects+"="+effects)
	var procs []*exec.Cmd
	var logs []*bytes.Buffer
	for range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = env
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs, logs = append(procs, cmd), append(logs, &out)
	}
	defer func() {
		for i, p := range procs {
			_ = p.Process.Signal(syscall.SIGTERM)
			if err := p.Wait(); err != nil {
				t.Errorf("worker %d: %v\n%s", i, err, logs[i])
			}
		}
	}()

	// Every message published twice, from two goroutines at once.
	const n = 150
	pub, err := client.Publisher(ctx, topic, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for i := range n {
				err := pub.Publish(ctx, &herald.Message{ID: "order-" + strconv.Itoa(i), Type: "OrderPlaced",
					Data: []byte(strconv.Itoa(i))})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()

	count := func(q string) int {
		var c int
		if err := pool.QueryRow(ctx, q).Scan(&c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	deadline := time.Now().Add(90 * time.Second)
	for count("SELECT count(*) FROM "+effects) < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d effects after 90 s", count("SELECT count(*) FROM "+effects), n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // the duplicates' turn: none may add an effect
	if v := count("SELECT count(*) FROM " + effects + "_violations"); v != 0 {
		t.Errorf("%d effects ran twice", v)
	}
	if e := count("SELECT count(*) FROM " + effects); e != n {
		t.Errorf("%d effects, want %d", e, n)
	}
	if p := count("SELECT count(DISTINCT pid) FROM " + effects); p < 2 {
		t.Errorf("only %d of 3 processes did any work", p)
	}
}

// connectPostgres connects to the machine's PostgreSQL as postgres or
// root, or ends the test through localstack.Unavailable.
func connectPostgres(t *testing.T, ctx context.Context) (*pgxpool.Pool, string) {
	t.Helper()
	var last error
	for _, user := range []string{"postgres", "root"} {
		dsn := "postgres://" + user + "@127.0.0.1:5432/test?sslmode=disable"
		pool, err := pgxpool.New(ctx, dsn)
		if err == nil {
			if err = pool.Ping(ctx); err == nil {
				t.Cleanup(pool.Close)
				return pool, dsn
			}
			pool.Close()
		}
		last = err
	}
	localstack.Unavailable(t, "postgres", last)
	return nil, ""
}

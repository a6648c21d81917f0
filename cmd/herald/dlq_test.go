package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/seed06bc8277/herald"
	"github.com/seed06bc8277/herald/dlq"
	"github.com/seed06bc8277/herald/providers"
	"github.com/seed06bc8277/herald/providers/memory"
)

var instances atomic.Int64

// memURL returns a mem:// URL of an instance of the test's own, kept alive
// (mem://NAME lives while a client holds it) until the test ends, and a
// client on it.
func memURL(t *testing.T) (string, *herald.Client) {
	t.Helper()
	url := fmt.Sprintf("mem://cmdtest%d", instances.Add(1))
	c, err := herald.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return url, c
}

// run runs the herald command line in process with a fresh command tree
// (cobra keeps flag values between runs of one tree).
func run(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	root := &cobra.Command{Use: "herald", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(newDLQCmd(), newProvisionCmd(), newPublishCmd(), newTailCmd())
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := root.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := run(t, "", args...)
	if err != nil {
		t.Fatalf("herald %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// deadLettered provisions topic "orders" with consumers email and
// warehouse, publishes three messages (ids a1 and a2 of type A, b1 of
// type B) and one that is no envelope, and lets email's herald consumer
// fail them all, so that email's dead-letter queue holds four letters:
// three "permanent", one "malformed".
func deadLettered(t *testing.T) (string, *herald.Client) {
	t.Helper()
	url, c := memURL(t)
	mustRun(t, "provision", "--url", url, "--topic", "orders",
		"--consumer", "email", "--consumer", "warehouse")
	for _, m := range [][2]string{{"a1", "A"}, {"a2", "A"}, {"b1", "B"}} {
		mustRun(t, "publish", "--url", url, "--topic", "orders", "--id", m[0], "--type", m[1],
			"--data", `{"order":"`+m[0]+`"}`, "--attr", "tenant=t1")
	}
	ctx := context.Background()
	tp, err := c.Provider().OpenTopic(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	junk := []*providers.Message{{ID: "junk", Body: []byte("legacy")}}
	if err := tp.SendBatch(ctx, junk); err != nil {
		t.Fatal(err)
	}
	tp.Close()

	cons, err := c.Consumer("orders", "email", func(context.Context, *herald.Message) error {
		return herald.Permanent(errors.New("template missing"))
	}, &herald.ConsumerOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- cons.Run(rctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for cons.Stats().DeadLettered < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("email dead-lettered %d of 4", cons.Stats().DeadLettered)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return url, c
}

func dead(t *testing.T, c *herald.Client) int {
	t.Helper()
	st, err := c.Provider().(*memory.Provider).Stats("orders", "email")
	if err != nil {
		t.Fatal(err)
	}
	return st.Dead
}

func TestDLQListTableAndJSON(t *testing.T) {
	url, _ := deadLettered(t)
	base := []string{"--url", url, "--topic", "orders", "--consumer", "email",
		"--receive-wait", "200ms"}

	out := mustRun(t, append([]string{"dlq", "ls"}, base...)...)
	for _, want := range []string{"ID", "REASON", "LAST ERROR", "a1", "b1", "permanent",
		"template missing", "(undecodable)", "malformed", "4 dead letter(s)"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}

	out = mustRun(t, append([]string{"dlq", "ls", "--json", "--reason", "permanent"}, base...)...)
	var ls []dlq.Letter
	if err := json.Unmarshal([]byte(out), &ls); err != nil {
		t.Fatalf("ls --json: %v\n%s", err, out)
	}
	if len(ls) != 3 {
		t.Fatalf("ls --json --reason permanent listed %d letters, want 3", len(ls))
	}
	for _, l := range ls {
		if l.Consumer != "email" || l.Attempts != 1 || l.Attributes["tenant"] != "t1" ||
			l.DeadLetteredAt.IsZero() || l.Size == 0 {
			t.Errorf("letter %+v", l)
		}
	}

	out = mustRun(t, append([]string{"dlq", "peek", "--id", "junk"}, base...)...)
	if !strings.Contains(out, "Decode error:") || !strings.Contains(out, "legacy") {
		t.Errorf("peek of the malformed letter:\n%s", out)
	}
	out = mustRun(t, append([]string{"dlq", "peek", "--json", "--type", "B"}, base...)...)
	if err := json.Unmarshal([]byte(out), &ls); err != nil || len(ls) != 1 ||
		string(ls[0].Data) != `{"order":"b1"}` {
		t.Errorf("peek --json --type B: %v\n%s", err, out)
	}
}

func TestDLQRedriveCommand(t *testing.T) {
	url, c := deadLettered(t)
	base := []string{"--url", url, "--topic", "orders", "--consumer", "email",
		"--receive-wait", "200ms"}
	p := c.Provider().(*memory.Provider)
	before, _ := p.Stats("orders", "warehouse")

	out := mustRun(t, append([]string{"dlq", "redrive", "--dry-run"}, base...)...)
	if !strings.Contains(out, "would have moved 4, skipped 0, failed 0; 4 left") {
		t.Errorf("dry run printed:\n%s", out)
	}
	if n := dead(t, c); n != 4 {
		t.Fatalf("dry run left %d letters, want 4", n)
	}

	out = mustRun(t, append([]string{"dlq", "redrive", "--json", "--type", "A"}, base...)...)
	var rep dlq.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("redrive --json: %v\n%s", err, out)
	}
	if rep.Moved != 2 || rep.Skipped != 2 || rep.Remaining != 2 {
		t.Errorf("redrive --type A: %+v, want 2 moved, 2 skipped, 2 left", rep)
	}
	st, _ := p.Stats("orders", "email")
	if st.Ready != 2 {
		t.Errorf("email's queue holds %d messages after the redrive, want 2", st.Ready)
	}
	if after, _ := p.Stats("orders", "warehouse"); after.Ready != before.Ready {
		t.Errorf("warehouse's queue went from %d to %d: the redrive reached it",
			before.Ready, after.Ready)
	}

	// The progress bar appears only on a terminal.
	defer func(f func(any) bool) { isTerminal = f }(isTerminal)
	isTerminal = func(any) bool { return true }
	out, errOut, err := run(t, "", append([]string{"dlq", "redrive"}, base...)...)
	if err != nil || !strings.Contains(out, "moved 2") || !strings.Contains(errOut, "[####") {
		t.Errorf("redrive on a terminal: %v\nstdout %s\nstderr %q", err, out, errOut)
	}
}

func TestDLQPurgeAsksFirst(t *testing.T) {
	url, c := deadLettered(t)
	base := []string{"--url", url, "--topic", "orders", "--consumer", "email",
		"--receive-wait", "200ms"}

	_, _, err := run(t, "yes\n", append([]string{"dlq", "purge"}, base...)...)
	if err == nil || !strings.Contains(err.Error(), "--yes") {
		t.Errorf("purge without a terminal or --yes: %v, want a refusal naming --yes", err)
	}
	if n := dead(t, c); n != 4 {
		t.Fatalf("a refused purge left %d letters, want 4", n)
	}

	defer func(f func(any) bool) { isTerminal = f }(isTerminal)
	isTerminal = func(any) bool { return true }
	_, errOut, err := run(t, "no\n", append([]string{"dlq", "purge"}, base...)...)
	if !errors.Is(err, errNotConfirmed) || !strings.Contains(errOut, "Type yes") {
		t.Errorf("purge answered no: %v (prompt %q), want errNotConfirmed", err, errOut)
	}
	if n := dead(t, c); n != 4 {
		t.Fatalf("an unconfirmed purge left %d letters, want 4", n)
	}
	out, _, err := run(t, "yes\n", append([]string{"dlq", "purge", "--reason", "malformed"},
		base...)...)
	if err != nil || !strings.Contains(out, "purged 1, skipped 3") {
		t.Errorf("confirmed purge: %v\n%s", err, out)
	}
	isTerminal = func(any) bool { return false }
	out = mustRun(t, append([]string{"dlq", "purge", "--yes", "--json"}, base...)...)
	var rep dlq.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Purged != 3 || rep.Remaining != 0 {
		t.Errorf("purge --yes: %+v, %v", rep, err)
	}
}

func TestDLQBadInput(t *testing.T) {
	url, _ := memURL(t)
	mustRun(t, "provision", "--url", url, "--topic", "orders", "--consumer", "email")
	cases := []struct {
		args []string
		is   error
		text string
	}{
		{[]string{"dlq", "ls", "--url", "snsqs://x", "--topic", "orders", "--consumer", "email"},
			herald.ErrInvalid, "unknown scheme"},
		{[]string{"dlq", "ls", "--url", url, "--topic", "orders", "--consumer", "nobody"},
			herald.ErrNotFound, "nobody"},
		{[]string{"dlq", "redrive", "--url", url, "--topic", "gone", "--consumer", "email"},
			herald.ErrNotFound, "gone"},
		{[]string{"dlq", "ls", "--url", url, "--topic", "orders", "--consumer", "email",
			"--limit", "-1"}, herald.ErrInvalid, "--limit"},
		{[]string{"provision", "--url", url, "--topic", "orders", "--consumer", "bad name"},
			herald.ErrInvalid, "bad name"},
		{[]string{"publish", "--url", url, "--topic", "orders", "--type", "A", "--attr", "x"},
			herald.ErrInvalid, "name=value"},
	}
	for _, c := range cases {
		_, _, err := run(t, "", c.args...)
		if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.text) {
			t.Errorf("herald %s: %v, want %v mentioning %q", strings.Join(c.args, " "), err,
				c.is, c.text)
		}
	}
	out := mustRun(t, "dlq", "ls", "--json", "--url", url, "--topic", "orders",
		"--consumer", "email", "--receive-wait", "100ms")
	if strings.TrimSpace(out) != "[]" {
		t.Errorf("ls --json of an empty queue printed %q, want []", out)
	}
	_, _, err := run(t, "", "dlq", "ls", "--url", url, "--topic", "orders")
	if err == nil || !strings.Contains(err.Error(), "consumer") {
		t.Errorf("dlq ls without --consumer: %v", err)
	}
}

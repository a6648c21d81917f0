package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestProvisionPublishAndTail(t *testing.T) {
	url, _ := memURL(t)
	for range 2 { // provisioning again changes nothing and does not fail
		out := mustRun(t, "provision", "--url", url, "--topic", "orders",
			"--consumer", "email,warehouse", "--ordered", "--lease", "10s", "--max-attempts", "3")
		if !strings.Contains(out, "provisioned topic orders with consumer(s) email, warehouse") {
			t.Errorf("provision printed %q", out)
		}
	}

	out, _, err := run(t, `{"order": 1}`, "publish", "--url", url, "--topic", "orders",
		"--type", "OrderPlaced", "--id", "o-1", "--data-file", "-", "--attr", "tenant=t1",
		"--ordering-key", "cust-9", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var res map[string]string
	if err := json.Unmarshal([]byte(out), &res); err != nil || res["id"] != "o-1" {
		t.Errorf("publish --json printed %q (%v)", out, err)
	}
	out = mustRun(t, "publish", "--url", url, "--topic", "orders", "--type", "OrderPaid",
		"--data", "paid")
	if !strings.HasPrefix(out, "published ") || !strings.HasSuffix(out, " to orders\n") {
		t.Errorf("publish printed %q", out)
	}

	out = mustRun(t, "tail", "--url", url, "--topic", "orders", "--consumer", "email",
		"--max", "2", "--json")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("tail --max 2 printed %d lines:\n%s", len(lines), out)
	}
	var first tailMessage
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if first.ID != "o-1" || first.Type != "OrderPlaced" || first.Attributes["tenant"] != "t1" ||
		first.OrderingKey != "cust-9" || first.Data == nil || *first.Data != `{"order": 1}` ||
		first.Attempt != 1 {
		t.Errorf("tail printed %+v", first)
	}

	// tail consumes as the consumer: the messages are gone for email but
	// not for warehouse.
	out = mustRun(t, "tail", "--url", url, "--topic", "orders", "--consumer", "warehouse",
		"--max", "2")
	if !strings.Contains(out, "OrderPlaced  o-1  attempt=1 key=cust-9 tenant=t1  {\"order\": 1}") ||
		!strings.Contains(out, "OrderPaid") {
		t.Errorf("tail printed:\n%s", out)
	}

	_, _, err = run(t, "", "publish", "--url", url, "--topic", "orders", "--type", "A",
		"--data", "x", "--data-file", "-")
	if err == nil {
		t.Error("publish with --data and --data-file succeeded")
	}
}

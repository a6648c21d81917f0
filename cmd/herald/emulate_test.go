package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// herald emulate servicebus prints a connection string whose endpoint
// accepts connections, and stops when its context ends.
func TestEmulateServiceBusPrintsAReachableConnectionString(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- emulateServiceBus(ctx, pw, "127.0.0.1:0", "")
		_ = pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	var cs string
	for sc.Scan() {
		if _, after, ok := strings.Cut(sc.Text(), "HERALD_SERVICEBUS_CONNECTION_STRING='"); ok {
			cs = strings.TrimSuffix(after, "'")
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if !strings.Contains(cs, "UseDevelopmentEmulator=true") {
		t.Fatalf("connection string %q", cs)
	}
	host := strings.TrimPrefix(strings.Split(cs, ";")[0], "Endpoint=sb://")
	conn, err := net.DialTimeout("tcp", host, 2*time.Second)
	if err != nil {
		t.Fatalf("emulator not reachable at %s: %v", host, err)
	}
	_ = conn.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("emulate did not stop")
	}
}

package localstack

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestStartAWSServesAndStops(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	t.Setenv(EnvAWSEndpoint, "")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	a, err := StartAWS(ctx)
	if err != nil {
		Unavailable(t, "aws", err)
	}
	u, err := url.Parse(a.URL)
	if err != nil || u.Scheme != "snssqs" || u.Query().Get("endpoint") != a.Endpoint ||
		u.Query().Get("region") != a.Region {
		t.Fatalf("URL = %q, want snssqs://?region=%s&endpoint=%s", a.URL, a.Region, a.Endpoint)
	}
	if !strings.HasPrefix(a.Endpoint, "http://127.0.0.1:") {
		t.Errorf("Endpoint = %q, want a loopback address", a.Endpoint)
	}

	// fauxqs answers its health check.
	resp, err := http.Get(a.Endpoint + "/health")
	if err != nil {
		t.Fatalf("health check: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "ok") {
		t.Fatalf("health check: %d %s", resp.StatusCode, body)
	}
	http.DefaultClient.CloseIdleConnections()

	// Close stops it: the port stops accepting connections.
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	host := strings.TrimPrefix(a.Endpoint, "http://")
	if c, err := net.DialTimeout("tcp", host, time.Second); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections after Close", host)
	}
}

func TestStartAWSUsesEndpointVariable(t *testing.T) {
	// A listener stands in for an endpoint someone else started.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ep := "http://" + ln.Addr().String()
	t.Setenv(EnvAWSEndpoint, ep)
	a, err := StartAWS(context.Background())
	if err != nil {
		t.Fatalf("StartAWS with %s: %v", EnvAWSEndpoint, err)
	}
	if a.Endpoint != ep {
		t.Errorf("Endpoint = %q, want %q", a.Endpoint, ep)
	}
	if err := a.Close(); err != nil {
		t.Errorf("Close of an endpoint it did not start: %v", err)
	}

	// Once nothing listens there, StartAWS says so instead of starting
	// anything else.
	ln.Close()
	_, err = StartAWS(context.Background())
	if err == nil || !strings.Contains(err.Error(), EnvAWSEndpoint) {
		t.Fatalf("StartAWS with a dead %s: err = %v, want one naming it", EnvAWSEndpoint, err)
	}
	var opErr *net.OpError
	if !errors.As(err, &opErr) {
		t.Errorf("err = %v, want it to wrap the dial error", err)
	}
}

package servicebus_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/seed06bc8277/herald/providers"
	"github.com/seed06bc8277/herald/providers/servicebus"
)

// secret is a key value that must never appear in an error.
const secret = "c2VjcmV0LWtleS12YWx1ZQ"

func TestConnectionStringErrorsNameTheKeyNeverTheValue(t *testing.T) {
	t.Setenv(servicebus.EnvConnectionString, "")
	for _, tc := range []struct {
		name, cs, want string
	}{
		{"no endpoint", "SharedAccessKeyName=k;SharedAccessKey=" + secret, "Endpoint"},
		{"endpoint not sb", "Endpoint=https://x.servicebus.windows.net/;SharedAccessKeyName=k;" +
			"SharedAccessKey=" + secret, "Endpoint"},
		{"no key name", "Endpoint=sb://x.servicebus.windows.net/;SharedAccessKey=" + secret,
			"SharedAccessKeyName"},
		{"no key", "Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=" + secret,
			"SharedAccessKey"},
		{"no equals", "Endpoint=sb://x.servicebus.windows.net/;" + secret, "without '='"},
		{"emulator flag off loopback", "Endpoint=sb://x.servicebus.windows.net;" +
			"SharedAccessKeyName=k;SharedAccessKey=" + secret + ";UseDevelopmentEmulator=true",
			"loopback"},
		{"emulator flag not a bool", "Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=k;" +
			"SharedAccessKey=" + secret + ";UseDevelopmentEmulator=" + secret,
			"UseDevelopmentEmulator"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := servicebus.New(context.Background(),
				servicebus.Options{ConnectionString: tc.cs})
			if !errors.Is(err, providers.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v, want ErrInvalid naming %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), secret) {
				t.Errorf("the error shows the secret: %v", err)
			}
		})
	}
}

func TestEnvironmentConnectionStringIsRead(t *testing.T) {
	t.Setenv(servicebus.EnvConnectionString, "Endpoint=sb://x.servicebus.windows.net;"+
		"SharedAccessKey="+secret)
	_, err := servicebus.New(context.Background(), servicebus.Options{})
	if !errors.Is(err, providers.ErrInvalid) ||
		!strings.Contains(err.Error(), "SharedAccessKeyName") ||
		strings.Contains(err.Error(), secret) {
		t.Errorf("New with a bad %s: %v", servicebus.EnvConnectionString, err)
	}
}

func TestNamespaceMustMatchTheConnectionString(t *testing.T) {
	t.Setenv(servicebus.EnvConnectionString, "")
	_, err := servicebus.New(context.Background(), servicebus.Options{
		Namespace: "other",
		ConnectionString: "Endpoint=sb://mine.servicebus.windows.net/;SharedAccessKeyName=k;" +
			"SharedAccessKey=" + secret,
	})
	if !errors.Is(err, providers.ErrInvalid) || !strings.Contains(err.Error(), "other.servicebus") ||
		strings.Contains(err.Error(), secret) {
		t.Errorf("New: %v, want ErrInvalid naming both hosts", err)
	}
}

func TestURLParameters(t *testing.T) {
	t.Setenv(servicebus.EnvConnectionString, "")
	open, err := providers.Lookup(servicebus.Scheme)
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range []string{
		"azuresb://127.0.0.1:1?connectionstring=x",
		"azuresb://127.0.0.1:1?maxmessagebytes=-5",
		"azuresb://",
	} {
		u, _ := url.Parse(raw)
		if _, err := open(context.Background(), u); !errors.Is(err, providers.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", raw, err)
		}
	}
	u, _ := url.Parse("azuresb://127.0.0.1:1?maxmessagebytes=1048576")
	p, err := open(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if l := p.Limits(); l.MaxMessageBytes != 1<<20 || l.MaxAttributes != 0 {
		t.Errorf("Limits %+v, want 1 MiB and no attribute limit", l)
	}
}

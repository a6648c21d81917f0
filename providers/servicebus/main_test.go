package servicebus_test

import (
	"context"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/seed06bc8277/herald/localstack"
)

// sb is the local Service Bus every test of the package uses, started
// once by TestMain; nil when it could not start (startErr says why).
var (
	sb       *localstack.ServiceBus
	startErr error
)

func TestMain(m *testing.M) {
	sb, startErr = localstack.StartServiceBus(context.Background())
	code := m.Run()
	if sb != nil {
		_ = sb.Close()
	}
	if code == 0 {
		if err := goleak.Find(goleak.IgnoreCurrent()); err != nil {
			os.Stderr.WriteString("goleak: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}

// local returns the local Service Bus or ends the test.
func local(t testing.TB) *localstack.ServiceBus {
	t.Helper()
	if sb == nil {
		localstack.Unavailable(t, "Azure Service Bus", startErr)
	}
	return sb
}

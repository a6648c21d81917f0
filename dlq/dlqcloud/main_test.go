package dlqcloud

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// opencensus, which the Pub/Sub client imports, starts a worker in init.
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"))
}

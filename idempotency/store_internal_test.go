package idempotency

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestValidateBatchRepeats covers both ways ValidateBatch looks for a
// repeated key: pairwise for small batches, with a map for larger ones.
func TestValidateBatchRepeats(t *testing.T) {
	for _, n := range []int{2, smallBatch, smallBatch + 1, 64} {
		reqs := make([]Request, n)
		for i := range reqs {
			reqs[i] = Request{Key: fmt.Sprintf("c/%d", i), Lease: time.Second}
		}
		if err := ValidateBatch(reqs); err != nil {
			t.Fatalf("%d distinct keys: %v", n, err)
		}
		reqs[n-1].Key = reqs[0].Key
		if err := ValidateBatch(reqs); !errors.Is(err, ErrInvalidKey) {
			t.Fatalf("%d keys, the last repeating the first: err = %v, want ErrInvalidKey", n, err)
		}
	}
}

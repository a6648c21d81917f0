// Package memory is herald's in-process provider (mem://). Being rewritten.
package memory

import (
	"context"
	"net/url"

	"github.com/seed06bc8277/herald/providers"
)

func init() {
	providers.Register("mem", func(ctx context.Context, u *url.URL) (providers.Provider, error) {
		return nil, providers.ErrInvalid
	})
}
